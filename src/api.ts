// The API module: what a page, the demo UI or an extension needs to talk to chunklm's Worker: the
// client, the request and response types, the errors, and the Worker protocol. Importing types
// from here (not from engine/ or worker/) keeps hosts off the internals; `chunklm` (src/index.ts)
// re-exports all of it with the lower-level pieces for hosts that own a GPUDevice.

// Main-thread client (the Worker owns the GPU).
export {
  ChunklmClient,
  type ChunklmClientOptions,
  type ClientDocuments,
  type ClientLoadOptions,
  type ClientModels,
  type GenerationStream,
  type ModelInput,
} from './client/client.ts';

// Requests and responses.
export { LINK_METHODS } from './engine/types.ts';
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
  FinishReason,
  GenerateInput,
  GenerateOptions,
  GenerationResult,
  LinkMethod,
  LoadOptions,
  LoadProgress,
  ModelFileInfo,
  ModelInfo,
  TierStats,
  TokenEvent,
  UsedChunk,
} from './engine/types.ts';
export type { StoreChange } from './kv/store.ts';
export type { CachedModelFile } from './hub/model-cache.ts';

// The Worker protocol: the version both ends check at connect, and the API the Worker exposes
// through Comlink (for hosts that connect their own endpoint: `ChunklmClient.create({ worker })`).
export {
  PROTOCOL_VERSION,
  type ChunklmWorkerApi,
  type ModelSourceSpec,
  type TokenizeOptions,
  type WorkerGenerateOptions,
  type WorkerLoadOptions,
} from './worker/api.ts';

// Errors: every error chunklm throws is a ChunklmError with a stable name, code and fields; they
// keep their class across the Worker boundary.
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
  throwIfAborted,
  type ErrorFields,
} from './errors.ts';

// Display helpers the demo and hosts share (sizes, load progress in words).
export { formatBytes, formatLoadProgress } from './format.ts';
