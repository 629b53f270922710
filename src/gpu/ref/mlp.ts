// TS references for shaders/mlp.wgsl and the fused gate/up matvec (matvec.wgsl main_gated).
import { matmulRef } from './matmul.ts';

export function silu(v: number): number {
  return v / (1 + Math.exp(-v));
}

/** silu(gate[i]) * up[i], element by element. */
export function siluMulRef(gate: Float32Array, up: Float32Array): Float32Array {
  const out = new Float32Array(gate.length);
  for (let i = 0; i < gate.length; i++) out[i] = silu(gate[i]) * up[i];
  return out;
}

/**
 * h[t, r] = silu(sum_c G[r, c] x[t, c]) * sum_c U[r, c] x[t, c]: gate and up [rows, cols]
 * (dequantized), x [tokens, cols]; result [tokens, rows].
 */
export function gateUpRef(gate: Float32Array, up: Float32Array, rows: number, cols: number, x: Float32Array, tokens: number): Float32Array {
  return siluMulRef(matmulRef(gate, rows, cols, x, tokens), matmulRef(up, rows, cols, x, tokens));
}
