// TS reference for shaders/matvec.wgsl (main): one token, weights already dequantized.
import { dequantize, quantize } from '../../gguf/quant.ts';

/**
 * y[r] = sum_c w[r*cols + c] * x[c] (+ bias[r]) (+ y0[r]) for r < rows, accumulated in f64.
 * w [rows, cols] f32 (e.g. `dequantize(type, ggufBytes, rows*cols)`), x [cols], result [rows].
 */
export function matvecRef(
  w: Float32Array,
  rows: number,
  cols: number,
  x: Float32Array,
  opts: { bias?: Float32Array; y0?: Float32Array } = {},
): Float32Array {
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c] * x[c];
    if (opts.bias) s += opts.bias[r];
    if (opts.y0) s += opts.y0[r];
    y[r] = s;
  }
  return y;
}

/**
 * Tolerance for dotErrorRatio: f32 sums in another order than the f64 reference stay within 2
 * units of rounding (2^-24) times sqrt(K) of the sum of |products| (the worst-case bound is K
 * units; observed ratios sit 10-100 times below this). One wrong term gives about 1/K.
 */
export function dotTolerance(cols: number): number {
  return 2 * 2 ** -24 * Math.sqrt(cols);
}

/**
 * The GPU kernels round differently (f32 sums in another order), so compare with a bound that
 * scales with the products: |got - want| <= tol * sum_c |w[r,c] x[c]| per output. Returns the
 * largest such ratio over all outputs (0 when exact).
 */
export function dotErrorRatio(got: Float32Array, want: Float32Array, w: Float32Array, rows: number, cols: number, x: Float32Array, tokens = 1): number {
  let worst = 0;
  for (let t = 0; t < tokens; t++) {
    for (let r = 0; r < rows; r++) {
      let mag = 0;
      for (let c = 0; c < cols; c++) mag += Math.abs(w[r * cols + c] * x[t * cols + c]);
      const err = Math.abs(got[t * rows + r] - want[t * rows + r]);
      const ratio = err === 0 ? 0 : err / Math.max(mag, 1e-30);
      if (!(ratio <= worst)) worst = Number.isNaN(ratio) ? Infinity : ratio;
    }
  }
  return worst;
}

/** A test matrix: `values` stored as `type` (GGUF bytes) and the weights those bytes decode to. */
export function quantizedMatrix(type: number, values: Float32Array): { bytes: Uint8Array; w: Float32Array } {
  const bytes = quantize(type, values);
  return { bytes, w: dequantize(type, bytes, values.length) };
}
