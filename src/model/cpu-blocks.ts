// The shared blocks of the CPU reference's forward programs (the oracle's side of
// src/model/blocks.ts): plain loops on f32 weights with every sum in f64, written to be read.
// Nothing here is shared with the GPU code, so the oracle does not inherit a mistake of the kernels'.
import { UnsupportedModelError } from '../errors.ts';
import type { ModelConfig } from './config.ts';

/** out[r] = sum_c W[r, c] x[c] (+ b[r]) with an f64 sum; W row-major (rows, cols). */
export function matvec(out: Float32Array, w: Float32Array, x: Float32Array, rows: number, cols: number, b?: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const o = r * cols;
    for (let c = 0; c < cols; c++) s += w[o + c] * x[c];
    out[r] = b ? s + b[r] : s;
  }
}

/** out = x / sqrt(mean(x²) + eps) * w (out may be x). */
export function rmsnorm(out: Float32Array, x: Float32Array, w: Float32Array, eps: number): void {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * inv * w[i];
}

/** RMSNorm of each of the nHeads heads of v (headDim values each) in place, with the same weights w (headDim). */
export function rmsnormHeads(v: Float32Array, w: Float32Array, nHeads: number, headDim: number, eps: number): void {
  for (let h = 0; h < nHeads; h++) {
    const head = v.subarray(h * headDim, (h + 1) * headDim);
    rmsnorm(head, head, w, eps);
  }
}

/** x += y. */
export function addInto(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] += y[i];
}

/** gate = silu(gate) * up (SwiGLU). */
export function swiglu(gate: Float32Array, up: Float32Array): void {
  for (let i = 0; i < gate.length; i++) gate[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
}

/** gate = gelu_tanh(gate) * up (GEGLU, GELU with ggml's tanh approximation). */
export function geglu(gate: Float32Array, up: Float32Array): void {
  const k = Math.sqrt(2 / Math.PI);
  for (let i = 0; i < gate.length; i++) {
    const a = gate[i];
    gate[i] = 0.5 * a * (1 + Math.tanh(k * a * (1 + 0.044715 * a * a))) * up[i];
  }
}

/** RoPE scaling as ggml's rope applies it (no YaRN): angles times freqScale, cos and sin times attnFactor. */
export interface CpuRopeScaling {
  freqScale?: number;
  attnFactor?: number;
}

/**
 * cos/sin of every (position, pair): angle pos · freqScale · base^(-2i/ropeDim) / freqFactors[i],
 * computed in f64, each times attnFactor. freqFactors is `rope_freqs.weight` (Llama 3) or a LongRoPE
 * factor tensor (Phi-3): it divides the frequencies like llama.cpp's freq_factors.
 * Returns (maxPos, ropeDim/2, 2) values: cos then sin.
 */
export function ropeTable(maxPos: number, ropeDim: number, base: number, freqFactors?: Float32Array, scaling: CpuRopeScaling = {}): Float32Array {
  const half = ropeDim / 2;
  if (freqFactors && freqFactors.length !== half) {
    throw new UnsupportedModelError('bad-shape', `rope_freqs has ${freqFactors.length} values but RoPE rotates ${half} pairs`, {
      tensor: 'rope_freqs.weight',
      shape: String(freqFactors.length),
      expected: String(half),
    });
  }
  const freqScale = scaling.freqScale ?? 1;
  const mscale = scaling.attnFactor ?? 1;
  const table = new Float32Array(maxPos * half * 2);
  for (let i = 0; i < half; i++) {
    const freq = (freqScale * Math.pow(base, (-2 * i) / ropeDim)) / (freqFactors ? freqFactors[i] : 1);
    for (let pos = 0; pos < maxPos; pos++) {
      table[(pos * half + i) * 2] = Math.cos(pos * freq) * mscale;
      table[(pos * half + i) * 2 + 1] = Math.sin(pos * freq) * mscale;
    }
  }
  return table;
}

/**
 * Rotates the head starting at v[off] in place by the angles of position `pos`; only its first
 * `ropeDim` values take part. 'norm' rotates pairs (2i, 2i+1), 'neox' pairs (i, i + ropeDim/2).
 * table: (maxPos, ropeDim/2, 2) cos and sin from ropeTable.
 */
export function rotateHead(v: Float32Array, off: number, pos: number, table: Float32Array, ropeDim: number, mode: 'norm' | 'neox'): void {
  const half = ropeDim / 2;
  const row = pos * half * 2;
  for (let i = 0; i < half; i++) {
    const cos = table[row + 2 * i];
    const sin = table[row + 2 * i + 1];
    const a = mode === 'norm' ? off + 2 * i : off + i;
    const b = mode === 'norm' ? a + 1 : a + half;
    const x0 = v[a];
    const x1 = v[b];
    v[a] = x0 * cos - x1 * sin;
    v[b] = x0 * sin + x1 * cos;
  }
}

/** Scratch buffers for one token, allocated once so a step allocates nothing. */
export interface CpuRunState {
  x: Float32Array; // (dim) residual stream
  xn: Float32Array; // (dim) normalized x
  q: Float32Array; // (nHeads*headDim)
  att: Float32Array; // (nHeads*headDim) attention output, heads concatenated
  proj: Float32Array; // (dim) a branch's output before the residual add
  gate: Float32Array; // (ffnDim)
  up: Float32Array; // (ffnDim)
  logits: Float32Array; // (vocab)
}

/**
 * What a family's CPU program gets from the CPU reference for one token: the config, the scratch
 * state, the layer's K/V rows of this position (the projections write them) and attention over the
 * cache, which owns positions, RoPE tables and sliding windows.
 */
export interface CpuRun {
  readonly c: ModelConfig;
  readonly s: CpuRunState;
  /** Layer l's K row of the token at pos (nKvHeads*headDim), stored before RoPE. */
  kRow(l: number, pos: number): Float32Array;
  /** Layer l's V row of the token at pos. */
  vRow(l: number, pos: number): Float32Array;
  /**
   * Layer l's attention for the token at pos, whose K and V rows are written: rotates s.q and the
   * key by the layer's table, attends (causal, the layer's window, the model's scale) into s.att.
   */
  attend(l: number, pos: number): void;
  /** logits = output · rmsnorm(x) * outputNorm (softcapped when the model says so), into s.logits. */
  head(outputNorm: Float32Array, output: Float32Array): void;
}

/** out = w · x for a token's embedding row: copies row `token` of the (vocab, dim) table, times scale. */
export function embedRow(out: Float32Array, table: Float32Array, token: number, scale = 1): void {
  const dim = out.length;
  for (let i = 0; i < dim; i++) out[i] = table[token * dim + i] * scale;
}
