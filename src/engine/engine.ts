// The engine: load a GGUF model onto a GPUDevice, tokenize, and generate token by token with
// GPU sampling; documents read once and linked from their cached chunks. It does not know
// whether it runs in a Worker or on Node.
import { AbortedError, ChunklmError, GPUError, InvalidRequestError, throwIfAborted } from '../errors.ts';
import type { ByteSource } from '../gguf/source.ts';
import type { GGUFFile } from '../gguf/reader.ts';
import { isOpenedGGUF, openGGUF, type OpenedGGUF } from '../gguf/split.ts';
import { checkFootprint, modelFootprint, type Footprint } from '../model/footprint.ts';
import { GpuContext, describeAdapter, type GpuFeatures } from '../gpu/context.ts';
import type { ShaderSources } from '../gpu/shaders.ts';
import { configFromGGUF, type ModelConfig } from '../model/config.ts';
import { GpuModel, type RecomputeRule, type SamplingParams } from '../model/gpu-model.ts';
import { DEFAULT_BLEND_RATIO } from '../kv/cacheblend.ts';
import { ChunkCache, type ChunkLease } from '../kv/chunk-cache.ts';
import type { KvStorageDtype } from '../kv/chunk-record.ts';
import { fingerprintFromParts } from '../kv/chunk-id.ts';
import { KV_PAGE_SIZE } from '../kv/pages.ts';
import { MemoryStore } from '../kv/memory-store.ts';
import type { PersistentStore, StoreChange } from '../kv/store.ts';
import { ggmlTypeName } from '../gguf/quant.ts';
import { createTokenizer, renderChatTemplate, type Tokenizer } from '../tokenizer/index.ts';
import { fitChunks, promptFrame, readDocument, resolveChunkSettings, type ResolvedChunkSettings } from './doc-layout.ts';
import { DocumentLibrary, type LibraryModel, type ResolvedDocument } from './documents.ts';
import { StopMatcher } from './stop.ts';
import { LINK_METHODS } from './types.ts';
import type {
  ChunkSettings,
  DocumentAddOptions,
  DocumentInfo,
  DocumentInput,
  DocumentsInput,
  DocumentStats,
  FinishReason,
  GenerateInput,
  GenerateOptions,
  GenerationResult,
  LinkMethod,
  LoadOptions,
  ModelInfo,
  TokenEvent,
  UsedChunk,
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

export interface EngineOptions {
  shaders: ShaderSources;
  features: GpuFeatures;
  adapterInfo?: string;
  /**
   * Where documents and chunk KV persist (IndexedDB in a page, a folder on Node). Default: a
   * store in memory, so the documents API works and nothing outlives the engine.
   */
  store?: PersistentStore;
  /** How chunk KV is stored in the memory tier and the store (default 'f16'). */
  storageDtype?: KvStorageDtype;
  /** Byte budget of the in-process memory tier of encoded chunks (default 128 MiB). */
  memoryBudgetBytes?: number;
  /** Byte budget of chunk records in the store (default: half the storage quota). */
  storageBudgetBytes?: number;
  /** How documents are split and what chunks are computed after (entered in chunk ids). */
  chunks?: ChunkSettings;
  /**
   * What the device can plausibly hold in all, for the fit check before a model's weights load
   * (a host's estimate: navigator.deviceMemory in a browser, os.totalmem() on Node). Without it only
   * the per-buffer limits are checked. LoadOptions.gpuMemoryBytes overrides it for one load.
   */
  deviceMemory?: { bytes: number; source: string };
}

/** A model to load: one GGUF file, all parts of a split model, or a model already opened (openGGUF, openRemoteModel). */
export type ModelBytes = ByteSource | readonly ByteSource[] | OpenedGGUF;

interface Loaded {
  file: GGUFFile;
  config: ModelConfig;
  tokenizer: Tokenizer;
  model: GpuModel;
  info: ModelInfo;
  /** Identifies the weights in chunk ids, so KV is never reused across models. */
  fingerprint: string;
  /** Chunk KV residency (pool, memory, store) and prompts kept for prefix reuse. */
  cache: ChunkCache;
  settings: ResolvedChunkSettings;
}

/** One chunk of a documents request, laid out. */
interface PlanChunk {
  id: string;
  tokens: number[];
  context: number[];
  /** The document's text this chunk covers. */
  text: string;
  document?: string;
  index: number;
}

/** A documents request laid out: `prefix`, the chunks, then `question` (the suffix). */
interface DocumentsPlan {
  prefix: number[];
  chunks: PlanChunk[];
  question: number[];
  docs: ResolvedDocument[];
  dropped: number;
}

const DEFAULT_MAX_CONTEXT = 4096;

/** The context, pool and KV precision a load uses: one rule for load and the fit check. */
function loadPlan(config: ModelConfig, opts: LoadOptions): { maxContext: number; kvBudgetTokens: number; kvDtype: 'f32' | 'f16' } {
  const maxContext = Math.min(config.contextLength, opts.maxContext ?? DEFAULT_MAX_CONTEXT);
  // Room for cached chunks beside the running sequence.
  return { maxContext, kvBudgetTokens: opts.kvBudgetTokens ?? 2 * maxContext, kvDtype: opts.kvDtype ?? 'f16' };
}

/** The documents API of an engine (see Engine.documents). */
export interface EngineDocuments {
  add(input: DocumentInput, opts?: DocumentAddOptions): Promise<DocumentInfo>;
  list(): Promise<DocumentInfo[]>;
  get(id: string): Promise<DocumentInfo | undefined>;
  remove(id: string): Promise<boolean>;
  clear(): Promise<void>;
  pin(id: string, pinned: boolean): Promise<DocumentInfo>;
  stats(): Promise<DocumentStats>;
  /** The document as a `.kvpack` (manifest and chunk records). */
  export(id: string): Promise<Uint8Array>;
  import(pack: Uint8Array): Promise<DocumentInfo>;
  /** Changes made by other tabs sharing the store. */
  onChange(listener: (c: StoreChange) => void): () => void;
  /** Bytes of chunk records the store may hold; least recently used chunks of unpinned documents go first. */
  setBudget(bytes: number): Promise<void>;
  /** Empties the pool's or the memory tier's cached chunks (the store keeps them); returns how many went. */
  evict(tier: 'gpu' | 'memory'): Promise<number>;
  /**
   * Changes how documents added from now on are split (`targetTokens`) and what their chunks are
   * computed after; returns the settings in force (call with `{}` to read them). Documents read
   * with other settings stay stored and are read again when next used.
   */
  configure(settings: ChunkSettings): Promise<ChunkSettings>;
}

export class Engine {
  readonly ctx: GpuContext;
  readonly library: DocumentLibrary;
  readonly documents: EngineDocuments;
  private loaded: Loaded | undefined;
  private busy = false;
  /** How documents are split from now on (EngineOptions.chunks, then documents.configure). */
  private chunkSettings: ChunkSettings;

  constructor(
    readonly device: GPUDevice,
    private readonly opts: EngineOptions,
  ) {
    this.ctx = new GpuContext(device, opts.features, opts.shaders);
    this.chunkSettings = { ...opts.chunks };
    this.library = new DocumentLibrary(opts.store ?? new MemoryStore(), { budgetBytes: opts.storageBudgetBytes });
    const lib = this.library;
    this.documents = {
      add: (input, o) => this.exclusive(() => lib.add(input, this.libraryModel(), o)),
      list: () => lib.list(this.loadedLibraryModel()),
      get: (id) => lib.get(id, this.loadedLibraryModel()),
      remove: (id) => lib.remove(id, this.loadedLibraryModel()),
      clear: () => lib.clear(this.loadedLibraryModel()),
      pin: (id, pinned) => lib.setPinned(id, pinned, this.loadedLibraryModel()),
      stats: () => lib.stats(this.loadedLibraryModel()),
      export: (id) => this.exclusive(() => lib.exportPack(id, this.libraryModel())),
      import: (pack) => lib.importPack(pack, this.libraryModel()),
      onChange: (l) => lib.onChange(l),
      setBudget: async (bytes) => {
        lib.setBudget(bytes);
        await lib.enforceBudget();
      },
      evict: async (tier) => {
        if (tier !== 'gpu' && tier !== 'memory') throw new InvalidRequestError('bad-tier', `a tier to evict is 'gpu' or 'memory', got '${String(tier)}'`);
        return this.loaded ? this.loaded.cache.evictTier(tier) : 0;
      },
      configure: (settings) => this.exclusive(async () => this.configureChunks(settings)),
    };
  }

  /**
   * The model's GPU footprint at these options (from its header alone), checked against the
   * device: throws GPUError 'does-not-fit' / 'model-too-large' or KVCacheError 'kv-pool-too-large',
   * saying by how much, before any weight is read. `load` runs it too.
   */
  checkFit(file: GGUFFile, opts: LoadOptions = {}): Footprint {
    const config = configFromGGUF(file);
    const plan = loadPlan(config, opts);
    const limits = this.ctx.limits;
    const maxBindingBytes = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    const fp = modelFootprint(file, config, plan, maxBindingBytes);
    const memory = opts.gpuMemoryBytes !== undefined ? { bytes: opts.gpuMemoryBytes, source: 'gpuMemoryBytes' } : this.opts.deviceMemory;
    const name = typeof file.metadata['general.name'] === 'string' ? (file.metadata['general.name'] as string) : config.architecture;
    checkFootprint(name, fp, { maxBindingBytes, totalBytes: memory?.bytes, totalSource: memory?.source }, plan, this.ctx.arena.buffer.size);
    return fp;
  }

  /** Reads the GGUF header(s), checks the model fits, uploads the weights and builds the pipelines. */
  async load(bytes: ModelBytes, opts: LoadOptions = {}): Promise<ModelInfo> {
    this.unload();
    const given = isOpenedGGUF(bytes) ? bytes.source : Array.isArray(bytes) ? (bytes as readonly ByteSource[])[0] : (bytes as ByteSource);
    opts.onProgress?.({ phase: 'header', loadedBytes: 0, totalBytes: given?.size ?? 0 });
    const { file, source } = isOpenedGGUF(bytes) ? bytes : await openGGUF(bytes as ByteSource | readonly ByteSource[], { signal: opts.signal });
    const config = configFromGGUF(file);
    const tokenizer = createTokenizer(file.metadata);
    const footprint = this.checkFit(file, opts);
    const { maxContext, kvBudgetTokens, kvDtype } = loadPlan(config, opts);
    // The peak counts from what is live now (the arena, another engine's buffers on this device).
    const before = this.ctx.memory().liveBytes;
    this.ctx.resetPeak();
    const model = await GpuModel.load(this.ctx, source, file, config, {
      maxContext,
      kvBudgetTokens,
      kvDtype,
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
      kvDtype,
      kvBudgetTokens: model.kv.capacityTokens,
      gpuMemory: {
        weightBytes: footprint.weightBytes,
        kvBytes: footprint.kvBytes,
        activationBytes: footprint.activationBytes,
        peakBytes: this.ctx.memory().peakBytes - before,
      },
    };
    const fingerprint = fingerprintFromParts([
      config.architecture,
      info.name,
      String(file.fileSize),
      ...file.tensors.map((t) => `${t.name}:${t.type}:${t.shape.join('x')}`),
      // LongRoPE's factors follow the runtime context, and every layer's KV after the first follows them.
      ...(config.hasLongRopeFactors ? [`rope-factors:${maxContext > config.ropeOrigContext ? 'long' : 'short'}`] : []),
    ]);
    const cache = new ChunkCache(model, {
      modelFingerprint: fingerprint,
      store: this.library.store,
      storageDtype: this.opts.storageDtype,
      memoryBudgetBytes: this.opts.memoryBudgetBytes,
    });
    const settings = resolveChunkSettings({ chunkBos: DEFAULT_CHUNK_BOS, ...this.chunkSettings }, kvDtype);
    this.loaded = { file, config, tokenizer, model, info, fingerprint, cache, settings };
    // Chunks no manifest names (a tab killed mid-add) are collected before anything reads the store.
    await this.library.open();
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

  /** The loaded model's chunk cache (tests and benchmarks). */
  get chunkCache(): ChunkCache {
    return this.require().cache;
  }

  get tokenizer(): Tokenizer {
    return this.require().tokenizer;
  }

  unload(): void {
    this.loaded?.cache.destroy();
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
  async promptTokens(input: GenerateInput, opts: Pick<GenerateOptions, 'chunkBos' | 'chunkContext' | 'maxTokens'> = {}): Promise<number[]> {
    if (typeof input === 'object' && input !== null && 'question' in input) {
      const plan = await this.planDocuments(input, opts);
      return [...plan.prefix, ...plan.chunks.flatMap((c) => c.tokens), ...plan.question];
    }
    return this.plainPromptTokens(input);
  }

  private plainPromptTokens(input: Exclude<GenerateInput, DocumentsInput>): number[] {
    const { tokenizer, file } = this.require();
    if (typeof input === 'string') return tokenizer.encode(input, { addBos: tokenizer.addBos, parseSpecial: false });
    if (typeof input !== 'object' || input === null) throw new InvalidRequestError('bad-input', 'give text, {tokens}, {messages} or {documents | texts, question}');
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
    const { tokenizer, model, cache } = this.require();
    if (this.busy) throw new InvalidRequestError('busy', 'another request is running on this engine; wait for it or cancel it');
    const maxTokens = opts.maxTokens ?? 128;
    const sampling = samplingFrom(opts);
    if (!Number.isInteger(maxTokens) || maxTokens < 0) {
      throw new InvalidRequestError('bad-max-tokens', `maxTokens must be a non-negative integer, got ${maxTokens}`);
    }
    const isDocs = typeof input === 'object' && input !== null && 'question' in input;
    const method: LinkMethod = opts.method ?? (isDocs ? 'attnlink' : 'full');
    const k = opts.k ?? DEFAULT_ATTNLINK_K;
    const ratio = opts.ratio ?? DEFAULT_BLEND_RATIO;
    if (!(LINK_METHODS as readonly string[]).includes(method)) throw new InvalidRequestError('bad-method', `method must be one of ${LINK_METHODS.join(', ')}, got '${method}'`);
    if (!isDocs && method !== 'full' && method !== 'prefix') {
      throw new InvalidRequestError('bad-method', `method '${method}' links document chunks; give {documents, question}, or use 'full' or 'prefix'`);
    }
    if (!Number.isInteger(k) || k < 0) throw new InvalidRequestError('bad-k', `k must be a non-negative integer, got ${k}`);
    if (!(ratio >= 0 && ratio <= 1)) throw new InvalidRequestError('bad-ratio', `ratio must be in [0, 1], got ${ratio}`);
    this.busy = true;
    const signal = opts.signal;
    const tokens: number[] = [];
    let text = '';
    let finishReason: FinishReason = 'length';
    let promptTokens: number[] = [];
    let link: Pick<GenerationResult, 'reusedTokens' | 'recomputedTokens' | 'computedTokens' | 'chunks' | 'droppedChunks'> = {};
    const warnings: string[] = [];
    let lease: ChunkLease | undefined;
    let docs: DocumentsPlan | undefined;
    let ttftMs = 0;
    let prefillMs = 0;
    let decodeMs = 0;
    try {
      docs = isDocs ? await this.planDocuments(input as DocumentsInput, opts) : undefined;
      promptTokens = docs ? [...docs.prefix, ...docs.chunks.flatMap((c) => c.tokens), ...docs.question] : this.plainPromptTokens(input as Exclude<GenerateInput, DocumentsInput>);
      if (promptTokens.length === 0) throw new InvalidRequestError('empty-prompt', 'the prompt has no tokens; give some text or add BOS');
      if (promptTokens.length >= model.maxContext) {
        throw new InvalidRequestError(
          'prompt-too-long',
          `the prompt has ${promptTokens.length} tokens but the context holds ${model.maxContext}; shorten it or load with a larger maxContext`,
          { promptTokens: promptTokens.length, maxContext: model.maxContext },
        );
      }
      throwIfAborted(signal);
      this.ctx.assertAlive();
      if (maxTokens === 0) {
        return { promptTokens, tokens, text, finishReason, ttftMs, prefillTokPerS: 0, decodeTokPerS: 0 };
      }
      const decoder = tokenizer.createStreamDecoder({ stripLeadingSpace: false }); // generated text continues the prompt
      const stop = new StopMatcher(opts.stop ?? []);
      const growth = Math.min(maxTokens, model.maxContext - promptTokens.length) + 1;
      const t0 = performance.now();
      // The last answer's sequence holds pages until the next one starts: give them back first.
      await model.beginSequence();
      let next: number;
      if (docs && method !== 'full' && method !== 'prefix') {
        const rule: RecomputeRule = method === 'cacheblend' ? { blend: { ratio } } : { k: method === 'naive' ? 0 : k };
        lease = await cache.acquire(
          docs.chunks.map((c) => ({ id: c.id, tokens: c.tokens, context: c.context })),
          { signal },
        );
        const plan = docs;
        const kvs = lease.kvs;
        // Room for the recomputed tokens, the question and the answer, before anything runs.
        cache.reserve(pagesFor(promptTokens.length - plan.chunks.reduce((n, c) => n + c.tokens.length, 0) + growth + maxRecompute(rule, plan)));
        const r = await cache.withRoom(() => model.prefillLinked({ prefix: plan.prefix, chunks: kvs, question: plan.question, ...rule }, sampling, signal));
        next = r.next;
        // Chunk tokens not recomputed: reused when the chunk was cached, computed (by its chunk prefill) when it was not.
        let reused = 0;
        let computedChunks = 0;
        plan.chunks.forEach((c, i) => {
          const kept = c.tokens.length - r.recomputed[i].length;
          if (lease!.sources[i] === 'computed') computedChunks += kept;
          else reused += kept;
        });
        link = {
          reusedTokens: reused,
          recomputedTokens: r.stats.recomputed,
          computedTokens: r.stats.computed + computedChunks,
          chunks: usedChunks(plan, lease.sources),
        };
      } else if (method === 'prefix') {
        const match = cache.matchPrompt(promptTokens);
        let reused = 0;
        try {
          cache.reserve(pagesFor(promptTokens.length - (match?.reuse ?? 0) + growth));
          next = await cache.withRoom(() => model.prefillFromPrefix(match?.kv, match?.reuse ?? 0, promptTokens, sampling, signal));
          reused = match?.reuse ?? 0;
        } finally {
          match?.unpin();
        }
        cache.holdPrompt(model.holdPrompt(promptTokens));
        // A chunk is reused when the matched prefix covers it whole.
        let end = docs?.prefix.length ?? 0;
        const chunks = docs && usedChunks(docs, docs.chunks.map((c) => ((end += c.tokens.length) <= reused ? 'gpu' : 'computed')));
        link = { reusedTokens: reused, recomputedTokens: 0, computedTokens: promptTokens.length - reused, ...(chunks ? { chunks } : {}) };
      } else {
        cache.reserve(pagesFor(promptTokens.length + growth));
        next = await cache.withRoom(async () => {
          await model.beginSequence();
          return model.prefill(promptTokens, sampling, signal);
        });
        if (docs) {
          link = {
            reusedTokens: 0,
            recomputedTokens: 0,
            computedTokens: promptTokens.length,
            chunks: usedChunks(docs, docs.chunks.map(() => 'computed')),
          };
        }
      }
      if (docs && docs.dropped > 0) link.droppedChunks = docs.dropped;
      // The request's chunks are mapped by the sequence now; the cache may evict its own entries.
      lease?.release();
      // Decode grows the sequence a page at a time: make room now, so no answer stops mid-stream
      // with a full pool.
      cache.reserve(model.pagesToGrow(growth));
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
        // The context, or a pool that even after eviction has no page for the next steps, ends the answer.
        if (model.length >= model.maxContext || !cache.reserve(model.pagesToGrow(2))) {
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
      // A read from a destroyed device fails with an AbortError too: only the caller's signal means 'aborted'.
      if (signal?.aborted && (err instanceof AbortedError || (err as Error)?.name === 'AbortError')) finishReason = 'aborted';
      else throw await this.explain(err);
    } finally {
      // A step speculated past the last token collected is still in flight: wait for it.
      await model.settle();
      lease?.release();
      this.busy = false;
    }
    // Chunks computed for this request go to the store after the answer, never before its first token.
    if (docs && lease) warnings.push(...(await this.persistAfter(docs, lease)));
    return {
      promptTokens,
      tokens,
      text,
      finishReason,
      ...link,
      ...(warnings.length > 0 ? { warnings } : {}),
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
   * Lays out a documents request: the stored documents' chunks (read again when they were made for
   * another model), then the raw texts' chunks, framed by the chat template or `[BOS] ... question`.
   * Chunks beyond the context (keeping room for the answer) are left out by BM25 relevance.
   */
  private async planDocuments(input: DocumentsInput, opts: Pick<GenerateOptions, 'chunkBos' | 'chunkContext' | 'maxTokens'>): Promise<DocumentsPlan> {
    const loaded = this.require();
    const { tokenizer, file, fingerprint, model } = loaded;
    if (typeof input.question !== 'string') throw new InvalidRequestError('bad-question', 'the question must be a string');
    if (input.texts !== undefined && (!Array.isArray(input.texts) || input.texts.some((d) => typeof d !== 'string'))) {
      throw new InvalidRequestError('bad-documents', 'texts must be an array of strings');
    }
    if (input.documents === undefined && input.texts === undefined) {
      throw new InvalidRequestError('bad-documents', "a documents request names stored documents (documents: ids or 'all') or gives raw texts (texts)");
    }
    const docs = input.documents !== undefined ? await this.library.resolve(input.documents, this.libraryModel()) : [];
    const settings = { ...loaded.settings, ...(opts.chunkBos !== undefined ? { chunkBos: opts.chunkBos } : {}), ...(opts.chunkContext ? { context: opts.chunkContext } : {}) };
    const chunks: PlanChunk[] = docs.flatMap((d) => d.chunks.map((c) => ({ ...c, document: d.manifest.id })));
    for (const t of input.texts ?? []) {
      for (const c of await readDocument(t, tokenizer, fingerprint, settings)) chunks.push({ ...c, text: t.slice(c.start, c.end) });
    }
    const chunkBos = settings.chunkBos && tokenizer.addBos && tokenizer.bosId >= 0;
    const frame = promptFrame(file.metadata, tokenizer, input.question, input.system, !chunkBos || chunks.length === 0);
    if (frame.suffix.length === 0) throw new InvalidRequestError('empty-question', 'the question has no tokens');
    const answerRoom = Math.min(opts.maxTokens ?? 128, Math.floor(model.maxContext / 4));
    const budget = model.maxContext - 1 - frame.prefix.length - frame.suffix.length - answerRoom;
    const kept = fitChunks(
      chunks.map((c) => ({ text: c.text, tokens: c.tokens.length })),
      input.question,
      Math.max(0, budget),
    );
    return { prefix: frame.prefix, question: frame.suffix, chunks: kept.map((i) => chunks[i]), docs, dropped: chunks.length - kept.length };
  }

  /** Writes the chunks a request computed (stored documents' through the library, raw texts' directly). */
  private async persistAfter(plan: DocumentsPlan, lease: ChunkLease): Promise<string[]> {
    const loaded = this.loaded;
    if (!loaded) return [];
    try {
      const model = this.libraryModel();
      const docIds = new Set(plan.docs.flatMap((d) => d.chunks.map((c) => c.id)));
      const warnings = plan.docs.length > 0 ? await this.library.afterUse(plan.docs, lease.fresh, model) : [];
      const loose = lease.fresh.filter(([id]) => !docIds.has(id));
      const failed = await loaded.cache.persist(loose);
      if (failed) warnings.push(`chunks of this request's texts were not stored: ${failed.message}`);
      return warnings;
    } catch (err) {
      return [`storing this request's chunks failed: ${(err as Error)?.message ?? String(err)}`];
    }
  }

  /**
   * A failure of a lost device surfaces first as whatever GPU call noticed it (a rejected
   * mapAsync, ...); it is reported as GPUError 'device-lost' so the host knows to start over.
   */
  private async explain(err: unknown): Promise<unknown> {
    if (err instanceof ChunklmError && err.code !== 'internal') return err;
    const lost = await Promise.race([this.device.lost, new Promise<undefined>((r) => setTimeout(r, 250))]);
    if (!lost) return err;
    return new GPUError('device-lost', `the GPU device was lost during the request (${lost.reason}: ${lost.message}); the next request loads the model again`, { reason: lost.reason }, { cause: err });
  }

  private libraryModel(): LibraryModel {
    const { fingerprint, tokenizer, cache, settings } = this.require();
    return { fingerprint, tokenizer, cache, settings };
  }

  private configureChunks(settings: ChunkSettings): ChunkSettings {
    const bad = (field: string, value: unknown, what: string): InvalidRequestError =>
      new InvalidRequestError('bad-chunk-settings', `chunk setting ${field} must be ${what}, got ${JSON.stringify(value)}`, { field });
    const { targetTokens, context, contextTokens } = settings ?? {};
    if (targetTokens !== undefined && (!Number.isInteger(targetTokens) || targetTokens < 8 || targetTokens > 65536)) throw bad('targetTokens', targetTokens, 'an integer in [8, 65536]');
    if (context !== undefined && !['none', 'lead-in', 'previous'].includes(context)) throw bad('context', context, "'none', 'lead-in' or 'previous'");
    if (contextTokens !== undefined && (!Number.isInteger(contextTokens) || contextTokens < 0 || contextTokens > 256)) throw bad('contextTokens', contextTokens, 'an integer in [0, 256]');
    const next: ChunkSettings = { ...this.chunkSettings };
    if (targetTokens !== undefined) next.targetTokens = targetTokens;
    if (context !== undefined) next.context = context;
    if (contextTokens !== undefined) next.contextTokens = contextTokens;
    this.chunkSettings = next;
    if (this.loaded) this.loaded.settings = resolveChunkSettings({ chunkBos: DEFAULT_CHUNK_BOS, ...next }, this.loaded.info.kvDtype);
    const r = resolveChunkSettings({ chunkBos: DEFAULT_CHUNK_BOS, ...next }, 'f16');
    return { targetTokens: r.targetTokens, context: r.context, contextTokens: r.contextTokens, chunkBos: r.chunkBos };
  }

  private loadedLibraryModel(): LibraryModel | undefined {
    return this.loaded ? this.libraryModel() : undefined;
  }

  /** Runs a call that uses the GPU, refusing it while a generation runs; the last answer's pages go back to the pool first. */
  private async exclusive<T>(f: () => Promise<T>): Promise<T> {
    if (this.busy) throw new InvalidRequestError('busy', 'another request is running on this engine; wait for it or cancel it');
    this.busy = true;
    try {
      await this.loaded?.model.beginSequence();
      return await f();
    } finally {
      this.busy = false;
    }
  }

  private require(): Loaded {
    if (!this.loaded) throw new InvalidRequestError('no-model', 'no model is loaded; call load() first');
    return this.loaded;
  }
}

function usedChunks(plan: DocumentsPlan, sources: readonly UsedChunk['source'][]): UsedChunk[] {
  return plan.chunks.map((c, i) => ({
    id: c.id,
    tokens: c.tokens.length,
    cached: sources[i] !== 'computed',
    source: sources[i],
    index: c.index,
    text: c.text,
    ...(c.document ? { document: c.document } : {}),
  }));
}

/** Pages for n tokens, plus one for a partly filled tail page. */
function pagesFor(n: number): number {
  return Math.ceil(n / KV_PAGE_SIZE) + 1;
}

/** Upper bound on the tokens a rule recomputes privately. */
function maxRecompute(rule: RecomputeRule, plan: DocumentsPlan): number {
  if ('k' in rule) return plan.chunks.reduce((n, c) => n + Math.min(rule.k, c.tokens.length), 0);
  // CacheBlend's probe runs every chunk token in a scratch sequence, then recomputes a share of them.
  return 2 * plan.chunks.reduce((n, c) => n + c.tokens.length, 0);
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
