// chunklm's public surface. Everything not exported here is internal.

// The API module: the client, request/response types, errors, the Worker protocol.
export * from './api.ts';

// The engine itself, for hosts that own a GPUDevice (a Worker of your own, Node).
export { Engine, type EngineDocuments, type EngineOptions, type ModelBytes } from './engine/engine.ts';
export type { Footprint } from './model/footprint.ts';
export { requestChunklmDevice, describeAdapter, type GpuFeatures } from './gpu/context.ts';
// Every shaders/*.wgsl as strings (generated; give it to `new Engine(device, { shaders })`).
export { shaderSources } from './gpu/shader-sources.generated.ts';
export type { ShaderSources } from './gpu/shaders.ts';

// Where documents and chunk KV persist, for hosts that build their own Engine.
export { IdbStore } from './kv/idb-store.ts';
export { MemoryStore } from './kv/memory-store.ts';
export type { DocumentManifest, PersistentStore } from './kv/store.ts';

// Model files: sources, split models, URLs through the model cache.
export { BlobSource, MemorySource, UrlSource, type ByteSource } from './gguf/source.ts';
export { parseGGUF, type GGUFFile, type GGUFTensorInfo } from './gguf/reader.ts';
export { ConcatSource, openGGUF, splitPartNames, type OpenedGGUF } from './gguf/split.ts';
export type { RetryPolicy } from './gguf/http.ts';
export { openRemoteModel, type RemoteModel, type RemoteModelOptions } from './hub/remote.ts';
export { MemoryModelCache, type ModelCache } from './hub/model-cache.ts';
export { CacheStorageModelCache, MODEL_CACHE_NAME } from './hub/cache-storage.ts';
export { withRate } from './hub/rate.ts';
