// The scale searches of ggml's K-quant reference quantizers (`make_qkx2_quants` for Q4_K and
// Q5_K, `make_qx_quants` for Q6_K) and its `nearest_int`, written so that every value is the f32
// that ggml computes: each operation on f32 operands is rounded once with Math.fround, in ggml's
// order (a double result rounded to f32 equals the f32 operation for + - * / and sqrt), and
// comparisons are written as in C, so NaN and infinity take the same branches.
// Pure arithmetic on Float32Array views: the block layouts live in quant.ts.

const fr = Math.fround;

const nearestScratch = new Float32Array(1);
const nearestBits = new Int32Array(nearestScratch.buffer);

/**
 * ggml's `nearest_int`: adds 1.5·2^23 in f32 and reads the low mantissa bits, which rounds
 * halves to even. Like ggml it assumes |x| < 2^22; beyond that (or for NaN) it returns the same
 * garbage ggml does, which the quantizers then clamp exactly as ggml does.
 */
export function nearestInt(x: number): number {
  nearestScratch[0] = x + 12582912; // the store rounds the exact sum to f32, as ggml's f32 add does
  return (nearestBits[0] & 0x007fffff) - 0x00400000;
}

/** ggml's GROUP_MAX_EPS: a group whose largest magnitude is below this is all zero. */
export const GROUP_MAX_EPS = fr(1e-15);

/** The outcome of a scale-and-min search: x ≈ scale·L - min. */
export interface ScaleMin {
  scale: number;
  min: number;
}

/**
 * ggml's `make_qkx2_quants` (with use_mad = false): fits x ≈ scale·L - min with L in [0, nmax]
 * by weighted least squares, trying iscale = (nmax + rmin + rdelta·is)/(max - min) for is in
 * 0..nstep and keeping the L with the smallest weighted squared error. Writes L, sets
 * `out.scale` and `out.min` (min ≥ 0: the offset subtracted), and uses `Laux` (x.length) as
 * scratch.
 */
export function makeQkx2Quants(
  nmax: number,
  x: Float32Array,
  weights: Float32Array,
  L: Uint8Array,
  Laux: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
  out: ScaleMin,
): void {
  const n = x.length;
  let min = x[0];
  let max = x[0];
  let sumW = weights[0];
  let sumX = fr(sumW * x[0]);
  for (let i = 1; i < n; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const w = weights[i];
    sumW = fr(sumW + w);
    sumX = fr(sumX + fr(w * x[i]));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, 0, n);
    out.scale = 0;
    out.min = -min;
    return;
  }
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(x[i] - min)))));
    L[i] = l;
    const diff = fr(fr(fr(scale * l) + min) - x[i]);
    bestError = fr(bestError + fr(weights[i] * fr(diff * diff)));
  }
  // As in ggml, later candidates are taken around the best min found so far, not the data's.
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(x[i] - min)))));
      Laux[i] = l;
      const wl = fr(weights[i] * l);
      sumL = fr(sumL + wl);
      sumL2 = fr(sumL2 + fr(wl * l));
      sumXL = fr(sumXL + fr(wl * x[i]));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (!(D > 0)) continue;
    let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
    let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
    if (thisMin > 0) {
      thisMin = 0;
      thisScale = fr(sumXL / sumL2);
    }
    let error = 0;
    for (let i = 0; i < n; i++) {
      const diff = fr(fr(fr(thisScale * Laux[i]) + thisMin) - x[i]);
      error = fr(error + fr(weights[i] * fr(diff * diff)));
    }
    if (error < bestError) {
      L.set(Laux.subarray(0, n));
      bestError = error;
      scale = thisScale;
      min = thisMin;
    }
  }
  out.scale = scale;
  out.min = -min;
}

/**
 * ggml's `make_qx_quants` with rmse_type 1 (weights x², no importance matrix), as Q6_K uses it:
 * symmetric quants l in [-nmax, nmax-1] stored as l + nmax in L, the scale refined by weighted
 * least squares over iscale = -(nmax + 0.1·is)/max for is in -9..9. Returns the scale (0 for a
 * group below GROUP_MAX_EPS, whose L are all 0).
 */
export function makeQxQuants(nmax: number, x: Float32Array, L: Uint8Array): number {
  const n = x.length;
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  let iscale = fr(-nmax / max);
  let sumLX = 0;
  let sumL2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * x[i]))));
    L[i] = l + nmax;
    const w = fr(x[i] * x[i]);
    sumLX = fr(sumLX + fr(fr(w * x[i]) * l));
    sumL2 = fr(sumL2 + fr(fr(w * l) * l));
  }
  // C's `suml2 ? a : b` takes NaN as true; so does `!== 0`.
  let scale = sumL2 !== 0 ? fr(sumLX / sumL2) : 0;
  let best = fr(scale * sumLX);
  const step = fr(0.1);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(step * is)) / max);
    sumLX = 0;
    sumL2 = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * x[i]))));
      const w = fr(x[i] * x[i]);
      sumLX = fr(sumLX + fr(fr(w * x[i]) * l));
      sumL2 = fr(sumL2 + fr(fr(w * l) * l));
    }
    if (sumL2 > 0 && fr(sumLX * sumLX) > fr(best * sumL2)) {
      for (let i = 0; i < n; i++) L[i] = nmax + Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * x[i]))));
      scale = fr(sumLX / sumL2);
      best = fr(scale * sumLX);
    }
  }
  return scale;
}
