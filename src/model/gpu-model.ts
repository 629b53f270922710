// The GPU runtime of a model: loads its weights by the tensor table, has its family's forward
// program (src/model/families/) record one step from the shared blocks (src/model/blocks.ts) once at
// load, and replays that step for prefill, decode, chunk computes and linked requests. A step ends
// with the output head and GPU sampling, so only the chosen id is read back. Nothing here depends on
// the architecture: the program and the tables say what differs.
import { GPUError, InvalidRequestError, KVCacheError, UnsupportedModelError, throwIfAborted } from '../errors.ts';
import type { GGUFFile, GGUFTensorInfo } from '../gguf/reader.ts';
import { readTensorBytes } from '../gguf/reader.ts';
import type { ByteSource } from '../gguf/source.ts';
import { encodeDispatches, type GpuContext } from '../gpu/context.ts';
import type { AttentionOptions } from '../gpu/ops/attention.ts';
import { uploadVector, uploadWeight, type GpuWeight } from '../gpu/weights.ts';
import { DEFAULT_BLEND_LAYER, kvDeviation, selectByDeviation } from '../kv/cacheblend.ts';
import type { ChunkBackend, ChunkKV } from '../kv/chunk-cache.ts';
import type { KvDtype } from '../kv/chunk-record.ts';
import { f16BitsToF32 } from '../kv/f16.ts';
import { KV_PAGE_SIZE } from '../kv/pages.ts';

export type { ChunkKV } from '../kv/chunk-cache.ts';
import { PagedKvCache, type PageSpan, type Sequence } from '../kv/paged-cache.ts';
import type { LoadProgress } from '../engine/types.ts';
import { StepRecorder, uploadRopeTables, type StepProgram } from './blocks.ts';
import type { ModelConfig } from './config.ts';
import { FAMILIES } from './families/index.ts';
import { allTensors, loadTensors, resolveTensors, ropeFactors } from './tensors.ts';

export interface SamplingParams {
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

export interface GpuModelOptions {
  /** Longest sequence (prompt + generated tokens). */
  maxContext: number;
  /** Largest number of tokens one prefill pass processes; longer prompts run in several passes. */
  maxBatch?: number;
  /** KV pool size in tokens, shared by the sequence and cached chunks (default maxContext). */
  kvBudgetTokens?: number;
  /** How KV is held in the pool (default 'f16': half the memory; values are rounded to f16 when written). */
  kvDtype?: KvDtype;
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
}

/** How a linked request was computed, in prompt tokens. */
export interface LinkStats {
  /** Chunk tokens whose cached KV was used as is. */
  reused: number;
  /** Chunk tokens recomputed in place (AttnLink's first k of each chunk). */
  recomputed: number;
  /** Prefix and question tokens computed from scratch. */
  computed: number;
  /** cacheblend: chunk tokens run through the early layers to find the ones to recompute. */
  probed?: number;
}

/** Tokens [from, to) of a chunk's spans (token order), as spans of the same pages. */
function spansSlice(spans: readonly PageSpan[], from: number, to: number): PageSpan[] {
  const out: PageSpan[] = [];
  let start = 0; // index of the span's first token
  for (const s of spans) {
    const off = s.slotOffset ?? 0;
    const a = Math.max(from, start);
    const b = Math.min(to, start + s.nTokens);
    if (a < b) out.push({ page: s.page, nTokens: b - a, slotOffset: off + (a - start) });
    start += s.nTokens;
    if (start >= to) break;
  }
  return out;
}

/**
 * Which chunk tokens a linked request recomputes: the first `k` of every chunk (AttnLink), given
 * indices, or (`blend`) the `ratio` of all chunk tokens whose KV at `layer` deviates most from
 * what a full prefill gives them (CacheBlend-style, see src/kv/cacheblend.ts).
 */
export type RecomputeRule = { k: number } | { indices: readonly (readonly number[])[] } | { blend: { ratio: number; layer?: number } };

const STORAGE = 0x80 | 0x8 | 0x4; // STORAGE | COPY_DST | COPY_SRC
const PAGE_TABLE_SLACK = 64;
const READBACK_BYTES = 16;
const DEFAULT_MAX_BATCH = 256;

/** What GpuModel.load allocates besides the weights, the KV pool's buffers and the RoPE table. */
export interface GpuModelSizes {
  maxBatch: number;
  /** Token slots of the KV pool. */
  poolTokens: number;
  /** Entries of the page-table buffer (recomputing scattered chunk tokens, cacheblend, splits chunks into many entries: room for one per token). */
  pageTableEntries: number;
  /** The options of each layer's two attention forms (their split partials are allocated by attentionDispatches). */
  attention: { prefill: AttentionOptions; decode: AttentionOptions };
  /** Bytes of each activation buffer, for maxBatch tokens at a time. */
  activations: Record<'tokens' | 'positions' | 'slots' | 'x' | 'xn' | 'q' | 'k' | 'v' | 'att' | 'gate' | 'up' | 'xLast' | 'xnLast' | 'logits' | 'readbacks', number>;
}

/** The sizes load allocates for these options: the one place both load and the fit check (src/model/footprint.ts) read them. */
export function gpuModelSizes(c: ModelConfig, opts: Pick<GpuModelOptions, 'maxContext' | 'maxBatch' | 'kvBudgetTokens'>): GpuModelSizes {
  const maxBatch = Math.max(1, Math.min(opts.maxBatch ?? DEFAULT_MAX_BATCH, opts.maxContext));
  const B = maxBatch;
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  return {
    maxBatch,
    poolTokens: Math.max(opts.maxContext, opts.kvBudgetTokens ?? 0),
    pageTableEntries: opts.maxContext + PAGE_TABLE_SLACK,
    attention: { prefill: { kind: 'prefill', maxTokens: B }, decode: { kind: 'decode', maxTokens: 1 } },
    activations: {
      tokens: B * 4, // (B,) u32
      positions: B * 4, // (B,) u32
      slots: B * 4, // (B,) u32
      x: B * c.dim * 4,
      xn: B * c.dim * 4,
      q: B * qDim * 4,
      k: B * kvDim * 4,
      v: B * kvDim * 4,
      att: B * qDim * 4,
      gate: B * c.ffnDim * 4,
      up: B * c.ffnDim * 4,
      xLast: c.dim * 4,
      xnLast: c.dim * 4,
      logits: c.vocabSize * 4,
      readbacks: 2 * READBACK_BYTES,
    },
  };
}

export class GpuModel implements ChunkBackend {
  readonly maxContext: number;
  readonly maxBatch: number;
  readonly weightBytes: number;
  readonly kv: PagedKvCache;
  private seq: Sequence;
  private step = 0;
  private destroyed = false;
  /** A decode step submitted ahead of time (see decode). */
  private pending: Promise<number> | undefined;

  private constructor(
    private readonly ctx: GpuContext,
    readonly config: ModelConfig,
    private readonly bufs: {
      tokens: GPUBuffer; // (maxBatch,) u32 ids; the sampler writes the next id into [0]
      positions: GPUBuffer; // (maxBatch,) u32
      slots: GPUBuffer; // (maxBatch,) u32 KV slot of each token
      pageTable: GPUBuffer; // (entries, 4) u32
      x: GPUBuffer; // (maxBatch, dim) residual stream
      xLast: GPUBuffer; // (dim,) the last token's residual
      logits: GPUBuffer; // (vocab,)
      readbacks: GPUBuffer[]; // MAP_READ, one u32 each: a ring so a step can be read while the next runs
      owned: GPUBuffer[];
    },
    private readonly program: StepProgram,
    weights: { bytes: number },
    kv: PagedKvCache,
    maxContext: number,
    maxBatch: number,
  ) {
    this.weightBytes = weights.bytes;
    this.kv = kv;
    this.seq = kv.newSequence();
    this.maxContext = maxContext;
    this.maxBatch = maxBatch;
  }

  static async load(ctx: GpuContext, source: ByteSource, file: GGUFFile, config: ModelConfig, opts: GpuModelOptions): Promise<GpuModel> {
    const { signal } = opts;
    const tensors = resolveTensors(file, config);
    const maxContext = opts.maxContext;
    const sizes = gpuModelSizes(config, opts);
    const { maxBatch } = sizes;
    const { nKvHeads, headDim } = config;

    // Everything that can be checked without allocating is checked first.
    checkFits(ctx, config, maxBatch);
    const kv = new PagedKvCache(ctx, { nLayers: config.nLayers, nKvHeads, headDim }, sizes.poolTokens, { dtype: opts.kvDtype ?? 'f16' });

    // Weights: stream every tensor from the source, repack, upload (fused matrices split by rows).
    const total = allTensors(tensors).reduce((s, t) => s + t.byteLength, 0);
    let loaded = 0;
    const progress = (n: number) => opts.onProgress?.({ phase: 'weights', loadedBytes: loaded + n, totalBytes: total });
    const read = async (t: GGUFTensorInfo): Promise<Uint8Array> => {
      throwIfAborted(signal);
      const bytes = await readTensorBytes(source, t, { signal, onProgress: (n) => progress(n) });
      loaded += t.byteLength;
      progress(0);
      return bytes;
    };
    let weightBytes = 0;
    const weights = await loadTensors<GpuWeight, GPUBuffer>(tensors, config, read, {
      matrix: (label, type, bytes, rows, cols) => {
        const w = uploadWeight(ctx, label, type, bytes, rows, cols);
        weightBytes += w.byteLength;
        return w;
      },
      vector: (label, type, bytes, n) => {
        weightBytes += n * 4;
        return uploadVector(ctx, label, type, bytes, n);
      },
    });

    // Activations, sized for the largest batch.
    opts.onProgress?.({ phase: 'compile', loadedBytes: total, totalBytes: total });
    const owned: GPUBuffer[] = [];
    const buf = (label: string, bytes: number, usage = STORAGE) => {
      const b = ctx.createBuffer(label, bytes, usage);
      owned.push(b);
      return b;
    };
    const a = sizes.activations;
    const pageTable = kv.createPageTableBuffer(sizes.pageTableEntries);
    owned.push(pageTable);
    const acts = {
      tokens: buf('tokens', a.tokens),
      positions: buf('positions', a.positions),
      slots: buf('slots', a.slots),
      pageTable,
      x: buf('x', a.x),
      xn: buf('xn', a.xn),
      q: buf('q', a.q),
      k: buf('k', a.k),
      v: buf('v', a.v),
      att: buf('att', a.att),
      gate: buf('gate', a.gate),
      up: buf('up', a.up),
      xLast: buf('x-last', a.xLast),
      xnLast: buf('xn-last', a.xnLast),
      logits: buf('logits', a.logits),
    };
    const readbacks = [0, 1].map((i) => buf(`readback-${i}`, READBACK_BYTES, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST));
    const rope = uploadRopeTables(ctx, config, maxContext, ropeFactors(weights.global, config, maxContext));
    owned.push(...rope.owned);

    // The family's program, recorded once.
    const recorder = new StepRecorder(ctx, config, acts, kv, rope, maxBatch, maxContext, sizes.attention);
    FAMILIES[config.family].recordGpu(recorder, weights);
    const program = recorder.finish();

    const model = new GpuModel(
      ctx,
      config,
      { tokens: acts.tokens, positions: acts.positions, slots: acts.slots, pageTable, x: acts.x, xLast: acts.xLast, logits: acts.logits, readbacks, owned },
      program,
      { bytes: weightBytes },
      kv,
      maxContext,
      maxBatch,
    );
    // Drivers compile pipelines on first use: run one prefill pass and one decode step now, so
    // the first request's time to first token is not spent compiling.
    if (maxContext >= 3) {
      await model.prefill([0, 0], { temperature: 0, topK: 0, topP: 1, seed: 0 }, signal);
      await model.decode({ temperature: 0, topK: 0, topP: 1, seed: 0 });
      await model.beginSequence();
    }
    return model;
  }

  /** Tokens in the current sequence. */
  get length(): number {
    return this.seq.nTokens;
  }

  /** Starts a new sequence: its pages go back to the pool. */
  async beginSequence(): Promise<void> {
    await this.settle();
    this.seq.release();
    this.seq = this.kv.newSequence();
    this.step = 0;
  }

  /**
   * Runs the prompt through the model (in passes of at most maxBatch tokens) and samples the
   * first generated token on the GPU. Returns its id.
   */
  async prefill(tokens: number[], sampling: SamplingParams, signal?: AbortSignal): Promise<number> {
    this.checkRoom(tokens.length);
    this.checkTokens(tokens);
    return this.runTokens(this.seq, tokens, sampling, signal);
  }

  /**
   * Runs tokens through the model in passes of at most maxBatch, at the next positions or at
   * `positions` (one per token); samples after the last pass when `sampling` is given.
   */
  private async runTokens(seq: Sequence, tokens: readonly number[], sampling: SamplingParams | undefined, signal?: AbortSignal, positions?: readonly number[]): Promise<number> {
    let result = -1;
    for (let i = 0; i < tokens.length; i += this.maxBatch) {
      throwIfAborted(signal);
      const part = tokens.slice(i, i + this.maxBatch);
      const last = i + this.maxBatch >= tokens.length;
      this.ctx.device.queue.writeBuffer(this.bufs.tokens, 0, new Uint32Array(part));
      const placed = positions ? positions.slice(i, i + this.maxBatch) : undefined;
      result = await this.submitStep(seq, part.length, 'prefill', last ? sampling : undefined, placed);
    }
    return result;
  }

  private checkTokens(tokens: readonly number[]): void {
    for (const t of tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= this.config.vocabSize) {
        throw new UnsupportedModelError('bad-token', `token id ${t} is outside the model's vocabulary of ${this.config.vocabSize}`, { token: t });
      }
    }
  }

  /**
   * Feeds the last sampled token (already on the GPU) and samples the next one.
   * With `speculate`, the following step is submitted before this one's id is read back, so the
   * GPU never waits for the host's round trip; the next decode() call then only collects it.
   * A speculated step that is not collected leaves one extra token in the sequence, which
   * beginSequence() discards.
   */
  async decode(sampling: SamplingParams, speculate = false): Promise<number> {
    let current = this.pending;
    this.pending = undefined;
    if (!current) {
      this.checkRoom(1);
      current = this.submitStep(this.seq, 1, 'decode', sampling);
    }
    if (speculate && this.seq.nTokens < this.maxContext) {
      this.pending = this.submitStep(this.seq, 1, 'decode', sampling);
      // Collected by the next call or dropped by settle(); a lost device must not surface as an unhandled rejection.
      this.pending.catch(() => undefined);
    }
    return current;
  }

  /**
   * Waits for a speculated step, if any, and drops its result. A generation that ends before
   * collecting it calls this, so no readback is in flight when the model is destroyed or the
   * process exits (Dawn can crash at exit with a mapping pending).
   */
  async settle(): Promise<void> {
    const p = this.pending;
    this.pending = undefined;
    if (p) await p.catch(() => undefined);
  }

  /**
   * Computes a chunk's KV alone (EPIC's chunk prefill) into pages that stay in the pool until the
   * returned handle is released: `context` tokens first (a lead-in, from position 0), then the
   * chunk; the lead-in's KV is dropped, so the handle holds the chunk's tokens only. The current
   * sequence is left as it was.
   */
  async computeChunk(tokens: readonly number[], signal?: AbortSignal, context: readonly number[] = []): Promise<ChunkKV> {
    this.checkTokens(tokens);
    this.checkTokens(context);
    await this.settle();
    if (this.destroyed) throw new GPUError('model-destroyed', 'this model was unloaded; load it again');
    const seq = this.kv.newSequence();
    try {
      await this.runTokens(seq, [...context, ...tokens], undefined, signal);
      const spans = spansSlice(seq.spans(), context.length, context.length + tokens.length);
      return this.holdSpans(tokens, spans);
    } finally {
      seq.release();
    }
  }

  /** Free pages in the KV pool. */
  freePages(): number {
    return this.kv.allocator.freePages;
  }

  /** Pages the current sequence needs to grow by n tokens. */
  pagesToGrow(n: number): number {
    return this.seq.pagesNeeded(n);
  }

  get nLayers(): number {
    return this.config.nLayers;
  }

  get kvDim(): number {
    return this.config.nKvHeads * this.config.headDim;
  }

  get kvDtype(): KvDtype {
    return this.kv.dtype;
  }

  /** A handle that keeps the spans' pages in the pool until released. */
  private holdSpans(tokens: readonly number[], spans: readonly PageSpan[]): ChunkKV {
    const holder = this.kv.newSequence();
    holder.mapShared(spans, 0);
    return { tokens: [...tokens], spans, release: () => holder.release() };
  }

  /**
   * Starts a sequence `[prefix] [chunk ...] [question]` from cached chunks and samples the first
   * generated token. Chunk pages are placed at their absolute positions by reference (keys are
   * stored unrotated, so no copy and no re-rotation); the tokens `rule` picks are then recomputed,
   * all chunks batched into one pass per layer, each attending causally to everything before it,
   * into private pages; then the question is prefilled.
   * `{k: 0}` is naive reuse; `{k}` with k ≥ a chunk's length recomputes that chunk entirely.
   */
  async prefillLinked(
    parts: { prefix: number[]; chunks: readonly ChunkKV[]; question: number[] } & RecomputeRule,
    sampling: SamplingParams,
    signal?: AbortSignal,
  ): Promise<{ next: number; stats: LinkStats; recomputed: number[][] }> {
    const { prefix, chunks, question } = parts;
    if (question.length === 0) throw new UnsupportedModelError('empty-question', 'a linked request needs at least one question token to sample from');
    const total = prefix.length + chunks.reduce((s, c) => s + c.tokens.length, 0) + question.length;
    await this.beginSequence();
    this.checkRoom(total);
    this.checkTokens(prefix);
    this.checkTokens(question);
    const stats: LinkStats = { reused: 0, recomputed: 0, computed: prefix.length + question.length };
    if (prefix.length > 0) await this.runTokens(this.seq, prefix, undefined, signal);
    let selected: number[][];
    if ('blend' in parts) {
      const { ratio, layer = DEFAULT_BLEND_LAYER } = parts.blend;
      if (!(ratio >= 0 && ratio <= 1)) throw new InvalidRequestError('bad-ratio', `the cacheblend ratio must be in [0, 1], got ${ratio}`);
      const deviation = ratio > 0 ? await this.blendDeviation(prefix.length, chunks, Math.min(Math.max(0, layer), this.config.nLayers - 1), signal) : chunks.map((c) => new Float32Array(c.tokens.length));
      selected = selectByDeviation(deviation, ratio);
      stats.probed = ratio > 0 ? total - prefix.length - question.length : 0;
    } else if ('indices' in parts) {
      selected = chunks.map((c, i) => {
        const idx = [...(parts.indices[i] ?? [])];
        idx.forEach((t, j) => {
          if (!Number.isInteger(t) || t < 0 || t >= c.tokens.length || (j > 0 && t <= idx[j - 1])) {
            throw new InvalidRequestError('bad-indices', `recompute indices of chunk ${i} must increase inside 0..${c.tokens.length - 1}; got ${t}`);
          }
        });
        return idx;
      });
    } else {
      const k = parts.k;
      if (!Number.isInteger(k) || k < 0) throw new InvalidRequestError('bad-k', `k must be a non-negative integer, got ${k}`);
      selected = chunks.map((c) => Array.from({ length: Math.min(k, c.tokens.length) }, (_, i) => i));
    }
    // Place every chunk first, so each recomputed token sees all chunk KV before it.
    let pos = prefix.length;
    const recompute: number[] = [];
    const recomputePositions: number[] = [];
    chunks.forEach((c, ci) => {
      const sel = selected[ci];
      let from = 0; // start of the run of kept tokens
      for (const t of [...sel, c.tokens.length]) {
        if (t > from) this.seq.mapShared(spansSlice(c.spans, from, t), pos + from);
        if (t < c.tokens.length) {
          recompute.push(c.tokens[t]);
          recomputePositions.push(pos + t);
        }
        from = t + 1;
      }
      stats.reused += c.tokens.length - sel.length;
      stats.recomputed += sel.length;
      pos += c.tokens.length;
    });
    if (recompute.length > 0) await this.runTokens(this.seq, recompute, undefined, signal, recomputePositions);
    const next = await this.runTokens(this.seq, question, sampling, signal, Array.from(question, (_, i) => pos + i));
    return { next, stats, recomputed: selected };
  }

  /**
   * CacheBlend's probe: runs every chunk token at its absolute position through layers
   * 0..layer only (a full prefill's KV up to that layer, into a scratch sequence that sees the
   * current sequence's prefix by reference), then compares each token's fresh K and V at `layer`
   * with its cached ones. Returns, per chunk, each token's squared deviation.
   */
  private async blendDeviation(prefixLen: number, chunks: readonly ChunkKV[], layer: number, signal?: AbortSignal): Promise<Float32Array[]> {
    const saved = this.seq;
    const probe = this.kv.newSequence();
    try {
      if (prefixLen > 0) probe.mapShared(spansSlice(saved.spans(), 0, prefixLen), 0);
      const tokens = chunks.flatMap((c) => c.tokens);
      for (let i = 0; i < tokens.length; i += this.maxBatch) {
        throwIfAborted(signal);
        const part = tokens.slice(i, i + this.maxBatch);
        this.ctx.device.queue.writeBuffer(this.bufs.tokens, 0, new Uint32Array(part));
        await this.submitStep(probe, part.length, 'prefill', undefined, undefined, layer + 1);
      }
      const fresh = spansSlice(probe.spans(), prefixLen, prefixLen + tokens.length);
      const [f, c] = await this.readLayerRows(layer, [fresh, chunks.flatMap((ch) => ch.spans)]);
      const kvDim = this.config.nKvHeads * this.config.headDim;
      const dev = kvDeviation(f.k, f.v, c.k, c.v, kvDim);
      const out: Float32Array[] = [];
      let at = 0;
      for (const ch of chunks) {
        out.push(dev.slice(at, at + ch.tokens.length));
        at += ch.tokens.length;
      }
      return out;
    } finally {
      probe.release();
    }
  }

  /** One layer's K and V rows (f32, token order) of each list of spans, read back in one copy. */
  private async readLayerRows(layer: number, lists: readonly (readonly PageSpan[])[]): Promise<{ k: Float32Array; v: Float32Array }[]> {
    const raw = await this.readRows([layer], lists);
    // Pools in f16 come back as halves; the deviation is measured in f32 either way.
    const all = this.kv.dtype === 'f16' ? f16BitsToF32(new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2)) : new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const rowWords = this.config.nKvHeads * this.config.headDim;
    const out: { k: Float32Array; v: Float32Array }[] = [];
    let at = 0;
    for (const list of lists) {
      const w = list.reduce((s, x) => s + x.nTokens, 0) * rowWords;
      out.push({ k: all.subarray(at, at + w), v: all.subarray(at + w, at + 2 * w) });
      at += 2 * w;
    }
    return out;
  }

  /**
   * K and V rows of the spans, read back in one copy, in the order layer by layer, then list by
   * list, then K rows before V rows, each in span order ((nKvHeads*headDim) values per row, in the pool's dtype).
   */
  private async readRows(layers: readonly number[], lists: readonly (readonly PageSpan[])[]): Promise<Uint8Array> {
    const rowBytes = this.kv.rowBytes;
    const tokens = lists.reduce((s, l) => s + l.reduce((t, x) => t + x.nTokens, 0), 0);
    const size = layers.length * 2 * tokens * rowBytes;
    const staging = this.ctx.device.createBuffer({ size: Math.max(16, size), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.ctx.device.createCommandEncoder({ label: 'read-kv-rows' });
    let dst = 0;
    for (const layer of layers) {
      const { k, v } = this.kv.layers[layer];
      for (const list of lists) {
        for (const pool of [k, v]) {
          for (const s of list) {
            enc.copyBufferToBuffer(pool, (s.page * KV_PAGE_SIZE + (s.slotOffset ?? 0)) * rowBytes, staging, dst, s.nTokens * rowBytes);
            dst += s.nTokens * rowBytes;
          }
        }
      }
    }
    this.ctx.device.queue.submit([enc.finish()]);
    try {
      await staging.mapAsync(GPUMapMode.READ);
      return new Uint8Array(staging.getMappedRange(0, size).slice(0));
    } finally {
      staging.destroy();
    }
  }

  /**
   * Starts a sequence whose first `reuse` tokens are taken by reference from `cached` (a prompt
   * kept by holdPrompt: exactly the same tokens at the same positions, so its KV is exact), runs
   * the rest of `tokens` and samples the first generated token.
   */
  async prefillFromPrefix(cached: ChunkKV | undefined, reuse: number, tokens: number[], sampling: SamplingParams, signal?: AbortSignal): Promise<number> {
    if (!Number.isInteger(reuse) || reuse < 0 || reuse >= tokens.length || reuse > (cached?.tokens.length ?? 0)) {
      throw new InvalidRequestError('bad-reuse', `a prefix reuse of ${reuse} tokens needs a cached prompt that long and at least one new token (prompt ${tokens.length})`);
    }
    for (let i = 0; i < reuse; i++) {
      if (cached!.tokens[i] !== tokens[i]) throw new InvalidRequestError('bad-reuse', `the cached prompt differs from this one at token ${i}`);
    }
    await this.beginSequence();
    this.checkRoom(tokens.length);
    this.checkTokens(tokens);
    if (reuse > 0) this.seq.mapShared(spansSlice(cached!.spans, 0, reuse), 0);
    return this.runTokens(this.seq, tokens.slice(reuse), sampling, signal);
  }

  /**
   * Keeps the KV of the current sequence's first `tokens.length` tokens (its prompt, run in
   * order by prefill or prefillFromPrefix) by reference, for later prefillFromPrefix calls.
   */
  holdPrompt(tokens: readonly number[]): ChunkKV {
    if (tokens.length > this.seq.nTokens) {
      throw new KVCacheError('bad-hold', `the sequence has ${this.seq.nTokens} tokens; cannot hold a prompt of ${tokens.length}`);
    }
    return this.holdSpans(tokens, spansSlice(this.seq.spans(), 0, tokens.length));
  }

  /**
   * A chunk's KV as bytes, for storage outside the GPU: layer by layer, K rows then V rows, each
   * (nTokens, nKvHeads*headDim) f32 in token order (keys before RoPE).
   */
  async exportChunk(chunk: ChunkKV): Promise<Uint8Array> {
    return this.readRows(
      this.kv.layers.map((_, l) => l),
      [chunk.spans],
    );
  }

  /** Puts stored chunk KV (the layout exportChunk writes) into fresh pages of the pool. */
  importChunk(tokens: readonly number[], data: Uint8Array): ChunkKV {
    this.checkTokens(tokens);
    if (this.destroyed) throw new GPUError('model-destroyed', 'this model was unloaded; load it again');
    const rowBytes = this.kv.rowBytes;
    const n = tokens.length;
    if (data.byteLength !== this.config.nLayers * 2 * n * rowBytes) {
      throw new KVCacheError('bad-chunk-data', `stored chunk KV has ${data.byteLength} bytes but ${n} tokens of this model need ${this.config.nLayers * 2 * n * rowBytes}`, {
        have: data.byteLength,
        need: this.config.nLayers * 2 * n * rowBytes,
      });
    }
    const seq = this.kv.newSequence();
    try {
      seq.append(n);
      const spans = seq.spans();
      let src = 0;
      for (const layer of this.kv.layers) {
        for (const pool of [layer.k, layer.v]) {
          for (const s of spans) {
            const bytes = s.nTokens * rowBytes;
            this.ctx.device.queue.writeBuffer(pool, (s.page * KV_PAGE_SIZE + (s.slotOffset ?? 0)) * rowBytes, data, src, bytes);
            src += bytes;
          }
        }
      }
      return this.holdSpans(tokens, spans);
    } finally {
      seq.release();
    }
  }

  /** Logits of the last processed token (tests compare them with the CPU reference). */
  async readLogits(): Promise<Float32Array> {
    const n = this.config.vocabSize;
    const staging = this.ctx.device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.ctx.device.createCommandEncoder();
    enc.copyBufferToBuffer(this.bufs.logits, 0, staging, 0, n * 4);
    this.ctx.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    return out;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.pending?.catch(() => undefined);
    this.pending = undefined;
    this.destroyed = true;
    this.seq.release();
    this.kv.destroy();
    for (const b of this.bufs.owned) b.destroy();
  }

  private checkRoom(n: number): void {
    if (this.destroyed) throw new GPUError('model-destroyed', 'this model was unloaded; load it again');
    this.ctx.assertAlive();
    if (this.seq.nTokens + n > this.maxContext) {
      throw new GPUError('context-full', `the sequence would hold ${this.seq.nTokens + n} tokens but the context is ${this.maxContext}`, {
        tokens: this.seq.nTokens + n,
        maxContext: this.maxContext,
      });
    }
  }

  /**
   * One step over n tokens: sizes every op, records one command buffer and submits it now; the
   * promise resolves to the sampled id once it is read back (-1 without sampling).
   */
  private submitStep(seq: Sequence, n: number, kind: 'prefill' | 'decode', sampling: SamplingParams | undefined, placed?: readonly number[], layers?: number): Promise<number> {
    const { ctx, bufs, program, config } = this;
    const at = placed ? Uint32Array.from(placed) : undefined;
    const { positions, slots } = at ? { positions: at, slots: seq.appendSlots(at) } : seq.append(n);
    const q = ctx.device.queue;
    q.writeBuffer(bufs.positions, 0, positions);
    q.writeBuffer(bufs.slots, 0, slots);
    const nEntries = this.kv.writePageTable(seq, bufs.pageTable);
    for (const op of program.resizable) op.setTokens(n);
    const usePrefill = kind === 'prefill' && n > 1;
    for (const a of program.prefillAttention) a.setStep(usePrefill ? n : 0, nEntries);
    for (const a of program.decodeAttention) a.setStep(usePrefill ? 0 : n, nEntries, undefined, seq.nTokens);
    if (sampling) program.sampler.setParams({ ...sampling, step: this.step });
    ctx.arena.flush();

    const enc = ctx.device.createCommandEncoder({ label: `${kind}-${n}` });
    let pass = enc.beginComputePass();
    encodeDispatches(pass, layers === undefined ? program.body : program.body.slice(0, program.layerEnds[layers - 1]));
    pass.end();
    if (!sampling || layers !== undefined) {
      ctx.device.queue.submit([enc.finish()]);
      return Promise.resolve(-1);
    }
    // The head only needs the last token's residual.
    enc.copyBufferToBuffer(bufs.x, (n - 1) * config.dim * 4, bufs.xLast, 0, config.dim * 4);
    pass = enc.beginComputePass();
    encodeDispatches(pass, program.head);
    pass.end();
    const readback = bufs.readbacks[this.step % bufs.readbacks.length];
    enc.copyBufferToBuffer(bufs.tokens, 0, readback, 0, 4);
    ctx.device.queue.submit([enc.finish()]);
    this.step++;
    return readback.mapAsync(GPUMapMode.READ).then(() => {
      const id = new Uint32Array(readback.getMappedRange(0, 4))[0];
      readback.unmap();
      return id;
    });
  }
}

/** Refuses, before any large allocation, a model whose activations cannot be bound on this device. */
function checkFits(ctx: GpuContext, c: ModelConfig, maxBatch: number): void {
  const limit = Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
  const biggest = Math.max(maxBatch * Math.max(c.ffnDim, c.nHeads * c.headDim, c.dim) * 4, c.vocabSize * 4);
  if (biggest > limit) {
    throw new GPUError(
      'model-too-large',
      `an activation buffer of this model needs ${biggest} bytes but the device binds at most ${limit}; use a smaller batch or a larger GPU`,
      { need: biggest, limit },
    );
  }
}
