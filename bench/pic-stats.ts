// Paired statistics for bench:pic: two settings scored on the same prompts (a chunk context against
// none, a KV storage format against f32), compared prompt by prompt. Plain loops, no dependencies;
// the p-values were checked against scipy.stats (binomtest, wilcoxon with the normal approximation
// and continuity correction) on a few hundred random cases when this file was written.

import { seededRandom } from '../src/random.ts';

export { seededRandom };

export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The q-quantile of sorted values, linear between the two nearest ranks (numpy's default). */
function quantileSorted(s: readonly number[], q: number): number {
  if (s.length === 0) return NaN;
  const h = (s.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo] + (h - lo) * (s[hi] - s[lo]);
}

/** erfc(x) (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7: plenty for a p-value). */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** Two-sided p-value of a standard normal statistic z. */
function normalTwoSided(z: number): number {
  return Math.min(1, erfc(Math.abs(z) / Math.SQRT2));
}

/**
 * Sign test: two-sided exact binomial p-value of `better` successes out of better + worse trials at
 * p = 1/2 (ties dropped), i.e. min(1, 2·P(X ≤ min(better, worse))).
 */
export function signTestP(better: number, worse: number): number {
  const n = better + worse;
  if (n === 0) return 1;
  const k = Math.min(better, worse);
  // log pmf(i) built up from pmf(0) = 2^-n, summed in log space so n in the thousands stays finite.
  let logPmf = -n * Math.LN2;
  let logCdf = logPmf;
  for (let i = 0; i < k; i++) {
    logPmf += Math.log(n - i) - Math.log(i + 1);
    const hi = Math.max(logCdf, logPmf);
    logCdf = hi + Math.log(Math.exp(logCdf - hi) + Math.exp(logPmf - hi));
  }
  return Math.min(1, 2 * Math.exp(logCdf));
}

/**
 * Wilcoxon signed-rank test of paired differences against a zero median: zero differences dropped
 * (Wilcoxon's convention), tied |d| given their mean rank, the normal approximation with the tie
 * correction of the variance and a continuity correction of 1/2. Two-sided p-value (NaN below 1
 * non-zero difference; the approximation is rough below ~10).
 */
export function wilcoxonP(diffs: readonly number[]): number {
  const d = diffs.filter((x) => x !== 0);
  const n = d.length;
  if (n === 0) return NaN;
  const order = d.map((x, i) => ({ a: Math.abs(x), i })).sort((p, q) => p.a - q.a);
  const rank = new Float64Array(n);
  let tieTerm = 0; // sum over tie groups of t³ - t
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && order[j + 1].a === order[i].a) j++;
    const r = (i + j) / 2 + 1;
    for (let m = i; m <= j; m++) rank[order[m].i] = r;
    const t = j - i + 1;
    tieTerm += t * t * t - t;
    i = j + 1;
  }
  let wPlus = 0;
  for (let i = 0; i < n; i++) if (d[i] > 0) wPlus += rank[i];
  const mu = (n * (n + 1)) / 4;
  const sigma = Math.sqrt((n * (n + 1) * (2 * n + 1)) / 24 - tieTerm / 48);
  if (sigma === 0) return 1;
  const dev = Math.abs(wPlus - mu);
  return normalTwoSided(Math.max(0, dev - 0.5) / sigma);
}

/** `other` against `base` on the same prompts; lower is better (KL). */
export interface PairedStats {
  n: number;
  meanBase: number;
  meanOther: number;
  /** Of the per-prompt differences other − base. */
  meanDiff: number;
  medianDiff: number;
  /** 95% percentile bootstrap interval of meanDiff (prompts resampled with their pairs). */
  ciLow: number;
  ciHigh: number;
  /** meanOther / meanBase − 1, and its interval from the same resamples. */
  relChange: number;
  relCiLow: number;
  relCiHigh: number;
  /** Prompts where other < base, other > base, and equal. */
  better: number;
  worse: number;
  ties: number;
  signP: number;
  wilcoxonP: number;
}

export const BOOTSTRAP = { resamples: 2000, seed: 20251 };

/**
 * Paired comparison of `other` against `base` (same length, same prompt order): differences,
 * a percentile bootstrap (BOOTSTRAP.resamples resamples of the prompts, fixed seed) of the mean
 * difference and of the ratio of means, the sign test and the Wilcoxon signed-rank test.
 */
export function pairedStats(base: readonly number[], other: readonly number[], opts = BOOTSTRAP): PairedStats {
  if (base.length !== other.length) throw new Error(`paired samples differ in length (${base.length} and ${other.length})`);
  const n = base.length;
  const diffs = base.map((b, i) => other[i] - b);
  const rand = seededRandom(opts.seed);
  const means: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < opts.resamples && n > 0; r++) {
    let sb = 0;
    let so = 0;
    for (let i = 0; i < n; i++) {
      const j = Math.floor(rand() * n);
      sb += base[j];
      so += other[j];
    }
    means.push((so - sb) / n);
    ratios.push(sb > 0 ? so / sb - 1 : NaN);
  }
  means.sort((a, b) => a - b);
  const finiteRatios = ratios.filter(Number.isFinite).sort((a, b) => a - b);
  const better = diffs.filter((x) => x < 0).length;
  const worse = diffs.filter((x) => x > 0).length;
  const meanBase = mean(base);
  return {
    n,
    meanBase,
    meanOther: mean(other),
    meanDiff: mean(diffs),
    medianDiff: median(diffs),
    ciLow: quantileSorted(means, 0.025),
    ciHigh: quantileSorted(means, 0.975),
    relChange: meanBase > 0 ? mean(other) / meanBase - 1 : NaN,
    relCiLow: quantileSorted(finiteRatios, 0.025),
    relCiHigh: quantileSorted(finiteRatios, 0.975),
    better,
    worse,
    ties: n - better - worse,
    signP: signTestP(better, worse),
    wilcoxonP: wilcoxonP(diffs),
  };
}
