// TS references for shaders/elementwise.wgsl, in f64.

/** x += y, element by element (the residual add). */
export function addRef(x: Float32Array, y: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] + y[i];
  return out;
}

/** x * s. */
export function scaleRef(x: Float32Array, s: number): Float32Array {
  return x.map((v) => v * s);
}

/** GELU with the tanh approximation (ggml's gelu, Hugging Face's gelu_pytorch_tanh). */
export function geluTanh(a: number): number {
  return 0.5 * a * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * a * (1 + 0.044715 * a * a)));
}

/** gelu_tanh(gate) * up (GEGLU's gate). */
export function geluMulRef(gate: Float32Array, up: Float32Array): Float32Array {
  const out = new Float32Array(gate.length);
  for (let i = 0; i < gate.length; i++) out[i] = geluTanh(gate[i]) * up[i];
  return out;
}

/** cap * tanh(x / cap). */
export function softcapRef(x: Float32Array, cap: number): Float32Array {
  return x.map((v) => cap * Math.tanh(v / cap));
}
