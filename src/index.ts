// chunklm's public surface. Everything not exported here is internal.

// Main-thread client (the Worker owns the GPU).
export { ChunklmClient, type ChunklmClientOptions, type ClientDocuments, type GenerationStream, type ModelInput } from './client/client.ts';

// The engine itself, for hosts that own a GPUDevice (a Worker of your own, Node).
export { Engine, type EngineDocuments, type EngineOptions } from './engine/engine.ts';
export type {
  ChatMessage,
  ChunkContextMode,
  ChunkSettings,
  ChunkSource,
  DocumentAddOptions,
  DocumentInfo,
  DocumentInput,
  DocumentProgress,
  DocumentsInput,
  DocumentStats,
  UsedChunk,
  FinishReason,
  GenerateInput,
  GenerateOptions,
  GenerationResult,
  LoadOptions,
  LoadProgress,
  ModelInfo,
  TokenEvent,
} from './engine/types.ts';
export { requestChunklmDevice, describeAdapter, type GpuFeatures } from './gpu/context.ts';
export { viteShaderSources } from './gpu/shaders-vite.ts';

// Where documents and chunk KV persist, for hosts that build their own Engine.
export { IdbStore } from './kv/idb-store.ts';
export { MemoryStore } from './kv/memory-store.ts';
export type { DocumentManifest, PersistentStore, StoreChange } from './kv/store.ts';

// Model files.
export { BlobSource, MemorySource, UrlSource, type ByteSource } from './gguf/source.ts';
export { parseGGUF, type GGUFFile, type GGUFTensorInfo } from './gguf/reader.ts';

// Errors: every error chunklm throws is a ChunklmError with a stable name and code.
export {
  AbortedError,
  ChunklmError,
  GGUFError,
  GPUError,
  InvalidRequestError,
  KVCacheError,
  StorageError,
  TokenizerError,
  UnsupportedModelError,
  WorkerError,
} from './errors.ts';
