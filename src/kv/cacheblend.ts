// CacheBlend-style token selection: which chunk tokens to recompute, from how far each cached
// token's KV is from the KV a full prefill gives it at one early layer.
//
// The engine (GpuModel.prefillLinked) and the CPU reference (cpu-link.ts) both select with this
// rule, so their outputs can be compared token for token.

/** Layer whose KV deviation picks the tokens (CacheBlend uses an early one; clamped to the model). */
export const DEFAULT_BLEND_LAYER = 1;

/** Share of chunk tokens recomputed by 'cacheblend' when no ratio is given. */
export const DEFAULT_BLEND_RATIO = 0.15;

/**
 * Squared distance between a token's cached and fresh K and V rows at the selection layer:
 * sum over the row of (k_fresh - k_cached)^2 + (v_fresh - v_cached)^2 (keys before RoPE, so both
 * are comparable whatever position the chunk was computed at). Rows are (n, kvDim) row-major.
 */
export function kvDeviation(freshK: Float32Array, freshV: Float32Array, cachedK: Float32Array, cachedV: Float32Array, kvDim: number): Float32Array {
  const n = freshK.length / kvDim;
  const out = new Float32Array(n);
  for (let t = 0; t < n; t++) {
    let s = 0;
    for (let i = t * kvDim, e = i + kvDim; i < e; i++) {
      const dk = freshK[i] - cachedK[i];
      const dv = freshV[i] - cachedV[i];
      s += dk * dk + dv * dv;
    }
    out[t] = s;
  }
  return out;
}

/** How many of `total` chunk tokens a ratio recomputes: ceil(ratio * total), 0 when ratio is 0. */
export function blendCount(total: number, ratio: number): number {
  return Math.min(total, Math.ceil(ratio * total - 1e-9));
}

/**
 * The tokens to recompute: the ceil(ratio * total) chunk tokens whose deviation is largest over
 * all chunks of the request (ties: the earlier token in the prompt). `deviation[c][i]` is chunk c's
 * token i. Returns, per chunk, its selected token indices in increasing order.
 */
export function selectByDeviation(deviation: readonly Float32Array[], ratio: number): number[][] {
  const flat: { c: number; i: number; d: number; order: number }[] = [];
  let order = 0;
  deviation.forEach((dev, c) => dev.forEach((d, i) => flat.push({ c, i, d: Number.isNaN(d) ? Infinity : d, order: order++ })));
  const count = blendCount(flat.length, ratio);
  flat.sort((a, b) => b.d - a.d || a.order - b.order);
  const out: number[][] = deviation.map(() => []);
  for (let j = 0; j < count; j++) out[flat[j].c].push(flat[j].i);
  for (const s of out) s.sort((a, b) => a - b);
  return out;
}
