// The gemma3 forward program, as llama.cpp's src/models/gemma3.cpp builds it:
//   x = token_embd[t] · sqrt(dim)
//   per layer, n = rmsnorm(x) · attn_norm:
//     x += rmsnorm(Wo · attention(rope(norm_q(Wq·n)), rope(norm_k(Wk·n)), Wv·n)) · post_attention_norm
//     x += rmsnorm(Wdown · (gelu_tanh(Wgate·m) * Wup·m)) · post_ffw_norm,     m = rmsnorm(x) · ffn_norm
//   logits = token_embd · rmsnorm(x) · output_norm (tied), softcapped only without a sliding window.
// Norm weights are used as stored: llama.cpp's converter has already added Gemma's 1 to them.
// Local layers (every layer but each sliding_window_pattern-th) see the last sliding_window
// positions and use RoPE base rope.freq_base_swa (10000) unscaled; global layers see everything with
// rope.freq_base and any linear scaling. The score scale is llama.cpp's (1/sqrt(headDim), or
// 1/sqrt(dim/nHeads) for the 62-layer 27B): see config.ts.
// The post-norms run as a norm in place and a residual add, and GEGLU as two products and a gate
// kernel: fusing them is possible later.
import type { GpuWeight } from '../../gpu/weights.ts';
import type { StepRecorder } from '../blocks.ts';
import { addInto, embedRow, geglu, matvec, rmsnorm, rmsnormHeads, type CpuRun } from '../cpu-blocks.ts';
import { typedWeights, type CpuWeights, type FamilyProgram, type GpuWeights } from './types.ts';

export interface Gemma3Layer<M, V> {
  attnNorm: V; // (dim)
  wq: M; // (nHeads*headDim, dim)
  wk: M; // (nKvHeads*headDim, dim)
  wv: M; // (nKvHeads*headDim, dim)
  qNorm: V; // (headDim)
  kNorm: V; // (headDim)
  wo: M; // (dim, nHeads*headDim)
  attnPostNorm: V; // (dim)
  ffnNorm: V; // (dim)
  wGate: M; // (ffnDim, dim)
  wUp: M; // (ffnDim, dim)
  wDown: M; // (dim, ffnDim)
  ffnPostNorm: V; // (dim)
}

export interface Gemma3Weights<M, V> {
  tokenEmbd: M; // (vocab, dim)
  outputNorm: V; // (dim)
  output?: M; // (vocab, dim); absent (always, in released models): tied to tokenEmbd
  layers: Gemma3Layer<M, V>[];
}

function recordGpu(b: StepRecorder, weights: GpuWeights): void {
  const w = typedWeights<Gemma3Weights<GpuWeight, GPUBuffer>>(weights);
  const c = b.config;
  const { x, xn, q, k, v, att, gate } = b.a;
  b.embed(w.tokenEmbd, c.embeddingScale);
  w.layers.forEach((L, l) => {
    // Attention, its output normalized into xn before the residual add.
    b.norm(x, L.attnNorm, xn);
    b.linear(L.wq, xn, q);
    b.linear(L.wk, xn, k);
    b.linear(L.wv, xn, v);
    b.headNorm(q, L.qNorm, c.nHeads);
    b.headNorm(k, L.kNorm, c.nKvHeads);
    b.attention(l);
    b.linear(L.wo, att, xn);
    b.norm(xn, L.attnPostNorm);
    b.residual(x, xn);
    // Feed-forward (GEGLU), likewise.
    b.norm(x, L.ffnNorm, xn);
    b.geglu(L.wGate, L.wUp, xn);
    b.linear(L.wDown, gate, xn);
    b.norm(xn, L.ffnPostNorm);
    b.residual(x, xn);
    b.endLayer();
  });
  b.outputHead(w.outputNorm, w.output ?? w.tokenEmbd, c.finalLogitSoftcap);
}

function forwardCpu(r: CpuRun, weights: CpuWeights, token: number, pos: number): void {
  const w = typedWeights<Gemma3Weights<Float32Array, Float32Array>>(weights);
  const { c, s } = r;
  const { dim, nHeads, nKvHeads, headDim, ffnDim, rmsEps } = c;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  embedRow(s.x, w.tokenEmbd, token, c.embeddingScale);
  w.layers.forEach((L, l) => {
    rmsnorm(s.xn, s.x, L.attnNorm, rmsEps);
    const k = r.kRow(l, pos);
    matvec(s.q, L.wq, s.xn, qDim, dim);
    matvec(k, L.wk, s.xn, kvDim, dim);
    matvec(r.vRow(l, pos), L.wv, s.xn, kvDim, dim);
    rmsnormHeads(s.q, L.qNorm, nHeads, headDim, rmsEps);
    rmsnormHeads(k, L.kNorm, nKvHeads, headDim, rmsEps);
    r.attend(l, pos);
    matvec(s.proj, L.wo, s.att, dim, qDim);
    rmsnorm(s.proj, s.proj, L.attnPostNorm, rmsEps);
    addInto(s.x, s.proj);

    rmsnorm(s.xn, s.x, L.ffnNorm, rmsEps);
    matvec(s.gate, L.wGate, s.xn, ffnDim, dim);
    matvec(s.up, L.wUp, s.xn, ffnDim, dim);
    geglu(s.gate, s.up);
    matvec(s.proj, L.wDown, s.gate, dim, ffnDim);
    rmsnorm(s.proj, s.proj, L.ffnPostNorm, rmsEps);
    addInto(s.x, s.proj);
  });
  r.head(w.outputNorm, w.output ?? w.tokenEmbd);
}

export const gemma3Family: FamilyProgram = { recordGpu, forwardCpu };
