// Dedicated Worker entry (the package's `chunklm/worker`): owns the WebGPU device and the engine,
// and exposes ChunklmWorkerApi through Comlink. ChunklmClient.create() starts it with
// `new Worker(new URL('../worker/worker.ts', import.meta.url), { type: 'module' })` (Vite), or a
// host passes a Worker of its own bundle of this file. It uses no bundler feature: the kernels
// come from the generated shader module, plain strings.
import { expose } from 'comlink';
import { Engine } from '../engine/engine.ts';
import { GPUError } from '../errors.ts';
import { describeAdapter, requestChunklmDevice } from '../gpu/context.ts';
import { IdbStore } from '../kv/idb-store.ts';
import { MemoryStore } from '../kv/memory-store.ts';
import type { PersistentStore } from '../kv/store.ts';
import { shaderSources } from '../gpu/shader-sources.generated.ts';
import { CacheStorageModelCache } from '../hub/cache-storage.ts';
import { ChunklmWorkerService, type EngineLike } from './api.ts';
import { installErrorTransfer } from './comlink-errors.ts';

async function requestBrowserAdapter(): Promise<GPUAdapter> {
  const gpu = (self.navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) {
    throw new GPUError(
      'no-webgpu',
      'this browser has no WebGPU in workers (navigator.gpu is missing); use a recent Chrome or Edge, or enable WebGPU in the browser settings',
    );
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new GPUError('no-adapter', 'WebGPU is present but no adapter is available; check chrome://gpu, or that the GPU is not blocklisted');
  }
  return adapter;
}

/** One store per origin: every tab of the origin shares it. */
const STORE_NAME = 'chunklm';

let storePromise: Promise<PersistentStore> | undefined;

/**
 * Documents and chunk KV persist in this origin's IndexedDB, shared by every engine this Worker
 * opens (a lost device makes a new engine; the store stays). Where IndexedDB cannot be opened
 * (a private window that refuses it), documents live in memory for this session and the console
 * says so.
 */
function openStore(): Promise<PersistentStore> {
  storePromise ??= IdbStore.open(STORE_NAME).catch((err: unknown) => {
    const notice = `documents will not persist: ${(err as Error)?.message ?? String(err)}`;
    console.warn(`chunklm: ${notice}`);
    return new MemoryStore({ notice });
  });
  return storePromise;
}

/** The one place that knows how the browser host builds an engine. */
async function openBrowserEngine(onLost: () => void): Promise<EngineLike> {
  const adapter = await requestBrowserAdapter();
  const { device, features } = await requestChunklmDevice(adapter);
  void device.lost.then(onLost);
  const store = await openStore();
  return new Engine(device, { shaders: shaderSources, features, adapterInfo: describeAdapter(adapter.info), store, deviceMemory: deviceMemory() });
}

/**
 * What the fit check takes as the most a model may use: the memory the browser reports
 * (navigator.deviceMemory, in GiB, which Chrome rounds down to a power of two and caps), since
 * WebGPU says nothing about a GPU's memory. Absent (Firefox, Safari): only buffer limits are checked.
 */
function deviceMemory(): { bytes: number; source: string } | undefined {
  const gib = (self.navigator as Navigator & { deviceMemory?: number }).deviceMemory;
  return typeof gib === 'number' && gib > 0 ? { bytes: gib * 2 ** 30, source: `navigator.deviceMemory, ${gib} GiB` } : undefined;
}

installErrorTransfer();
// Downloaded models are kept in the origin's Cache Storage (src/hub/cache-storage.ts).
expose(new ChunklmWorkerService({ openEngine: openBrowserEngine, modelCache: new CacheStorageModelCache() }));
