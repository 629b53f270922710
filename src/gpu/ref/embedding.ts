// TS reference for shaders/embedding.wgsl.

/** out[t, :] = table[ids[t], :]; table [rows, cols] f32 (dequantized), result [ids.length, cols]. */
export function embeddingRef(table: Float32Array, cols: number, ids: ArrayLike<number>): Float32Array {
  const out = new Float32Array(ids.length * cols);
  for (let t = 0; t < ids.length; t++) out.set(table.subarray(ids[t] * cols, (ids[t] + 1) * cols), t * cols);
  return out;
}
