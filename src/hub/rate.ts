// Speed and time left for load progress: the bytes of the last few seconds over their time, so a
// stall or a burst shows within seconds and a long download does not average them away.
import type { LoadProgress } from '../engine/types.ts';

const WINDOW_MS = 5000;
/** Below this much measured time a speed means little. */
const MIN_SPAN_MS = 250;

/**
 * Wraps a progress callback so that 'download' and 'weights' events carry `bytesPerSecond` and
 * `secondsLeft` (once MIN_SPAN_MS of the phase has been measured). Other phases pass unchanged.
 */
export function withRate(onProgress: (p: LoadProgress) => void, now: () => number = () => performance.now()): (p: LoadProgress) => void {
  let phase: LoadProgress['phase'] | undefined;
  let samples: { t: number; bytes: number }[] = [];
  return (p) => {
    if (p.phase !== 'download' && p.phase !== 'weights') {
      phase = p.phase;
      samples = [];
      onProgress(p);
      return;
    }
    const t = now();
    if (p.phase !== phase || (samples.length > 0 && p.loadedBytes < samples[samples.length - 1].bytes)) samples = [];
    phase = p.phase;
    samples.push({ t, bytes: p.loadedBytes });
    while (samples.length > 2 && t - samples[1].t >= WINDOW_MS) samples.shift();
    const first = samples[0];
    const span = t - first.t;
    if (span < MIN_SPAN_MS) {
      onProgress(p);
      return;
    }
    const bytesPerSecond = ((p.loadedBytes - first.bytes) * 1000) / span;
    const secondsLeft = bytesPerSecond > 0 ? Math.max(0, p.totalBytes - p.loadedBytes) / bytesPerSecond : undefined;
    onProgress({ ...p, bytesPerSecond, ...(secondsLeft !== undefined ? { secondsLeft } : {}) });
  };
}
