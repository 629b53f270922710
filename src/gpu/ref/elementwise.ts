// TS references for shaders/elementwise.wgsl.

/** x += y, element by element (the residual add). */
export function addRef(x: Float32Array, y: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] + y[i];
  return out;
}
