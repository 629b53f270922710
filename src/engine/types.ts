// The engine's public request/response shapes, shared by the engine, the Worker host, the
// main-thread client, the CLI and the UI.

export interface LoadProgress {
  /**
   * 'header' while the GGUF header is read, 'download' while files are downloaded into the model
   * cache, 'weights' while tensors stream to the GPU, 'compile' while pipelines are built.
   */
  phase: 'header' | 'download' | 'weights' | 'compile' | 'ready';
  loadedBytes: number;
  totalBytes: number;
  /** During 'download': the URL of the file being downloaded. */
  file?: string;
  /** During 'download' and 'weights', once measurable: bytes per second over the last seconds. */
  bytesPerSecond?: number;
  /** With bytesPerSecond: seconds until the phase ends at that rate. */
  secondsLeft?: number;
}

export interface LoadOptions {
  /** KV precision in the pool: 'f16' (default, half the memory) or 'f32'. */
  kvDtype?: 'f32' | 'f16';
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** Upper bound on the context length (tokens); defaults to min(model context, 4096). */
  maxContext?: number;
  /** KV pool in tokens, shared by the running sequence and cached document chunks (default 2 × maxContext). */
  kvBudgetTokens?: number;
  /**
   * GPU memory the model may take, for the fit check before the weights load (default: the
   * host's estimate, see EngineOptions.deviceMemory). WebGPU does not report a device's memory.
   */
  gpuMemoryBytes?: number;
  /** URL loads: keep the downloaded files in the model cache and use it (default true). */
  cache?: boolean;
}

/** Where a file of a URL-loaded model came from. */
export interface ModelFileInfo {
  url: string;
  bytes: number;
  etag?: string;
  /** 'cache': read from the model cache; 'download': downloaded into it now; 'network': read over the network, not cached. */
  source: 'cache' | 'download' | 'network';
}

export interface ModelInfo {
  name: string;
  architecture: string;
  nLayers: number;
  dim: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  vocabSize: number;
  contextLength: number;
  weightType: string;
  weightBytes: number;
  hasChatTemplate: boolean;
  adapter: string;
  features: { shaderF16: boolean; subgroups: boolean };
  /** How KV is held in the pool. */
  kvDtype: 'f32' | 'f16';
  /** Token slots of the KV pool (the running sequence and cached chunks share it). */
  kvBudgetTokens: number;
  /** URL loads: each file (one, or the parts of a split model) and where it came from. */
  files?: ModelFileInfo[];
  /** What went wrong without failing the load (the model cache refused a write, the server could not be reached). */
  warnings?: string[];
  /**
   * GPU memory of this model, in bytes: as planned from the header (weights in their packed parts,
   * the KV pool, activations), and `peakBytes`, the most that buffers made by the load held at once
   * (counted as they were created; a device may round each allocation up further).
   */
  gpuMemory: { weightBytes: number; kvBytes: number; activationBytes: number; peakBytes: number };
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface GenerateOptions {
  maxTokens?: number;
  /** 0 means greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Strings that end generation; the stop text itself is not emitted. */
  stop?: string[];
  signal?: AbortSignal;
  /**
   * How cached KV is used (see LinkMethod). Documents requests default to 'attnlink'; other
   * prompts to 'full', and take 'full' or 'prefix' only.
   */
  method?: LinkMethod;
  /** Tokens recomputed at the start of each chunk by 'attnlink' (default DEFAULT_ATTNLINK_K). */
  k?: number;
  /**
   * Documents requests: compute and link each chunk with its own BOS in front (`[BOS c1] [BOS c2]
   * ... question`, EPIC's chunk prefill) instead of `[BOS] c1 c2 ... question` (default
   * DEFAULT_CHUNK_BOS). Chunk ids differ between the two, so each keeps its own cache entries.
   */
  chunkBos?: boolean;
  /** Raw-text documents: what each chunk's KV is computed after (default DEFAULT_CHUNK_CONTEXT; stored documents keep the settings they were added with). */
  chunkContext?: ChunkContextMode;
  /** Share of chunk tokens 'cacheblend' recomputes, in [0, 1] (default DEFAULT_BLEND_RATIO). */
  ratio?: number;
}

/**
 * Documents and a question. Stored documents are named by id (or 'all'); raw texts are read for
 * this request only (their chunks are cached like any other). Each document is split into chunks
 * (KVSplit) whose KV is computed once, cached by content, and linked in document order in front
 * of the question: `[BOS] [chunk ...] [question]`, or, for a model with a chat template, the
 * template's text before the documents, the chunks, then the question and the template's closing
 * and generation prompt. Chunks that do not fit the context are left out by BM25 relevance to the
 * question (the rest keep document order).
 */
export interface DocumentsInput {
  /** Ids of stored documents (see documents.add), or 'all'. */
  documents?: readonly string[] | 'all';
  /** Raw texts for this request only, after the stored documents. */
  texts?: readonly string[];
  question: string;
  /** A system message, for models with a chat template. */
  system?: string;
}

/** A prompt: raw text (BOS added when the model adds one), token ids, chat messages rendered by the model's template, or documents and a question. */
export type GenerateInput = string | { tokens: number[] } | { messages: ChatMessage[] } | DocumentsInput;

/**
 * How a request uses cached KV:
 * - 'full' recomputes everything (no reuse);
 * - 'prefix' reuses the longest exactly matching token prefix of a prompt kept by an earlier
 *   'prefix' request (exact, like llama.cpp's, vLLM's and WebLLM's prefix caches), then keeps this
 *   prompt for later ones;
 * - documents requests only: 'naive' reuses every chunk's KV as is, 'attnlink' recomputes the first
 *   k tokens of each chunk, 'cacheblend' recomputes the share `ratio` of chunk tokens whose KV at
 *   an early layer deviates most from a full prefill's (found by running the chunks through the
 *   first layers).
 */
export const LINK_METHODS = ['full', 'prefix', 'naive', 'attnlink', 'cacheblend'] as const;
export type LinkMethod = (typeof LINK_METHODS)[number];

export interface TokenEvent {
  tokenId: number;
  /** Text newly completed by this token (may be empty while a UTF-8 sequence is incomplete). */
  text: string;
}

export type FinishReason = 'length' | 'eos' | 'stop' | 'aborted' | 'context';

export interface GenerationResult {
  promptTokens: number[];
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  ttftMs: number;
  prefillTokPerS: number;
  decodeTokPerS: number;
  /** Documents requests: prompt tokens whose cached KV was used as is. */
  reusedTokens?: number;
  /** Documents requests: chunk tokens recomputed in place (AttnLink, CacheBlend). */
  recomputedTokens?: number;
  /** Documents requests: prompt tokens computed from scratch (BOS, question, chunks that were not cached, or all with 'full'). */
  computedTokens?: number;
  /** Documents requests: the chunks in prompt order. */
  chunks?: UsedChunk[];
  /** Documents requests: chunks left out because the documents did not fit the context. */
  droppedChunks?: number;
  /** Things that went wrong without failing the answer (a store write refused for room, ...). */
  warnings?: string[];
}

/** Where a linked chunk's KV came from. */
export type ChunkSource = 'gpu' | 'memory' | 'store' | 'computed';

export interface UsedChunk {
  id: string;
  tokens: number;
  /** Its KV was reused (not computed for this request). */
  cached: boolean;
  source: ChunkSource;
  /** The stored document it belongs to (absent for raw texts). */
  document?: string;
  /** Its position among its document's chunks. */
  index: number;
  /** The document text it covers. */
  text: string;
}

/** What a chunk's KV is computed after (it enters the chunk id): nothing, a fixed lead-in, or the document's preceding tokens. */
export type ChunkContextMode = 'none' | 'lead-in' | 'previous';

export interface ChunkSettings {
  /** Tokens a chunk is filled to before it looks for a place to end (the chunker's target). */
  targetTokens?: number;
  context?: ChunkContextMode;
  /** Lead-in or preceding tokens the chunk is computed after (default 8). */
  contextTokens?: number;
  /** Compute and link each chunk with its own BOS in front (see GenerateOptions.chunkBos). */
  chunkBos?: boolean;
}

export interface DocumentInput {
  /** Default: the first 16 hex digits of the text's SHA-256. An existing id is replaced. */
  id?: string;
  title?: string;
  text: string;
  /** A pinned document's chunks are never evicted from storage. */
  pin?: boolean;
}

export interface DocumentProgress {
  phase: 'tokenize' | 'compute' | 'store' | 'done';
  /** Chunks done and in all. */
  done: number;
  total: number;
}

export interface DocumentAddOptions {
  onProgress?: (p: DocumentProgress) => void;
  signal?: AbortSignal;
}

export interface DocumentInfo {
  id: string;
  title: string;
  textHash: string;
  chars: number;
  tokens: number;
  chunks: number;
  /** Chunks whose KV is in storage now (evicted ones are recomputed when used). */
  storedChunks: number;
  /** Bytes of its stored chunk records. */
  bytes: number;
  pinned: boolean;
  createdAt: number;
  lastUsedAt: number;
  /** Whether its chunks were made for the loaded model (otherwise it is read again when used). */
  currentModel: boolean;
  /** Chunks computed by the add that returned this (0 when every chunk was cached). */
  computedChunks?: number;
  warnings?: string[];
}

export interface TierStats {
  chunks: number;
  bytes: number;
}

export interface DocumentStats {
  documents: number;
  chunks: number;
  tokens: number;
  tiers: { gpu: TierStats & { tokens: number; pinned: number }; memory: TierStats & { budgetBytes: number }; store: TierStats & { name: string; budgetBytes: number; quotaBytes?: number; usageBytes?: number; persisted?: boolean } };
  hits: { gpu: number; memory: number; store: number };
  misses: number;
  /** Stored records that failed a check and were recomputed. */
  corrupt: number;
  evictions: { gpu: number; memory: number; store: number };
  /** Chunks no manifest named, removed at start-up. */
  collected: number;
  /** Store traffic of the chunk cache since the model loaded (records read for requests, written after). */
  io: { readBytes: number; readMs: number; writeBytes: number; writeMs: number };
  warnings: string[];
}
