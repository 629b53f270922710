// Human-readable sizes, durations and load progress, shared by error messages, the CLI and the demo.
import type { LoadProgress } from './engine/types.ts';

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

/** 95 → "1 min 35 s"; 4000 → "1 h 07 min". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** "download 12.0 MiB of 491.0 MiB (2%), 5.1 MiB/s, 1 min 34 s left". */
export function formatLoadProgress(p: LoadProgress): string {
  const pct = p.totalBytes > 0 ? ` (${Math.floor((100 * p.loadedBytes) / p.totalBytes)}%)` : '';
  const rate = p.bytesPerSecond !== undefined ? `, ${formatBytes(p.bytesPerSecond)}/s` : '';
  const left = p.secondsLeft !== undefined ? `, ${formatDuration(p.secondsLeft)} left` : '';
  return `${p.phase} ${formatBytes(p.loadedBytes)} of ${formatBytes(p.totalBytes)}${pct}${rate}${left}`;
}
