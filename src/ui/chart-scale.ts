// The TTFT chart's numbers, without the chart: the axis maximum, its ticks at round steps and
// their labels, and which chunk source an answer's bar is named after. No Lit and no DOM, so Node
// tests import it (test/ui/chart-scale.test.ts).
import type { ChunkSource } from '../api.ts';
import type { AnswerRecord } from './events.ts';

/** The order of a bar's segments, bottom up, and of the legend. */
export const CHART_SOURCES: readonly ChunkSource[] = ['computed', 'store', 'memory', 'gpu'];

/** Where most of an answer's chunks came from ('computed' when it used none, and on a tie with it). */
export function mainSource(a: Pick<AnswerRecord, 'sources'>): ChunkSource {
  let best: ChunkSource = 'computed';
  for (const s of CHART_SOURCES) if (a.sources[s] > a.sources[best]) best = s;
  return best;
}

/** A round axis maximum at or above `v`: 1, 2 or 5 times a power of ten (1 for no positive value). */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * Tick values from 0 to `top`, at multiples of a round step: for a maximum of 1, 2 or 5 × 10^k
 * (what niceMax gives) steps of 0.2, 0.5 and 1 × 10^k, so 5, 4 and 5 intervals. Another maximum
 * gets the step of the next round one, and ticks up to `top`.
 */
export function axisTicks(top: number): number[] {
  if (!(top > 0) || !Number.isFinite(top)) return [0];
  const nice = niceMax(top);
  const p = 10 ** Math.floor(Math.log10(nice) + 1e-9);
  const m = Math.round(nice / p);
  const step = (m === 1 ? 0.2 : m === 2 ? 0.5 : 1) * p;
  const ticks: number[] = [];
  // Products like 3 × 0.2 carry float noise (0.6000000000000001): 12 significant digits drop it.
  for (let i = 0; ; i++) {
    const t = Number((i * step).toPrecision(12));
    if (t > top * (1 + 1e-9)) break;
    ticks.push(t);
  }
  return ticks;
}

/**
 * Labels of one axis's ticks (milliseconds), in one unit for the whole axis (seconds once the
 * axis reaches 1 s) and as few decimals as the step needs, trailing zeros dropped: "0", "0.5 s",
 * "1 s", "1.5 s"; "0", "50 ms", "100 ms". The zero tick has no unit.
 */
export function axisTickLabels(ticks: readonly number[]): string[] {
  const top = Math.max(0, ...ticks);
  const seconds = top >= 1000;
  const values = ticks.map((t) => (seconds ? t / 1000 : t));
  let decimals = 0;
  while (decimals < 6 && values.some((v) => Math.abs(Number(v.toFixed(decimals)) - v) > 1e-9 * Math.max(1, Math.abs(v)))) decimals++;
  return values.map((v) => (v === 0 ? '0' : `${Number(v.toFixed(decimals))} ${seconds ? 's' : 'ms'}`));
}

/** One TTFT as the bars' titles and the table show it: "850 ms", "3.8 s", "12 s". */
export function formatTtft(ms: number): string {
  if (ms === 0) return '0';
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms >= 10_000 ? 0 : 1)} s` : `${Math.round(ms)} ms`;
}
