// The shared blocks of the GPU forward programs, as llama.cpp's llm_graph_context helpers
// (build_norm, build_attn, build_ffn) serve its per-architecture graphs. Each family's program
// (src/model/families/) calls these once at load to record one step for any token count; GpuModel
// replays it. Every op is recorded for one token and resized per step (setTokens); attention records
// both its prefill and its decode form, and each step enables one.
//
// Activations (B = maxBatch tokens):
//   x (B, dim) residual stream          xn (B, dim) normalized x, or a branch output before its add
//   q (B, nHeads*headDim)               k, v (B, nKvHeads*headDim), K before RoPE
//   att (B, nHeads*headDim)             gate, up (B, ffnDim)
//   xLast, xnLast (dim) the last token  logits (vocab)
import { UnsupportedModelError } from '../errors.ts';
import type { Dispatch, GpuContext } from '../gpu/context.ts';
import { attentionDispatches, type AttentionOptions, type AttentionShape, type AttentionStep } from '../gpu/ops/attention.ts';
import { addDispatch, geluMulDispatch, scaleDispatch, softcapDispatch } from '../gpu/ops/elementwise.ts';
import { embeddingOp } from '../gpu/ops/embedding.ts';
import { kvWriteDispatch } from '../gpu/ops/kv.ts';
import { linearOp } from '../gpu/ops/matmul.ts';
import { mlpGateOp } from '../gpu/ops/mlp.ts';
import { rmsnormOp } from '../gpu/ops/rmsnorm.ts';
import { buildRopeTable, ropeDispatch, uploadRopeTable } from '../gpu/ops/rope.ts';
import { sampleDispatch, type SampleDispatch } from '../gpu/ops/sample.ts';
import type { GpuWeight } from '../gpu/weights.ts';
import type { PagedKvCache } from '../kv/paged-cache.ts';
import type { ModelConfig } from './config.ts';

/** The buffers one step reads and writes (see the top of this file for shapes). */
export interface Activations {
  tokens: GPUBuffer; // (B,) u32 ids; the sampler writes the next id into [0]
  positions: GPUBuffer; // (B,) u32 absolute positions
  slots: GPUBuffer; // (B,) u32 KV slot of each token
  pageTable: GPUBuffer; // (entries, 4) u32
  x: GPUBuffer;
  xn: GPUBuffer;
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  att: GPUBuffer;
  gate: GPUBuffer;
  up: GPUBuffer;
  xLast: GPUBuffer;
  xnLast: GPUBuffer;
  logits: GPUBuffer;
}

/** Ops whose size follows the token count of the step. */
export interface Resizable {
  setTokens(n: number): void;
}

/** The cos/sin tables: global layers', and local (sliding-window) layers' when they differ. */
export interface RopeTables {
  global: GPUBuffer;
  local: GPUBuffer;
}

/**
 * Builds and uploads the RoPE tables for `maxPos` positions: global layers with the model's base,
 * linear scale and frequency factors; local layers (gemma3) with their own base and neither, as
 * llama.cpp does for sliding-window layers. Both carry the attention factor.
 */
export function uploadRopeTables(ctx: GpuContext, c: ModelConfig, maxPos: number, factors: Float32Array | undefined): RopeTables & { owned: GPUBuffer[] } {
  const global = uploadRopeTable(ctx, buildRopeTable(maxPos, c.ropeDim, c.ropeBase, factors, { freqScale: c.ropeFreqScale, attnFactor: c.ropeAttnFactor }));
  if (!c.localLayers.some(Boolean)) return { global, local: global, owned: [global] };
  const local = uploadRopeTable(ctx, buildRopeTable(maxPos, c.ropeDim, c.ropeBaseLocal, undefined, { attnFactor: c.ropeAttnFactor }));
  return { global, local, owned: [global, local] };
}

/** A recorded step: what GpuModel replays. */
export interface StepProgram {
  /** Embedding and layers, for any token count. */
  body: Dispatch[];
  /** Final norm, output head (and softcap) and the sampler, on xLast. */
  head: Dispatch[];
  resizable: Resizable[];
  prefillAttention: AttentionStep[];
  decodeAttention: AttentionStep[];
  sampler: SampleDispatch;
  /** body.length after each layer: body.slice(0, layerEnds[l]) runs layers 0..l. */
  layerEnds: number[];
}

/** Records one step of a forward program from the shared blocks below. */
export class StepRecorder {
  private readonly body: Dispatch[] = [];
  private readonly head: Dispatch[] = [];
  private readonly resizable: Resizable[] = [];
  private readonly prefillAttention: AttentionStep[] = [];
  private readonly decodeAttention: AttentionStep[] = [];
  private readonly layerEnds: number[] = [];
  private sampler: SampleDispatch | undefined;

  constructor(
    private readonly ctx: GpuContext,
    readonly config: ModelConfig,
    readonly a: Activations,
    private readonly kv: PagedKvCache,
    private readonly rope: RopeTables,
    private readonly maxBatch: number,
    private readonly maxContext: number,
    /** Options of each layer's two attention forms (gpuModelSizes: what the footprint counts). */
    private readonly attentionOptions: { prefill: AttentionOptions; decode: AttentionOptions },
  ) {}

  /** Records an op into the body and resizes it with every step. */
  private add<T extends Resizable & ({ dispatches: readonly Dispatch[] } | Dispatch)>(op: T): T {
    if ('dispatches' in op) this.body.push(...op.dispatches);
    else this.body.push(op);
    this.resizable.push(op);
    return op;
  }

  /** x = token_embd[tokens] · scale (gemma3 scales by sqrt(dim); a separate kernel, foldable into the lookup later). */
  embed(table: GpuWeight, scale = 1): void {
    const { dim } = this.config;
    this.add(embeddingOp(this.ctx, table, this.a.tokens, this.a.x, { tokens: 1 }));
    if (scale !== 1) {
      const op = scaleDispatch(this.ctx, this.a.x, dim, scale);
      this.add(Object.assign(op, { setTokens: (n: number) => op.setN(n * dim) }));
    }
  }

  /** out = rmsnorm(input) * w, per token over dim; `out` omitted normalizes input in place. */
  norm(input: GPUBuffer, w: GPUBuffer, out?: GPUBuffer): void {
    const op = rmsnormOp(this.ctx, input, w, out, this.config.dim, this.config.rmsEps, { rows: 1 });
    this.add(Object.assign(op, { setTokens: (n: number) => op.setRows(n) }));
  }

  /** Per-head RMSNorm in place (qwen3's and gemma3's Q/K norms): nHeads rows of headDim per token. */
  headNorm(buf: GPUBuffer, w: GPUBuffer, nHeads: number): void {
    const op = rmsnormOp(this.ctx, buf, w, undefined, this.config.headDim, this.config.rmsEps, { rows: nHeads });
    this.add(Object.assign(op, { setTokens: (n: number) => op.setRows(n * nHeads) }));
  }

  /** out (+)= input · wᵀ (+ bias): matvec for one token, the tiled matmul for more. */
  linear(w: GpuWeight, input: GPUBuffer, out: GPUBuffer, opts: { bias?: GPUBuffer; accumulate?: boolean } = {}): void {
    this.add(linearOp(this.ctx, w, input, out, { ...opts, matvecMaxTokens: 1 }));
  }

  /** x += y over dim per token (a residual add). */
  residual(x: GPUBuffer, y: GPUBuffer): void {
    const dim = this.config.dim;
    const op = addDispatch(this.ctx, x, y, dim);
    this.add(Object.assign(op, { setTokens: (n: number) => op.setN(n * dim) }));
  }

  /**
   * Self-attention of layer `l` on q, k, v (projected, and normalized where the family does so):
   * rotates q, writes k (unrotated) and v into the layer's pages, and attends over the sequence's
   * page table into `att` with the layer's window and RoPE table (local layers: the sliding window).
   */
  attention(l: number): void {
    const c = this.config;
    const { q, k, v, att, positions, slots, pageTable } = this.a;
    const local = c.localLayers[l];
    const ropeTable = local ? this.rope.local : this.rope.global;
    const shape: AttentionShape = {
      nHeads: c.nHeads,
      nKvHeads: c.nKvHeads,
      headDim: c.headDim,
      ropeDim: c.ropeDim,
      mode: c.ropeMode,
      maxPos: this.maxContext,
      kvDtype: this.kv.dtype,
      scale: c.attentionScale,
      window: local ? c.slidingWindow : 0,
    };
    const pool = this.kv.layers[l];
    this.add(ropeDispatch(this.ctx, q, positions, ropeTable, shape, 1));
    this.add(kvWriteDispatch(this.ctx, { kPool: pool.k, vPool: pool.v, kNew: k, vNew: v, slots }, c.nKvHeads * c.headDim, 1, { kvDtype: this.kv.dtype }));
    const bufs = { q, kPool: pool.k, vPool: pool.v, pageTable, positions, ropeTable, out: att };
    const pre = attentionDispatches(this.ctx, bufs, shape, this.attentionOptions.prefill);
    const dec = attentionDispatches(this.ctx, bufs, shape, this.attentionOptions.decode);
    // Both forms are recorded; each step enables one of them.
    this.body.push(...pre.dispatches, ...dec.dispatches);
    this.prefillAttention.push(pre);
    this.decodeAttention.push(dec);
  }

  /** SwiGLU: gate = silu(input · wGateᵀ) * (input · wUpᵀ), fused for one token (matvec main_gated). */
  swiglu(wGate: GpuWeight, wUp: GpuWeight, input: GPUBuffer): void {
    this.add(mlpGateOp(this.ctx, wGate, wUp, input, this.a.gate, this.a.up, { tokens: 1, maxTokens: this.maxBatch, matvecMaxTokens: 1 }));
  }

  /**
   * GEGLU: gate = gelu_tanh(input · wGateᵀ) * (input · wUpᵀ), as two products and an elementwise
   * gate (fusing them as swiglu's matvec does is possible later).
   */
  geglu(wGate: GpuWeight, wUp: GpuWeight, input: GPUBuffer): void {
    const ffn = this.config.ffnDim;
    this.linear(wGate, input, this.a.gate);
    this.linear(wUp, input, this.a.up);
    const op = geluMulDispatch(this.ctx, this.a.gate, this.a.up, ffn);
    this.add(Object.assign(op, { setTokens: (n: number) => op.setN(n * ffn) }));
  }

  /** Marks the end of a layer (CacheBlend's probe runs the body up to one). */
  endLayer(): void {
    this.layerEnds.push(this.body.length);
  }

  /**
   * The head on the last token's residual (GpuModel copies it into xLast): logits = output ·
   * rmsnorm(xLast) * outputNorm, softcapped when `softcap` > 0, then the GPU sampler writes the next id.
   */
  outputHead(outputNorm: GPUBuffer, output: GpuWeight, softcap = 0): void {
    const c = this.config;
    const { xLast, xnLast, logits, tokens } = this.a;
    this.head.push(rmsnormOp(this.ctx, xLast, outputNorm, xnLast, c.dim, c.rmsEps, { rows: 1 }));
    this.head.push(...linearOp(this.ctx, output, xnLast, logits, { tokens: 1, matvecMaxTokens: 1 }).dispatches);
    if (softcap > 0) this.head.push(softcapDispatch(this.ctx, logits, c.vocabSize, softcap));
    this.sampler = sampleDispatch(this.ctx, logits, tokens, c.vocabSize, { temperature: 0, topK: 0, topP: 1, seed: 0, step: 0 });
    this.head.push(this.sampler);
  }

  /** The recorded step; the program must have called outputHead. */
  finish(): StepProgram {
    if (!this.sampler) throw new UnsupportedModelError('bad-program', `the ${this.config.family} program recorded no output head`, { family: this.config.family });
    return {
      body: this.body,
      head: this.head,
      resizable: this.resizable,
      prefillAttention: this.prefillAttention,
      decodeAttention: this.decodeAttention,
      sampler: this.sampler,
      layerEnds: this.layerEnds,
    };
  }
}
