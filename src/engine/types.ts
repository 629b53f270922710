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
}

/** A prompt: raw text (BOS added when the model adds one), token ids, or chat messages rendered by the model's template. */
export type GenerateInput = string | { tokens: number[] } | { messages: ChatMessage[] };

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
}
