// The engine's public request/response shapes, shared by the engine, the Worker host, the
// main-thread client, the CLI and the UI.

export interface LoadProgress {
  /** 'header' while the GGUF header is read, 'weights' while tensors stream to the GPU, 'compile' while pipelines are built. */
  phase: 'header' | 'weights' | 'compile' | 'ready';
  loadedBytes: number;
  totalBytes: number;
}

export interface LoadOptions {
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** Upper bound on the context length (tokens); defaults to min(model context, 4096). */
  maxContext?: number;
  /** KV pool in tokens, shared by the running sequence and cached document chunks (default 2 × maxContext). */
  kvBudgetTokens?: number;
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
  /** Share of chunk tokens 'cacheblend' recomputes, in [0, 1] (default DEFAULT_BLEND_RATIO). */
  ratio?: number;
}

/**
 * Documents and a question: each document is split into chunks (KVSplit) whose KV is computed
 * once, cached by content, and linked in front of the question: `[BOS] [chunk ...] [question]`.
 */
export interface DocumentsInput {
  documents: string[];
  question: string;
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
  chunks?: { id: string; tokens: number; cached: boolean }[];
}
