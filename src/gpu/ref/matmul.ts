// TS reference for shaders/matmul.wgsl: the matvec reference applied to every token.
import { matvecRef } from './matvec.ts';

/**
 * Y[t, r] = sum_c X[t, c] * W[r, c] (+ bias[r]) (+ Y0[t, r]).
 * w [rows, cols] f32 (dequantized), x [tokens, cols], y0 [tokens, rows]; result [tokens, rows].
 */
export function matmulRef(
  w: Float32Array,
  rows: number,
  cols: number,
  x: Float32Array,
  tokens: number,
  opts: { bias?: Float32Array; y0?: Float32Array } = {},
): Float32Array {
  const y = new Float32Array(tokens * rows);
  for (let t = 0; t < tokens; t++) {
    const y0 = opts.y0?.subarray(t * rows, (t + 1) * rows);
    y.set(matvecRef(w, rows, cols, x.subarray(t * cols, (t + 1) * cols), { bias: opts.bias, y0 }), t * rows);
  }
  return y;
}
