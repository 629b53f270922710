// TS references for shaders/attention.wgsl (+ attention_reduce.wgsl): causal attention over a
// paged cache of keys stored before RoPE, and plain attention over already-rotated keys (the
// usual rotate-then-store layout) which the paged form must equal.
import type { KvDtype } from '../ops/kv.ts';
import type { RopeMode } from '../ops/rope.ts';
import { roundF16 } from './f16.ts';
import { rotateHead } from './rope.ts';

export interface AttentionRefShape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  ropeDim: number;
  mode: RopeMode;
  /** Default 1/sqrt(headDim). */
  scale?: number;
  /** Sliding window: a query at q sees keys at q - window < p <= q; 0 or absent: all keys at p <= q. */
  window?: number;
  /** Pool element type (default 'f32'): with 'f16' the paged reference rounds every K/V value to f16 first. */
  kvDtype?: KvDtype;
}

/** A page-table entry: slots page*16 + slotOffset + j hold the token at position startPosition + j. */
export interface RefPageEntry {
  page: number;
  startPosition: number;
  nTokens: number;
  slotOffset: number;
}

/**
 * q [T, nHeads*headDim] already rotated by `positions`; kPool, vPool [nSlots, nKvHeads*headDim] with
 * keys before RoPE; table from buildRopeTable. Returns out [T, nHeads*headDim]: each row attends to
 * every key of every entry whose position is <= its own, keys rotated by their position. Computed in
 * f64, from the pool values rounded to f16 when shape.kvDtype is 'f16' (what an f16 pool holds).
 */
export function attentionPagedRef(
  q: Float32Array,
  positions: ArrayLike<number>,
  kPool: Float32Array,
  vPool: Float32Array,
  entries: readonly RefPageEntry[],
  shape: AttentionRefShape,
  table: Float32Array,
): Float32Array {
  const { nKvHeads, headDim } = shape;
  const kvDim = nKvHeads * headDim;
  const keys: number[] = [];
  const kPos: number[] = [];
  for (const e of entries) {
    for (let j = 0; j < e.nTokens; j++) {
      keys.push(e.page * 16 + e.slotOffset + j);
      kPos.push(e.startPosition + j);
    }
  }
  // Gather and rotate the keys once; values need no rotation.
  const k = new Float64Array(keys.length * kvDim);
  const v = new Float64Array(keys.length * kvDim);
  const stored = shape.kvDtype === 'f16' ? roundF16 : (x: number) => x;
  keys.forEach((slot, i) => {
    for (let c = 0; c < kvDim; c++) {
      k[i * kvDim + c] = stored(kPool[slot * kvDim + c]);
      v[i * kvDim + c] = stored(vPool[slot * kvDim + c]);
    }
    for (let g = 0; g < nKvHeads; g++) rotateHead(k, i * kvDim + g * headDim, kPos[i], shape.ropeDim, shape.mode, table);
  });
  return attentionRef(q, positions, k, v, kPos, shape);
}

/**
 * Plain causal-by-position attention: q [T, nHeads*headDim] and k [S, nKvHeads*headDim] both
 * already rotated, v [S, nKvHeads*headDim], kPositions [S]. Query head h reads KV head
 * h / (nHeads/nKvHeads). With shape.window, a key is also masked once qpos - kpos >= window.
 * Rows with no visible key are 0.
 */
export function attentionRef(
  q: Float32Array,
  qPositions: ArrayLike<number>,
  k: Float32Array | Float64Array,
  v: Float32Array | Float64Array,
  kPositions: ArrayLike<number>,
  shape: AttentionRefShape,
): Float32Array {
  const { nHeads, nKvHeads, headDim } = shape;
  const group = nHeads / nKvHeads;
  const kvDim = nKvHeads * headDim;
  const scale = shape.scale ?? 1 / Math.sqrt(headDim);
  const window = shape.window ?? 0;
  const T = qPositions.length;
  const S = kPositions.length;
  const out = new Float32Array(T * nHeads * headDim);
  const s = new Float64Array(S);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nHeads; h++) {
      const qo = (t * nHeads + h) * headDim;
      const ko = Math.floor(h / group) * headDim;
      let m = -Infinity;
      for (let i = 0; i < S; i++) {
        if (kPositions[i] > qPositions[t] || (window > 0 && qPositions[t] - kPositions[i] >= window)) {
          s[i] = -Infinity;
          continue;
        }
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qo + d] * k[i * kvDim + ko + d];
        s[i] = dot * scale;
        m = Math.max(m, s[i]);
      }
      if (m === -Infinity) continue;
      let l = 0;
      const o = new Float64Array(headDim);
      for (let i = 0; i < S; i++) {
        if (s[i] === -Infinity) continue;
        const w = Math.exp(s[i] - m);
        l += w;
        for (let d = 0; d < headDim; d++) o[d] += w * v[i * kvDim + ko + d];
      }
      for (let d = 0; d < headDim; d++) out[qo + d] = o[d] / l;
    }
  }
  return out;
}
