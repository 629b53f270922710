// The Worker's one narrow API, exposed through Comlink. It owns the engine, serializes the
// engine calls that touch the GPU (load, generate, unload), and turns `cancel(requestId)` into
// the AbortSignal of the matching call, because an AbortSignal itself cannot be posted.
// Host-independent: the browser entry (worker.ts) and the Node tests give it an engine factory.
import { releaseProxy, transfer } from 'comlink';
import type { EngineDocuments, ModelBytes } from '../engine/engine.ts';
import type {
  ChunkSettings,
  DocumentInfo,
  DocumentInput,
  DocumentProgress,
  DocumentStats,
  GenerateInput,
  GenerateOptions,
  GenerationResult,
  LoadOptions,
  LoadProgress,
  ModelInfo,
  TokenEvent,
} from '../engine/types.ts';
import { ChunklmError, GPUError, InvalidRequestError, StorageError, WorkerError, throwIfAborted } from '../errors.ts';
import type { StoreChange } from '../kv/store.ts';
import type { RetryPolicy } from '../gguf/http.ts';
import type { GGUFFile } from '../gguf/reader.ts';
import { BlobSource, UrlSource, type ByteSource } from '../gguf/source.ts';
import { splitPartNames } from '../gguf/split.ts';
import type { CachedModelFile, ModelCache } from '../hub/model-cache.ts';
import { withRate } from '../hub/rate.ts';
import { openRemoteModel } from '../hub/remote.ts';

/**
 * The version of the messages between ChunklmClient and the Worker, bumped when they change, so a
 * page never talks to a stale cached Worker script (or a Worker of another chunklm). Both ends
 * check it at connect (`handshake`); a mismatch is WorkerError 'protocol-mismatch'.
 * 4: `handshake(clientProtocol)`.
 */
export const PROTOCOL_VERSION = 4;

/**
 * Where the model comes from. A URL is fetched by the Worker (through the model cache, with Range
 * requests); a Blob (File) is read in place, several Blobs are the parts of a split model.
 */
export type ModelSourceSpec = { url: string } | { blob: Blob } | { blobs: Blob[] };

export interface TokenizeOptions {
  /** Prepend BOS (default false). */
  addBos?: boolean;
  /** Turn special-token text such as `<s>` into its id instead of encoding it literally (default false). */
  parseSpecial?: boolean;
}

/** Load options that can cross the boundary (the signal becomes `cancel(requestId)`). */
export type WorkerLoadOptions = Omit<LoadOptions, 'signal' | 'onProgress'>;
/** Generate options that can cross the boundary (the signal becomes `cancel(requestId)`). */
export type WorkerGenerateOptions = Omit<GenerateOptions, 'signal'>;

/** The subset of the engine the Worker uses; `Engine` satisfies it, and tests use fakes. */
export interface EngineLike {
  load(source: ModelBytes, opts: LoadOptions): Promise<ModelInfo>;
  /** Throws when the model cannot run on this device at these options (before any weight is read). */
  checkFit?(file: GGUFFile, opts: LoadOptions): unknown;
  tokenize(text: string, opts?: TokenizeOptions): number[];
  detokenize(ids: number[]): string;
  generate(input: GenerateInput, opts: GenerateOptions): AsyncIterator<TokenEvent, GenerationResult>;
  unload(): void | Promise<void>;
  /** Documents read once and kept (absent in engines without a store). */
  readonly documents?: EngineDocuments;
  /** The engine's device, for the simulated device loss of tests. */
  readonly device?: GPUDevice;
}

export interface WorkerHost {
  /**
   * Creates the engine (acquires the GPU device); called on the first load, and again after a
   * failure or after the host calls `onLost` (device lost), so the next load starts afresh.
   */
  openEngine(onLost: () => void): Promise<EngineLike>;
  /** Opens the model bytes itself (tests); by default URLs go through openRemoteModel and Blobs are read in place. */
  openSource?(spec: ModelSourceSpec, signal: AbortSignal): Promise<ModelBytes>;
  /** Where URL loads keep downloaded files (the browser's Cache Storage); none: every load downloads. */
  modelCache?: ModelCache;
  /** Replaces the global fetch for URL loads (tests). */
  fetch?: typeof fetch;
  /** How URL loads retry a dropped connection (default DEFAULT_RETRY). */
  retry?: RetryPolicy;
}

/** What the page sees through Comlink (every method returns a Promise there). */
export interface ChunklmWorkerApi {
  /**
   * Returns the Worker's {@link PROTOCOL_VERSION}; also proves the Worker script has started.
   * Frozen: every protocol version has it, so a client can always learn which Worker it reached.
   */
  ping(): number;
  /**
   * The first call of a client: returns the Worker's {@link PROTOCOL_VERSION}, or throws WorkerError
   * 'protocol-mismatch' (fields `worker`, `client`) when `clientProtocol` is another one.
   */
  handshake(clientProtocol: number): number;
  load(
    source: ModelSourceSpec,
    opts: WorkerLoadOptions,
    onProgress: ((p: LoadProgress) => void) | undefined,
    requestId: number,
  ): Promise<ModelInfo>;
  tokenize(text: string, opts?: TokenizeOptions): number[];
  detokenize(ids: number[]): string;
  /** Streams each token to `onToken`; every event has been delivered before the result resolves. */
  generate(
    input: GenerateInput,
    opts: WorkerGenerateOptions,
    onToken: (event: TokenEvent) => void,
    requestId: number,
  ): Promise<GenerationResult>;
  /** Aborts the load, generate or documentsAdd call started with `requestId`; unknown (finished) ids are ignored. */
  cancel(requestId: number): void;
  unload(): Promise<void>;
  documentsAdd(input: DocumentInput, onProgress: ((p: DocumentProgress) => void) | undefined, requestId: number): Promise<DocumentInfo>;
  documentsList(): Promise<DocumentInfo[]>;
  documentsGet(id: string): Promise<DocumentInfo | undefined>;
  documentsRemove(id: string): Promise<boolean>;
  documentsClear(): Promise<void>;
  documentsPin(id: string, pinned: boolean): Promise<DocumentInfo>;
  documentsStats(): Promise<DocumentStats>;
  /** The document as `.kvpack` bytes (transferred, not copied). */
  documentsExport(id: string): Promise<Uint8Array>;
  /** Adds a document from `.kvpack` bytes, a Blob, or a URL the Worker fetches. */
  documentsImport(pack: Uint8Array | Blob | { url: string }): Promise<DocumentInfo>;
  /** Calls `listener` when another tab changes the documents; returns a subscription id for unsubscribe. */
  subscribeDocuments(listener: (c: StoreChange) => void): number;
  unsubscribeDocuments(id: number): void;
  documentsSetBudget(bytes: number): Promise<void>;
  documentsEvict(tier: 'gpu' | 'memory'): Promise<number>;
  documentsConfigure(settings: ChunkSettings): Promise<ChunkSettings>;
  /** The files in the model cache: url, bytes, etag, cachedAt. */
  modelsList(): Promise<CachedModelFile[]>;
  /** Removes a file from the model cache (every part, for a split model's part name); false when none was cached. */
  modelsRemove(url: string): Promise<boolean>;
  /** Destroys the GPU device as a driver reset would (for tests of recovery). */
  simulateDeviceLoss(): void;
}

/** The bytes of a spec without the model cache: a URL read with Range requests, Blobs in place. */
export async function openModelSource(spec: ModelSourceSpec, signal: AbortSignal): Promise<ModelBytes> {
  if ('blob' in spec) return new BlobSource(spec.blob);
  if ('blobs' in spec) return spec.blobs.map((b) => new BlobSource(b));
  return Promise.all(splitPartNames(spec.url).map((u) => UrlSource.open(u, { signal })));
}

// Progress events cross a thread boundary each; a multi-GB load reports thousands of chunks.
const PROGRESS_INTERVAL_MS = 50;

export class ChunklmWorkerService implements ChunklmWorkerApi {
  private enginePromise: Promise<EngineLike> | undefined;
  private engine: EngineLike | undefined;
  private loaded = false;
  private readonly requests = new Map<number, AbortController>();
  // A caller whose signal is already aborted sends cancel before the call itself.
  private readonly cancelledAhead = new Set<number>();
  private highestRequestId = 0;
  // Load, generate and unload run one at a time: they share the GPU queue and the KV cache.
  private tail: Promise<unknown> = Promise.resolve();
  /** The last successful load, replayed after a lost device so the next request finds its model. */
  private lastLoad: { source: ModelSourceSpec; opts: WorkerLoadOptions } | undefined;
  private deviceLost = false;
  private readonly subscriptions = new Map<number, { listener: (c: StoreChange) => void; off?: () => void }>();
  private nextSubscription = 1;

  constructor(private readonly host: WorkerHost) {}

  ping(): number {
    return PROTOCOL_VERSION;
  }

  handshake(clientProtocol: number): number {
    if (clientProtocol !== PROTOCOL_VERSION) throw protocolMismatch(PROTOCOL_VERSION, clientProtocol);
    return PROTOCOL_VERSION;
  }

  async load(
    source: ModelSourceSpec,
    opts: WorkerLoadOptions,
    onProgress: ((p: LoadProgress) => void) | undefined,
    requestId: number,
  ): Promise<ModelInfo> {
    const ctrl = this.register(requestId);
    const report = onProgress ? throttledProgress(onProgress) : undefined;
    try {
      return await this.exclusive(async () => {
        throwIfAborted(ctrl.signal);
        return this.loadModel(source, opts, ctrl.signal, report ? withRate(report.push) : undefined);
      });
    } finally {
      await report?.flush();
      this.requests.delete(requestId);
      release(onProgress);
    }
  }

  tokenize(text: string, opts: TokenizeOptions = {}): number[] {
    return this.requireModel().tokenize(text, opts);
  }

  detokenize(ids: number[]): string {
    return this.requireModel().detokenize(ids);
  }

  async generate(
    input: GenerateInput,
    opts: WorkerGenerateOptions,
    onToken: (event: TokenEvent) => void,
    requestId: number,
  ): Promise<GenerationResult> {
    const ctrl = this.register(requestId);
    try {
      return await this.exclusive(async () => {
        const it = (await this.modelAfterLoss(ctrl.signal)).generate(input, { ...opts, signal: ctrl.signal });
        // Deliveries are not awaited one by one (a round trip per token would slow decoding);
        // they are pipelined, and all must have landed before the result is returned, because
        // the callback's port and the reply's port are not ordered with respect to each other.
        const deliveries: Promise<unknown>[] = [];
        let deliveryError: unknown;
        for (;;) {
          const step = await it.next();
          if (deliveryError !== undefined) {
            await it.return?.();
            throw deliveryError;
          }
          if (step.done) {
            await Promise.all(deliveries);
            if (deliveryError !== undefined) throw deliveryError;
            return step.value;
          }
          deliveries.push(
            Promise.resolve(onToken(step.value)).catch((err: unknown) => {
              deliveryError ??= err;
            }),
          );
        }
      });
    } finally {
      this.requests.delete(requestId);
      release(onToken);
    }
  }

  cancel(requestId: number): void {
    const ctrl = this.requests.get(requestId);
    if (ctrl) ctrl.abort();
    // Ids only grow, so an unknown id above every id seen so far is a call still to come.
    else if (requestId > this.highestRequestId) this.cancelledAhead.add(requestId);
  }

  async unload(): Promise<void> {
    await this.exclusive(async () => {
      this.loaded = false;
      this.lastLoad = undefined;
      await this.engine?.unload();
    });
  }

  async documentsAdd(input: DocumentInput, onProgress: ((p: DocumentProgress) => void) | undefined, requestId: number): Promise<DocumentInfo> {
    const ctrl = this.register(requestId);
    try {
      return await this.exclusive(async () => {
        const engine = await this.modelAfterLoss(ctrl.signal);
        const send = onProgress ? (p: DocumentProgress) => void Promise.resolve(onProgress({ ...p })).catch(() => undefined) : undefined;
        return await this.guardDevice(() => docsOf(engine).add(input, { signal: ctrl.signal, onProgress: send }));
      });
    } finally {
      this.requests.delete(requestId);
      release(onProgress);
    }
  }

  documentsList(): Promise<DocumentInfo[]> {
    return this.exclusive(async () => docsOf(await this.storeEngine()).list());
  }

  documentsGet(id: string): Promise<DocumentInfo | undefined> {
    return this.exclusive(async () => docsOf(await this.storeEngine()).get(id));
  }

  documentsRemove(id: string): Promise<boolean> {
    return this.exclusive(async () => docsOf(await this.storeEngine()).remove(id));
  }

  documentsClear(): Promise<void> {
    return this.exclusive(async () => docsOf(await this.storeEngine()).clear());
  }

  documentsPin(id: string, pinned: boolean): Promise<DocumentInfo> {
    return this.exclusive(async () => docsOf(await this.storeEngine()).pin(id, pinned));
  }

  documentsStats(): Promise<DocumentStats> {
    return this.exclusive(async () => docsOf(await this.storeEngine()).stats());
  }

  async documentsExport(id: string): Promise<Uint8Array> {
    const bytes = await this.exclusive(async () => {
      const engine = await this.modelAfterLoss();
      return this.guardDevice(() => docsOf(engine).export(id));
    });
    return transfer(bytes, [bytes.buffer as ArrayBuffer]);
  }

  async documentsImport(pack: Uint8Array | Blob | { url: string }): Promise<DocumentInfo> {
    const bytes = await readPack(pack);
    return this.exclusive(async () => docsOf(await this.modelAfterLoss()).import(bytes));
  }

  documentsSetBudget(bytes: number): Promise<void> {
    return this.exclusive(async () => docsOf(await this.modelAfterLoss()).setBudget(bytes));
  }

  documentsConfigure(settings: ChunkSettings): Promise<ChunkSettings> {
    return this.exclusive(async () => docsOf(await this.modelAfterLoss()).configure(settings));
  }

  documentsEvict(tier: 'gpu' | 'memory'): Promise<number> {
    return this.exclusive(async () => docsOf(await this.modelAfterLoss()).evict(tier));
  }

  subscribeDocuments(listener: (c: StoreChange) => void): number {
    const id = this.nextSubscription++;
    const sub: { listener: (c: StoreChange) => void; off?: () => void } = { listener };
    this.subscriptions.set(id, sub);
    sub.off = this.engine?.documents?.onChange((c) => void Promise.resolve(listener(c)).catch(() => undefined));
    return id;
  }

  unsubscribeDocuments(id: number): void {
    const sub = this.subscriptions.get(id);
    sub?.off?.();
    this.subscriptions.delete(id);
    release(sub?.listener);
  }

  async modelsList(): Promise<CachedModelFile[]> {
    return (await this.host.modelCache?.list()) ?? [];
  }

  modelsRemove(url: string): Promise<boolean> {
    const cache = this.host.modelCache;
    if (!cache) return Promise.resolve(false);
    // After any load in progress: it may be reading the file.
    return this.exclusive(async () => {
      let removed = false;
      for (const part of splitPartNames(url)) removed = (await cache.remove(part)) || removed;
      return removed;
    });
  }

  simulateDeviceLoss(): void {
    const device = this.engine?.device;
    if (!device) throw new InvalidRequestError('no-device', 'no GPU device is open; load a model first');
    device.destroy();
  }

  /**
   * The loaded engine; after a lost device, a new one with the last model loaded again (the
   * documents come back from the store as their chunks are used).
   */
  private async modelAfterLoss(signal?: AbortSignal): Promise<EngineLike> {
    if (!this.loaded && this.deviceLost && this.lastLoad) {
      await this.loadModel(this.lastLoad.source, this.lastLoad.opts, signal ?? new AbortController().signal);
      this.deviceLost = false;
    }
    return this.requireModel();
  }

  /**
   * The engine for calls that read or change the store alone (list, get, stats, remove, clear,
   * pin): the loaded model's (replayed after a device loss), or, before any load, the engine
   * opened without a model, so a page lists the documents it kept before a model is chosen.
   */
  private async storeEngine(): Promise<EngineLike> {
    if (this.loaded || (this.deviceLost && this.lastLoad)) return this.modelAfterLoss();
    return this.openEngine();
  }

  /** Opens the engine (a new device when the last was lost) and loads the model; remembered for a replay after a loss. */
  private async loadModel(source: ModelSourceSpec, opts: WorkerLoadOptions, signal: AbortSignal, onProgress?: (p: LoadProgress) => void): Promise<ModelInfo> {
    const engine = await this.openEngine();
    this.loaded = false;
    let info: ModelInfo;
    if ('url' in source && !this.host.openSource) {
      const { cache: useCache, ...loadOpts } = opts;
      const remote = await openRemoteModel(source.url, {
        cache: useCache === false ? undefined : this.host.modelCache,
        fetch: this.host.fetch,
        retry: this.host.retry,
        signal,
        onProgress,
        checkFit: (file) => engine.checkFit?.(file, loadOpts),
      });
      for (const w of remote.warnings) console.warn(`chunklm: ${w}`);
      let loaded: ModelInfo;
      try {
        loaded = await engine.load(remote, { ...loadOpts, signal, onProgress });
      } finally {
        // The weights are on the GPU (or the load failed): files held open can go.
        await remote.close();
      }
      info = { ...loaded, files: remote.files, ...(remote.warnings.length > 0 ? { warnings: remote.warnings } : {}) };
    } else {
      const bytes = await (this.host.openSource ?? openModelSource)(source, signal);
      info = await engine.load(bytes, { ...opts, signal, onProgress });
    }
    this.loaded = true;
    this.lastLoad = { source, opts };
    return info;
  }

  /** Reports a call that failed because the device went away as GPUError 'device-lost'. */
  private async guardDevice<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      if (this.deviceLost && !(err instanceof ChunklmError && err.code === 'device-lost')) {
        throw new GPUError('device-lost', `the GPU device was lost during the request (${(err as Error)?.message ?? String(err)}); the next request loads the model again`);
      }
      throw err;
    }
  }

  private register(requestId: number): AbortController {
    if (this.requests.has(requestId)) {
      throw new InvalidRequestError('duplicate-request-id', `request id ${requestId} is already in use`, { requestId });
    }
    const ctrl = new AbortController();
    this.requests.set(requestId, ctrl);
    this.highestRequestId = Math.max(this.highestRequestId, requestId);
    if (this.cancelledAhead.delete(requestId)) ctrl.abort();
    return ctrl;
  }

  private requireModel(): EngineLike {
    if (!this.engine || !this.loaded) {
      throw new InvalidRequestError('no-model', 'no model is loaded; call load() with a GGUF URL or file first');
    }
    return this.engine;
  }

  private openEngine(): Promise<EngineLike> {
    if (!this.enginePromise) {
      const attempt: Promise<EngineLike> = this.host
        .openEngine(() => {
          // Device lost: forget this engine so that the next request acquires a new device.
          if (this.enginePromise !== attempt) return;
          this.enginePromise = undefined;
          this.engine = undefined;
          this.loaded = false;
          this.deviceLost = true;
        })
        .then(
          (engine) => {
            this.engine = engine;
            // Subscriptions follow the engine across device losses.
            for (const sub of this.subscriptions.values()) {
              sub.off?.();
              sub.off = engine.documents?.onChange((c) => void Promise.resolve(sub.listener(c)).catch(() => undefined));
            }
            return engine;
          },
          (err: unknown) => {
            // A failed start (no WebGPU, device refused) is retried by the next load.
            this.enginePromise = undefined;
            throw err;
          },
        );
      this.enginePromise = attempt;
    }
    return this.enginePromise;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

/** What either end throws when the page and the Worker speak different protocol versions. */
export function protocolMismatch(worker: unknown, client: number): WorkerError {
  return new WorkerError(
    'protocol-mismatch',
    `the chunklm Worker speaks protocol ${String(worker)} but the page's ChunklmClient speaks ${client}: they come from different chunklm builds; reload the page (a stale cached Worker script?), or bundle the Worker from the same chunklm version as the page`,
    { worker: typeof worker === 'number' ? worker : String(worker), client },
  );
}

function docsOf(engine: EngineLike): EngineDocuments {
  if (!engine.documents) throw new InvalidRequestError('no-documents', 'this engine keeps no documents');
  return engine.documents;
}

async function readPack(pack: Uint8Array | Blob | { url: string }): Promise<Uint8Array> {
  if (pack instanceof Uint8Array) return pack;
  if (typeof Blob !== 'undefined' && pack instanceof Blob) return new Uint8Array(await pack.arrayBuffer());
  if (pack && typeof (pack as { url?: unknown }).url === 'string') {
    const url = (pack as { url: string }).url;
    let res: Response;
    try {
      res = await fetch(url);
    } catch (err) {
      throw new StorageError('pack-fetch-failed', `cannot fetch the .kvpack at ${url}: ${(err as Error).message}`, { url });
    }
    if (!res.ok) throw new StorageError('pack-fetch-failed', `fetching the .kvpack at ${url} answered HTTP ${res.status}`, { url, status: res.status });
    return new Uint8Array(await res.arrayBuffer());
  }
  throw new InvalidRequestError('bad-pack', 'a .kvpack is given as bytes (Uint8Array), a Blob or {url}');
}

/** Forwards progress at most every PROGRESS_INTERVAL_MS, always forwarding phase changes and the last event. */
function throttledProgress(send: (p: LoadProgress) => void): { push: (p: LoadProgress) => void; flush: () => Promise<void> } {
  let lastSent = 0;
  let lastPhase: LoadProgress['phase'] | undefined;
  let pending: LoadProgress | undefined;
  let inFlight: Promise<unknown> = Promise.resolve();
  const post = (p: LoadProgress): void => {
    pending = undefined;
    lastSent = Date.now();
    lastPhase = p.phase;
    // A page that stopped listening must not fail the load.
    inFlight = Promise.resolve(send({ ...p })).catch(() => undefined);
  };
  return {
    push(p) {
      const final = p.loadedBytes >= p.totalBytes;
      if (p.phase !== lastPhase || final || Date.now() - lastSent >= PROGRESS_INTERVAL_MS) post(p);
      else pending = p;
    },
    async flush() {
      if (pending) post(pending);
      await inFlight;
    },
  };
}

/** Frees the Worker's end of a callback proxied from the page (no-op for a plain function). */
function release(fn: unknown): void {
  const releaser = fn && (fn as { [releaseProxy]?: () => void })[releaseProxy];
  if (typeof releaser === 'function') releaser.call(fn);
}
