// The llama family's forward program: llama (Llama 2/3, SmolLM2, Mistral), qwen2 (Q/K/V biases)
// and qwen3 (per-head Q/K RMSNorm before RoPE), as llama.cpp's src/models/llama.cpp, qwen2.cpp and
// qwen3.cpp build it. Per layer:
//   x += Wo · attention(rope(norm_q(Wq·n + bq)), rope(norm_k(Wk·n + bk)), Wv·n + bv),  n = rmsnorm(x)
//   x += Wdown · (silu(Wgate·n) * Wup·n),                                            n = rmsnorm(x)
// (norm_q, norm_k only for qwen3; biases only where the file has them). Rope scaling: Llama 3's
// rope_freqs.weight divides the frequencies (in the tables, see src/model/blocks.ts).
import type { GpuWeight } from '../../gpu/weights.ts';
import type { StepRecorder } from '../blocks.ts';
import { addInto, embedRow, matvec, rmsnorm, rmsnormHeads, swiglu, type CpuRun } from '../cpu-blocks.ts';
import { typedWeights, type CpuWeights, type FamilyProgram, type GpuWeights } from './types.ts';

/** One layer's weights: M a matrix (rows = out, cols = in), V a vector. */
export interface LlamaLayer<M, V> {
  attnNorm: V; // (dim)
  wq: M; // (nHeads*headDim, dim)
  wk: M; // (nKvHeads*headDim, dim)
  wv: M; // (nKvHeads*headDim, dim)
  bq?: V; // (nHeads*headDim), qwen2
  bk?: V; // (nKvHeads*headDim)
  bv?: V; // (nKvHeads*headDim)
  qNorm?: V; // (headDim), qwen3
  kNorm?: V; // (headDim)
  wo: M; // (dim, nHeads*headDim)
  ffnNorm: V; // (dim)
  wGate: M; // (ffnDim, dim)
  wUp: M; // (ffnDim, dim)
  wDown: M; // (dim, ffnDim)
}

export interface LlamaWeights<M, V> {
  tokenEmbd: M; // (vocab, dim)
  outputNorm: V; // (dim)
  output?: M; // (vocab, dim); absent: tied to tokenEmbd
  layers: LlamaLayer<M, V>[];
}

function recordGpu(b: StepRecorder, weights: GpuWeights): void {
  const w = typedWeights<LlamaWeights<GpuWeight, GPUBuffer>>(weights);
  const c = b.config;
  const { x, xn, q, k, v, att, gate } = b.a;
  b.embed(w.tokenEmbd);
  w.layers.forEach((L, l) => {
    // Attention.
    b.norm(x, L.attnNorm, xn);
    b.linear(L.wq, xn, q, { bias: L.bq });
    b.linear(L.wk, xn, k, { bias: L.bk });
    b.linear(L.wv, xn, v, { bias: L.bv });
    if (L.qNorm) b.headNorm(q, L.qNorm, c.nHeads);
    if (L.kNorm) b.headNorm(k, L.kNorm, c.nKvHeads);
    b.attention(l);
    b.linear(L.wo, att, x, { accumulate: true });
    // Feed-forward.
    b.norm(x, L.ffnNorm, xn);
    b.swiglu(L.wGate, L.wUp, xn);
    b.linear(L.wDown, gate, x, { accumulate: true });
    b.endLayer();
  });
  b.outputHead(w.outputNorm, w.output ?? w.tokenEmbd);
}

function forwardCpu(r: CpuRun, weights: CpuWeights, token: number, pos: number): void {
  const w = typedWeights<LlamaWeights<Float32Array, Float32Array>>(weights);
  const { c, s } = r;
  const { dim, nHeads, nKvHeads, headDim, ffnDim, rmsEps } = c;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  embedRow(s.x, w.tokenEmbd, token);
  w.layers.forEach((L, l) => {
    rmsnorm(s.xn, s.x, L.attnNorm, rmsEps);
    const k = r.kRow(l, pos);
    matvec(s.q, L.wq, s.xn, qDim, dim, L.bq);
    matvec(k, L.wk, s.xn, kvDim, dim, L.bk);
    matvec(r.vRow(l, pos), L.wv, s.xn, kvDim, dim, L.bv);
    if (L.qNorm) rmsnormHeads(s.q, L.qNorm, nHeads, headDim, rmsEps);
    if (L.kNorm) rmsnormHeads(k, L.kNorm, nKvHeads, headDim, rmsEps);
    r.attend(l, pos);
    matvec(s.proj, L.wo, s.att, dim, qDim);
    addInto(s.x, s.proj);

    rmsnorm(s.xn, s.x, L.ffnNorm, rmsEps);
    matvec(s.gate, L.wGate, s.xn, ffnDim, dim);
    matvec(s.up, L.wUp, s.xn, ffnDim, dim);
    swiglu(s.gate, s.up);
    matvec(s.proj, L.wDown, s.gate, dim, ffnDim);
    addInto(s.x, s.proj);
  });
  r.head(w.outputNorm, w.output ?? w.tokenEmbd);
}

export const llamaFamily: FamilyProgram = { recordGpu, forwardCpu };
