// The phi3 forward program, as llama.cpp's src/models/phi3.cpp builds it:
//   x += Wo · attention(rope(Wq·n), rope(Wk·n), Wv·n),   n = rmsnorm(x) · attn_norm
//   x += Wdown · (silu(Wgate·m) * Wup·m),                m = rmsnorm(x) · ffn_norm
// Q, K and V come fused in attn_qkv and gate and up in ffn_up; the loader splits them by rows
// (src/model/tensors.ts), so the program reads like llama's without biases or Q/K norms. LongRoPE:
// rope_factors_long or _short divides the frequencies, chosen by the runtime context against
// rope.scaling.original_context_length, and rope.scaling.attn_factor multiplies cos and sin (both in
// the tables). Phi-3's sliding_window key is ignored, as llama.cpp ignores it.
import type { GpuWeight } from '../../gpu/weights.ts';
import type { StepRecorder } from '../blocks.ts';
import { addInto, embedRow, matvec, rmsnorm, swiglu, type CpuRun } from '../cpu-blocks.ts';
import { typedWeights, type CpuWeights, type FamilyProgram, type GpuWeights } from './types.ts';

export interface Phi3Layer<M, V> {
  attnNorm: V; // (dim)
  wq: M; // (nHeads*headDim, dim): rows of attn_qkv
  wk: M; // (nKvHeads*headDim, dim)
  wv: M; // (nKvHeads*headDim, dim)
  wo: M; // (dim, nHeads*headDim)
  ffnNorm: V; // (dim)
  wGate: M; // (ffnDim, dim): the first half of ffn_up's rows
  wUp: M; // (ffnDim, dim): the second half
  wDown: M; // (dim, ffnDim)
}

export interface Phi3Weights<M, V> {
  tokenEmbd: M; // (vocab, dim)
  outputNorm: V; // (dim)
  output?: M; // (vocab, dim)
  layers: Phi3Layer<M, V>[];
}

function recordGpu(b: StepRecorder, weights: GpuWeights): void {
  const w = typedWeights<Phi3Weights<GpuWeight, GPUBuffer>>(weights);
  const { x, xn, q, k, v, att, gate } = b.a;
  b.embed(w.tokenEmbd);
  w.layers.forEach((L, l) => {
    b.norm(x, L.attnNorm, xn);
    b.linear(L.wq, xn, q);
    b.linear(L.wk, xn, k);
    b.linear(L.wv, xn, v);
    b.attention(l);
    b.linear(L.wo, att, x, { accumulate: true });
    b.norm(x, L.ffnNorm, xn);
    b.swiglu(L.wGate, L.wUp, xn);
    b.linear(L.wDown, gate, x, { accumulate: true });
    b.endLayer();
  });
  b.outputHead(w.outputNorm, w.output ?? w.tokenEmbd);
}

function forwardCpu(r: CpuRun, weights: CpuWeights, token: number, pos: number): void {
  const w = typedWeights<Phi3Weights<Float32Array, Float32Array>>(weights);
  const { c, s } = r;
  const { dim, nHeads, nKvHeads, headDim, ffnDim, rmsEps } = c;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  embedRow(s.x, w.tokenEmbd, token);
  w.layers.forEach((L, l) => {
    rmsnorm(s.xn, s.x, L.attnNorm, rmsEps);
    matvec(s.q, L.wq, s.xn, qDim, dim);
    matvec(r.kRow(l, pos), L.wk, s.xn, kvDim, dim);
    matvec(r.vRow(l, pos), L.wv, s.xn, kvDim, dim);
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

export const phi3Family: FamilyProgram = { recordGpu, forwardCpu };
