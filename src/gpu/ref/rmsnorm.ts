// TS reference for shaders/rmsnorm.wgsl.

/** out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w, in f64; x [rows, cols], w [cols]. */
export function rmsnormRef(x: Float32Array, w: Float32Array, cols: number, eps: number): Float32Array {
  const rows = x.length / cols;
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += x[r * cols + c] * x[r * cols + c];
    const scale = 1 / Math.sqrt(ss / cols + eps);
    for (let c = 0; c < cols; c++) out[r * cols + c] = x[r * cols + c] * scale * w[c];
  }
  return out;
}
