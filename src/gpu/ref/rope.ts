// TS reference for shaders/rope.wgsl, also used by the attention reference to rotate keys.
import type { RopeMode } from '../ops/rope.ts';

/**
 * Rotates one head vector in place: `v[off .. off+headDim)` at absolute position `pos`, using the
 * (cos, sin) pairs of `table` ([maxPos, ropeDim/2] from buildRopeTable).
 */
export function rotateHead(v: Float32Array | Float64Array, off: number, pos: number, ropeDim: number, mode: RopeMode, table: Float32Array): void {
  const half = ropeDim / 2;
  for (let i = 0; i < half; i++) {
    const c = table[(pos * half + i) * 2];
    const s = table[(pos * half + i) * 2 + 1];
    const a = off + (mode === 'neox' ? i : 2 * i);
    const b = mode === 'neox' ? a + half : a + 1;
    const xa = v[a];
    const xb = v[b];
    v[a] = xa * c - xb * s;
    v[b] = xa * s + xb * c;
  }
}

/** x [nTokens, nHeads*headDim] rotated by positions[t]; returns a new array. */
export function ropeRef(
  x: Float32Array,
  positions: ArrayLike<number>,
  nHeads: number,
  headDim: number,
  ropeDim: number,
  mode: RopeMode,
  table: Float32Array,
): Float32Array {
  const out = x.slice();
  for (let t = 0; t < positions.length; t++) {
    for (let h = 0; h < nHeads; h++) rotateHead(out, (t * nHeads + h) * headDim, positions[t], ropeDim, mode, table);
  }
  return out;
}
