// The engine: load a GGUF model onto a GPUDevice, tokenize, and generate token by token with
// GPU sampling. It does not know whether it runs in a Worker or on Node.
import { AbortedError, InvalidRequestError, throwIfAborted } from '../errors.ts';
import type { ByteSource } from '../gguf/source.ts';
import { parseGGUF, type GGUFFile } from '../gguf/reader.ts';
import { GpuContext, describeAdapter, type GpuFeatures } from '../gpu/context.ts';
import type { ShaderSources } from '../gpu/shaders.ts';
import { configFromGGUF, type ModelConfig } from '../model/config.ts';
import { GpuModel, type ChunkKV, type RecomputeRule, type SamplingParams } from '../model/gpu-model.ts';
import { DEFAULT_BLEND_RATIO } from '../kv/cacheblend.ts';
import { KVCacheError } from '../errors.ts';
import { chunkId, fingerprintFromParts } from '../kv/chunk-id.ts';
import { splitDocument, type ChunkerSettings } from '../kv/chunker.ts';
import { decodeChunk, encodeChunk, type ChunkStore } from '../kv/chunk-store.ts';
import { ggmlTypeName } from '../gguf/quant.ts';
import { createTokenizer, renderChatTemplate, type Tokenizer } from '../tokenizer/index.ts';
import { StopMatcher } from './stop.ts';
import { LINK_METHODS } from './types.ts';
import type {
  DocumentsInput,
  FinishReason,
  GenerateInput,
  GenerateOptions,
  GenerationResult,
  LinkMethod,
  LoadOptions,
  ModelInfo,
  TokenEvent,
} from './types.ts';

/**
 * Tokens AttnLink recomputes at the start of each chunk unless a request says otherwise. From
 * bench:pic's quality data on stories260K (bench/results/pic-*.md): no k up to 32 brought the mean
 * KL to full prefill under a tenth of naive reuse with 90% greedy exact match, so the default is
 * the k with the largest KL drop per recomputed token on the default (plain) chunk cut.
 */
export const DEFAULT_ATTNLINK_K = 1;

/**
 * Whether document chunks are computed and linked with their own BOS in front unless a request
 * says otherwise. bench:pic measured both cuts against the full prefill of the plain prompt
 * `[BOS] d1 d2 … q` (what runs without a cache): the BOS tokens inside the prompt change the
 * model's output far more than plain chunk reuse does (bench/results/pic-*.md), so chunks are
 * plain by default.
 */
export const DEFAULT_CHUNK_BOS = false;

/** Prompts a 'prefix' request keeps for later ones (least recently used go first). */
const MAX_HELD_PROMPTS = 8;


export interface EngineOptions {
  shaders: ShaderSources;
  features: GpuFeatures;
  adapterInfo?: string;
  /** Where chunk KV is kept beyond this engine's GPU pool (a folder on Node, IndexedDB in a page). */
  chunkStore?: ChunkStore;
}

interface Loaded {
  file: GGUFFile;
  config: ModelConfig;
  tokenizer: Tokenizer;
  model: GpuModel;
  info: ModelInfo;
  /** Identifies the weights in chunk ids, so KV is never reused across models. */
  fingerprint: string;
  /** Chunk KV by chunk id, in least-recently-used order (oldest first). */
  chunks: Map<string, ChunkKV>;
  /** Prompts kept by 'prefix' requests (exact KV at positions 0..), least recently used first. */
  prompts: ChunkKV[];
}

/** A documents request laid out: the prompt, and how to compute it. */
interface DocumentsPlan {
  /** Chunks carry their own BOS (computed with it, linked with it). */
  chunkBos: boolean;
  prefix: number[];
  chunks: { id: string; tokens: number[] }[];
  question: number[];
}

const DEFAULT_MAX_CONTEXT = 4096;

export class Engine {
  readonly ctx: GpuContext;
  private loaded: Loaded | undefined;
  private busy = false;

  constructor(
    readonly device: GPUDevice,
    private readonly opts: EngineOptions,
  ) {
    this.ctx = new GpuContext(device, opts.features, opts.shaders);
  }

  /** Reads the GGUF header, checks the model fits, uploads the weights and builds the pipelines. */
  async load(source: ByteSource, opts: LoadOptions = {}): Promise<ModelInfo> {
    this.unload();
    opts.onProgress?.({ phase: 'header', loadedBytes: 0, totalBytes: source.size });
    const file = await parseGGUF(source, { signal: opts.signal });
    const config = configFromGGUF(file);
    const tokenizer = createTokenizer(file.metadata);
    const maxContext = Math.min(config.contextLength, opts.maxContext ?? DEFAULT_MAX_CONTEXT);
    const model = await GpuModel.load(this.ctx, source, file, config, {
      maxContext,
      // Room for cached chunks beside the running sequence.
      kvBudgetTokens: opts.kvBudgetTokens ?? 2 * maxContext,
      onProgress: opts.onProgress,
      signal: opts.signal,
    });
    const info: ModelInfo = {
      name: typeof file.metadata['general.name'] === 'string' ? (file.metadata['general.name'] as string) : config.architecture,
      architecture: config.architecture,
      nLayers: config.nLayers,
      dim: config.dim,
      nHeads: config.nHeads,
      nKvHeads: config.nKvHeads,
      headDim: config.headDim,
      vocabSize: config.vocabSize,
      contextLength: maxContext,
      weightType: ggmlTypeName(config.weightType),
      weightBytes: model.weightBytes,
      hasChatTemplate: typeof file.metadata['tokenizer.chat_template'] === 'string',
      adapter: this.opts.adapterInfo ?? describeAdapter(undefined),
      features: { shaderF16: this.opts.features.shaderF16, subgroups: this.opts.features.subgroups },
    };
    const fingerprint = fingerprintFromParts([
      config.architecture,
      info.name,
      String(file.fileSize),
      ...file.tensors.map((t) => `${t.name}:${t.type}:${t.shape.join('x')}`),
    ]);
    this.loaded = { file, config, tokenizer, model, info, fingerprint, chunks: new Map(), prompts: [] };
    opts.onProgress?.({ phase: 'ready', loadedBytes: source.size, totalBytes: source.size });
    return info;
  }

  get modelInfo(): ModelInfo | undefined {
    return this.loaded?.info;
  }

  /** The loaded model's GPU forward pass (tests and benchmarks use it directly). */
  get model(): GpuModel {
    return this.require().model;
  }

  get tokenizer(): Tokenizer {
    return this.require().tokenizer;
  }

  unload(): void {
    for (const c of this.loaded?.chunks.values() ?? []) c.release();
    for (const p of this.loaded?.prompts ?? []) p.release();
    this.loaded?.model.destroy();
    this.loaded = undefined;
  }

  tokenize(text: string, opts: { addBos?: boolean; parseSpecial?: boolean } = {}): number[] {
    return this.require().tokenizer.encode(text, opts);
  }

  detokenize(ids: number[]): string {
    return this.require().tokenizer.decode(ids);
  }

  /** Prompt token ids for an input: raw text gets BOS when the model adds one; messages go through the chat template. */
  promptTokens(input: GenerateInput, opts: Pick<GenerateOptions, 'chunkBos'> = {}): number[] {
    const { tokenizer, file } = this.require();
    if (typeof input === 'object' && 'documents' in input) {
      const plan = this.planDocuments(input, opts.chunkBos ?? DEFAULT_CHUNK_BOS);
      return [...plan.prefix, ...plan.chunks.flatMap((c) => c.tokens), ...plan.question];
    }
    if (typeof input === 'string') return tokenizer.encode(input, { addBos: tokenizer.addBos, parseSpecial: false });
    if ('tokens' in input) {
      for (const t of input.tokens) {
        if (!Number.isInteger(t) || t < 0 || t >= tokenizer.vocabSize) {
          throw new InvalidRequestError('bad-token', `token id ${t} is outside the vocabulary (0..${tokenizer.vocabSize - 1})`, { token: t });
        }
      }
      return [...input.tokens];
    }
    const text = renderChatTemplate(file.metadata, input.messages, { addGenerationPrompt: true });
    // Templates write BOS themselves when the model wants it; special tokens in them are parsed.
    return tokenizer.encode(text, { addBos: false, parseSpecial: true });
  }

  /**
   * Streams generated tokens. The generator's return value carries the full result and metrics.
   * One request at a time: a second concurrent call is refused rather than queued silently.
   */
  async *generate(input: GenerateInput, opts: GenerateOptions = {}): AsyncGenerator<TokenEvent, GenerationResult, void> {
    const { tokenizer, model } = this.require();
    if (this.busy) throw new InvalidRequestError('busy', 'another generation is running on this engine; wait for it or cancel it');
    const maxTokens = opts.maxTokens ?? 128;
    const sampling = samplingFrom(opts);
    if (!Number.isInteger(maxTokens) || maxTokens < 0) {
      throw new InvalidRequestError('bad-max-tokens', `maxTokens must be a non-negative integer, got ${maxTokens}`);
    }
    const docs = typeof input === 'object' && 'documents' in input ? await this.identify(this.planDocuments(input, opts.chunkBos ?? DEFAULT_CHUNK_BOS)) : undefined;
    const promptTokens = docs ? [...docs.prefix, ...docs.chunks.flatMap((c) => c.tokens), ...docs.question] : this.promptTokens(input);
    const method: LinkMethod = opts.method ?? (docs ? 'attnlink' : 'full');
    const k = opts.k ?? DEFAULT_ATTNLINK_K;
    const ratio = opts.ratio ?? DEFAULT_BLEND_RATIO;
    if (!(LINK_METHODS as readonly string[]).includes(method)) throw new InvalidRequestError('bad-method', `method must be one of ${LINK_METHODS.join(', ')}, got '${method}'`);
    if (!docs && method !== 'full' && method !== 'prefix') {
      throw new InvalidRequestError('bad-method', `method '${method}' links document chunks; give {documents, question}, or use 'full' or 'prefix'`);
    }
    if (!Number.isInteger(k) || k < 0) throw new InvalidRequestError('bad-k', `k must be a non-negative integer, got ${k}`);
    if (!(ratio >= 0 && ratio <= 1)) throw new InvalidRequestError('bad-ratio', `ratio must be in [0, 1], got ${ratio}`);
    let link: Pick<GenerationResult, 'reusedTokens' | 'recomputedTokens' | 'computedTokens' | 'chunks'> = {};
    if (promptTokens.length === 0) throw new InvalidRequestError('empty-prompt', 'the prompt has no tokens; give some text or add BOS');
    if (promptTokens.length >= model.maxContext) {
      throw new InvalidRequestError(
        'prompt-too-long',
        `the prompt has ${promptTokens.length} tokens but the context holds ${model.maxContext}; shorten it or load with a larger maxContext`,
        { promptTokens: promptTokens.length, maxContext: model.maxContext },
      );
    }
    this.busy = true;
    const signal = opts.signal;
    const tokens: number[] = [];
    let text = '';
    let finishReason: FinishReason = 'length';
    const decoder = tokenizer.createStreamDecoder({ stripLeadingSpace: false }); // generated text continues the prompt
    const stop = new StopMatcher(opts.stop ?? []);
    let ttftMs = 0;
    let prefillMs = 0;
    let decodeMs = 0;
    try {
      throwIfAborted(signal);
      this.ctx.assertAlive();
      if (maxTokens === 0) {
        return { promptTokens, tokens, text, finishReason, ttftMs, prefillTokPerS: 0, decodeTokPerS: 0 };
      }
      const t0 = performance.now();
      let next: number;
      if (docs && method !== 'full' && method !== 'prefix') {
        const rule = method === 'cacheblend' ? { blend: { ratio } } : { k: method === 'naive' ? 0 : k };
        const r = await this.prefillDocuments(docs, rule, sampling, signal);
        next = r.next;
        link = r.link;
      } else if (method === 'prefix') {
        const r = await this.prefillPrefix(promptTokens, sampling, signal);
        next = r.next;
        const chunks = docs?.chunks.map((c, i, all) => {
          const end = docs.prefix.length + all.slice(0, i + 1).reduce((n, x) => n + x.tokens.length, 0);
          return { id: c.id, tokens: c.tokens.length, cached: end <= r.reused };
        });
        link = { reusedTokens: r.reused, recomputedTokens: 0, computedTokens: promptTokens.length - r.reused, ...(chunks ? { chunks } : {}) };
      } else {
        await model.beginSequence();
        next = await model.prefill(promptTokens, sampling, signal);
        if (docs) {
          link = {
            reusedTokens: 0,
            recomputedTokens: 0,
            computedTokens: promptTokens.length,
            chunks: docs.chunks.map((c) => ({ id: c.id, tokens: c.tokens.length, cached: false })),
          };
        }
      }
      prefillMs = performance.now() - t0;
      ttftMs = prefillMs;
      let tDecode = performance.now();
      for (;;) {
        if (tokenizer.eotIds.has(next)) {
          finishReason = 'eos';
          break;
        }
        tokens.push(next);
        const piece = decoder.push(next);
        const { emit, stopped } = stop.push(piece);
        text += emit;
        yield { tokenId: next, text: emit };
        if (stopped) {
          finishReason = 'stop';
          break;
        }
        if (signal?.aborted) {
          finishReason = 'aborted';
          break;
        }
        if (tokens.length >= maxTokens) break;
        if (model.length >= model.maxContext) {
          finishReason = 'context';
          break;
        }
        if (tokens.length === 1) tDecode = performance.now();
        // Speculate the step after this one unless this is the last one asked for.
        next = await model.decode(sampling, tokens.length + 1 < maxTokens);
      }
      if (tokens.length > 1) decodeMs = performance.now() - tDecode;
      if (finishReason !== 'stop') {
        const rest = stop.push(decoder.flush()).emit + stop.flush();
        if (rest.length > 0) {
          text += rest;
          yield { tokenId: -1, text: rest };
        }
      }
    } catch (err) {
      if (err instanceof AbortedError || (err as Error)?.name === 'AbortError') finishReason = 'aborted';
      else throw err;
    } finally {
      this.busy = false;
    }
    return {
      promptTokens,
      tokens,
      text,
      finishReason,
      ...link,
      ttftMs,
      prefillTokPerS: prefillMs > 0 ? (promptTokens.length / prefillMs) * 1000 : 0,
      // The first generated token comes from prefill; decode steps produced the rest.
      decodeTokPerS: decodeMs > 0 ? ((tokens.length - 1) / decodeMs) * 1000 : 0,
    };
  }

  /** Runs a whole generation and returns its result (CLI and tests). */
  async complete(input: GenerateInput, opts: GenerateOptions = {}, onToken?: (e: TokenEvent) => void): Promise<GenerationResult> {
    const it = this.generate(input, opts);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
      onToken?.(r.value);
    }
  }

  /**
   * Splits the documents into chunks (KVSplit) and lays out `[BOS] [chunk ...] [question]`, or with
   * `chunkBos` `[BOS chunk] [BOS chunk] ... [question]`: each chunk is then computed with its own
   * BOS in front (EPIC's chunk prefill) and linked with it. A model without BOS gets plain chunks.
   */
  private planDocuments(input: DocumentsInput, chunkBos: boolean, settings: Partial<ChunkerSettings> = {}): DocumentsPlan {
    const { tokenizer } = this.require();
    if (!Array.isArray(input.documents) || input.documents.some((d) => typeof d !== 'string')) {
      throw new InvalidRequestError('bad-documents', 'documents must be an array of strings');
    }
    const question = tokenizer.encode(input.question);
    if (question.length === 0) throw new InvalidRequestError('empty-question', 'the question has no tokens');
    const bos = tokenizer.addBos && tokenizer.bosId >= 0;
    const withBos = chunkBos && bos;
    const chunks = input.documents
      .flatMap((d) => splitDocument(d, tokenizer, settings))
      .map((c) => ({ id: '', tokens: withBos ? [tokenizer.bosId, ...c.tokens] : c.tokens }));
    return { prefix: bos && (!withBos || chunks.length === 0) ? [tokenizer.bosId] : [], chunks, question, chunkBos: withBos };
  }

  private async identify(plan: DocumentsPlan): Promise<DocumentsPlan> {
    const { fingerprint } = this.require();
    for (const c of plan.chunks) c.id = await chunkId({ modelFingerprint: fingerprint, tokens: c.tokens, settings: { chunkBos: plan.chunkBos } });
    return plan;
  }

  /** Frees cached KV (chunks first, then held prompts, least recently used first) and retries once when the pool is full. */
  private async withRoom<T>(keepChunks: ReadonlySet<string>, f: () => Promise<T>, keepPrompt?: ChunkKV): Promise<T> {
    try {
      return await f();
    } catch (err) {
      if (!(err instanceof KVCacheError && err.code === 'kv-cache-full')) throw err;
      const { chunks, prompts } = this.require();
      for (const [id, c] of chunks) {
        if (!keepChunks.has(id)) {
          c.release();
          chunks.delete(id);
        }
      }
      for (const p of prompts.splice(0)) {
        if (p === keepPrompt) prompts.push(p);
        else p.release();
      }
      return f();
    }
  }

  /**
   * 'prefix': reuses the longest cached prompt prefix that matches these tokens exactly (its KV
   * is exact: same tokens at the same positions), computes the rest, then keeps this prompt.
   */
  private async prefillPrefix(tokens: number[], sampling: SamplingParams, signal?: AbortSignal): Promise<{ next: number; reused: number }> {
    const loaded = this.require();
    const { model, prompts } = loaded;
    let best: ChunkKV | undefined;
    let reused = 0;
    for (const p of prompts) {
      let n = 0;
      const max = Math.min(p.tokens.length, tokens.length - 1); // at least one token runs, to sample from
      while (n < max && p.tokens[n] === tokens[n]) n++;
      if (n > reused) {
        reused = n;
        best = p;
      }
    }
    if (best) prompts.push(...prompts.splice(prompts.indexOf(best), 1)); // most recently used
    const next = await this.withRoom(new Set(), () => model.prefillFromPrefix(reused > 0 ? best : undefined, reused, tokens, sampling, signal), best);
    // Keep this prompt; a kept prompt that is a prefix of it adds nothing any more.
    for (let i = prompts.length - 1; i >= 0; i--) {
      const p = prompts[i];
      if (p.tokens.length <= tokens.length && p.tokens.every((t, j) => t === tokens[j])) {
        p.release();
        prompts.splice(i, 1);
      }
    }
    prompts.push(model.holdPrompt(tokens));
    while (prompts.length > MAX_HELD_PROMPTS) prompts.shift()!.release();
    return { next, reused };
  }

  /** Computes the chunks not cached yet, then links them; evicts older chunks when the KV pool is full. */
  private async prefillDocuments(plan: DocumentsPlan, rule: RecomputeRule, sampling: SamplingParams, signal?: AbortSignal) {
    const { model, chunks: cache } = this.require();
    const inRequest = new Set(plan.chunks.map((c) => c.id));
    const withRoom = <T>(f: () => Promise<T>) => this.withRoom(inRequest, f);
    const kvs: ChunkKV[] = [];
    const info: { id: string; tokens: number; cached: boolean }[] = [];
    const wasCached: boolean[] = [];
    for (const c of plan.chunks) {
      let kv = cache.get(c.id);
      const cached = kv !== undefined;
      let stored = false;
      if (kv) cache.delete(c.id); // re-inserted below as the most recently used
      else {
        kv = await withRoom(() => this.loadStoredChunk(c.id, c.tokens));
        stored = kv !== undefined;
        kv ??= await withRoom(() => this.computeAndStoreChunk(c.id, c.tokens, signal));
      }
      cache.set(c.id, kv);
      kvs.push(kv);
      info.push({ id: c.id, tokens: c.tokens.length, cached: cached || stored });
      wasCached.push(cached || stored);
    }
    const r = await withRoom(() => model.prefillLinked({ prefix: plan.prefix, chunks: kvs, question: plan.question, ...rule }, sampling, signal));
    // Chunk tokens not recomputed: reused when the chunk was cached, computed (by its chunk prefill) when it was not.
    let reused = 0;
    let computedChunks = 0;
    plan.chunks.forEach((c, i) => {
      const kept = c.tokens.length - r.recomputed[i].length;
      if (wasCached[i]) reused += kept;
      else computedChunks += kept;
    });
    return {
      next: r.next,
      link: { reusedTokens: reused, recomputedTokens: r.stats.recomputed, computedTokens: r.stats.computed + computedChunks, chunks: info },
    };
  }

  private async loadStoredChunk(id: string, tokens: number[]): Promise<ChunkKV | undefined> {
    const store = this.opts.chunkStore;
    if (!store) return undefined;
    const bytes = await store.get(id);
    if (!bytes) return undefined;
    const { model, config } = this.require();
    const kv = decodeChunk(bytes, { nLayers: config.nLayers, kvDim: config.nKvHeads * config.headDim, tokens });
    return model.importChunk(tokens, kv);
  }

  private async computeAndStoreChunk(id: string, tokens: number[], signal?: AbortSignal): Promise<ChunkKV> {
    const { model, config } = this.require();
    const kv = await model.computeChunk(tokens, signal);
    if (this.opts.chunkStore) {
      const bytes = encodeChunk({ nLayers: config.nLayers, kvDim: config.nKvHeads * config.headDim, tokens, kv: await model.exportChunk(kv) });
      await this.opts.chunkStore.put(id, bytes);
    }
    return kv;
  }

  private require(): Loaded {
    if (!this.loaded) throw new InvalidRequestError('no-model', 'no model is loaded; call load() first');
    return this.loaded;
  }
}

function samplingFrom(opts: GenerateOptions): SamplingParams {
  const temperature = opts.temperature ?? 0;
  const topK = opts.topK ?? 0;
  const topP = opts.topP ?? 1;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new InvalidRequestError('bad-temperature', `temperature must be ≥ 0, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0) throw new InvalidRequestError('bad-top-k', `topK must be a non-negative integer, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new InvalidRequestError('bad-top-p', `topP must be in (0, 1], got ${topP}`);
  const seed = opts.seed ?? Math.floor(Math.random() * 0xffffffff);
  return { temperature, topK, topP, seed: seed >>> 0 };
}
