// Main-thread client: starts the engine's Worker and gives the page a typed API in which
// AbortSignals, progress callbacks and token streams work as if the engine were local.
import { proxy, releaseProxy, wrap, type Endpoint, type Remote } from 'comlink';
import type {
  ChunkSettings,
  DocumentAddOptions,
  DocumentInfo,
  DocumentInput,
  DocumentStats,
  GenerateInput,
  GenerateOptions,
  GenerationResult,
  LoadOptions,
  ModelInfo,
  TokenEvent,
} from '../engine/types.ts';
import { ChunklmError, InvalidRequestError, WorkerError } from '../errors.ts';
import type { StoreChange } from '../kv/store.ts';
import type { CachedModelFile } from '../hub/model-cache.ts';
import { PROTOCOL_VERSION, protocolMismatch, type ChunklmWorkerApi, type ModelSourceSpec, type TokenizeOptions } from '../worker/api.ts';
import { installErrorTransfer } from '../worker/comlink-errors.ts';

export interface ChunklmClientOptions {
  /**
   * A Worker running src/worker/worker.ts, or any Comlink endpoint exposing ChunklmWorkerApi
   * (tests use a MessagePort). Default: a new module Worker, terminated by dispose().
   */
  worker?: Worker | Endpoint;
}

/**
 * A model: a URL (downloaded by the Worker into the model cache, or read from it), a Blob/File, or
 * the Blobs of every part of a split model. A URL naming a part of a split model
 * (`-00001-of-0000N.gguf`) loads every part.
 */
export type ModelInput = string | URL | Blob | readonly Blob[];

export type ClientLoadOptions = LoadOptions;

/**
 * A running generation: iterate it for the tokens as they come; `result` resolves with the
 * full result and metrics. Aborting the signal (or `cancel()`, or leaving the loop early) stops
 * it in the Worker; the stream then ends normally and `result.finishReason` is 'aborted'.
 */
export interface GenerationStream extends AsyncIterable<TokenEvent> {
  readonly result: Promise<GenerationResult>;
  cancel(): void;
}

/** Documents kept by the Worker's engine, persisted in this origin's IndexedDB. */
export interface ClientDocuments {
  /** Reads a document: computes only the chunks not cached yet and stores them. */
  add(input: DocumentInput, opts?: DocumentAddOptions): Promise<DocumentInfo>;
  list(): Promise<DocumentInfo[]>;
  get(id: string): Promise<DocumentInfo | undefined>;
  remove(id: string): Promise<boolean>;
  clear(): Promise<void>;
  pin(id: string, pinned?: boolean): Promise<DocumentInfo>;
  stats(): Promise<DocumentStats>;
  /** The document as a `.kvpack` file. */
  export(id: string): Promise<Blob>;
  /** Adds a document from a `.kvpack` (bytes, Blob/File, or URL); refuses one made for another model. */
  import(pack: Uint8Array | Blob | string | URL): Promise<DocumentInfo>;
  /** Called when another tab adds, removes or changes documents; returns the unsubscribe. */
  onChange(listener: (change: StoreChange) => void): () => void;
  /** Bytes of chunk records IndexedDB may hold (default: half the origin's quota); evicts at once when over. */
  setBudget(bytes: number): Promise<void>;
  /** Empties the GPU pool's or the memory tier's cached chunks; IndexedDB keeps them. Returns how many went. */
  evict(tier: 'gpu' | 'memory'): Promise<number>;
  /**
   * How documents added from now on are split (`targetTokens`) and what their chunks are computed
   * after; returns the settings in force. Documents read with other settings are read again when used.
   */
  configure(settings: ChunkSettings): Promise<ChunkSettings>;
}

/** Model files the Worker downloaded and keeps (the origin's Cache Storage). */
export interface ClientModels {
  /** Every cached file: url, bytes, etag, cachedAt. */
  list(): Promise<CachedModelFile[]>;
  /** Removes a cached file (every part, for a URL naming a part of a split model); false when none was cached. */
  remove(url: string | URL): Promise<boolean>;
}

export class ChunklmClient {
  /** The documents API (see ClientDocuments). */
  readonly documents: ClientDocuments;
  /** The model cache (see ClientModels). */
  readonly models: ClientModels;
  private nextRequestId = 1;
  private failure: WorkerError | undefined;
  private readonly failureListeners = new Set<(err: WorkerError) => void>();
  private disposed = false;

  private constructor(
    private readonly api: Remote<ChunklmWorkerApi>,
    private readonly worker: Worker | Endpoint,
    private readonly ownsWorker: boolean,
  ) {
    const w = this.api;
    this.documents = {
      add: (input, opts = {}) => {
        const id = this.nextRequestId++;
        const progress = opts.onProgress ? proxy(opts.onProgress) : undefined;
        return this.withCancel(id, opts.signal, () => w.documentsAdd(input, progress, id));
      },
      list: () => this.call(() => w.documentsList()),
      get: (id) => this.call(() => w.documentsGet(id)),
      remove: (id) => this.call(() => w.documentsRemove(id)),
      clear: () => this.call(() => w.documentsClear()),
      pin: (id, pinned = true) => this.call(() => w.documentsPin(id, pinned)),
      stats: () => this.call(() => w.documentsStats()),
      export: async (id) => new Blob([(await this.call(() => w.documentsExport(id))) as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }),
      import: (pack) => {
        const spec = typeof pack === 'string' || pack instanceof URL ? { url: resolveUrl(String(pack)) } : pack;
        return this.call(() => w.documentsImport(spec));
      },
      setBudget: (bytes) => this.call(() => w.documentsSetBudget(bytes)),
      evict: (tier) => this.call(() => w.documentsEvict(tier)),
      configure: (settings) => this.call(() => w.documentsConfigure(settings)),
      onChange: (listener) => {
        const sub = this.call(() => w.subscribeDocuments(proxy(listener)));
        return () => void sub.then((n) => w.unsubscribeDocuments(n)).catch(() => undefined);
      },
    };
    this.models = {
      list: () => this.call(() => w.modelsList()),
      remove: (url) => this.call(() => w.modelsRemove(resolveUrl(String(url)))),
    };
  }

  /** Destroys the Worker's GPU device as a driver reset would; the next request starts over (tests). */
  simulateDeviceLoss(): Promise<void> {
    return this.call(() => this.api.simulateDeviceLoss());
  }

  /** Starts (or attaches to) the Worker and checks that it answers. */
  static async create(opts: ChunklmClientOptions = {}): Promise<ChunklmClient> {
    installErrorTransfer();
    const ownsWorker = !opts.worker;
    const worker = opts.worker ?? new Worker(new URL('../worker/worker.ts', import.meta.url), { type: 'module', name: 'chunklm' });
    const client = new ChunklmClient(wrap<ChunklmWorkerApi>(worker), worker, ownsWorker);
    if (isWorker(worker)) {
      // A module that fails to load (404, syntax error) only shows as an 'error' event;
      // without this, every call would wait forever.
      worker.addEventListener('error', (ev) => {
        const detail = ev.message ? `: ${ev.message}` : '';
        client.fail(new WorkerError('worker-failed', `the chunklm Worker failed${detail}; see the browser console for the cause`));
      });
      worker.addEventListener('messageerror', () => {
        client.fail(new WorkerError('worker-message-error', 'a message from the chunklm Worker could not be deserialized'));
      });
    }
    try {
      await client.connect();
    } catch (err) {
      client.dispose();
      throw err;
    }
    return client;
  }

  /**
   * The handshake: both ends compare protocol versions (WorkerError 'protocol-mismatch' with both).
   * A Worker older than protocol 4 has no `handshake` (Comlink answers a TypeError); its frozen
   * `ping` says which version it speaks.
   */
  private async connect(): Promise<void> {
    let version: unknown;
    try {
      version = await this.call(() => this.api.handshake(PROTOCOL_VERSION));
    } catch (err) {
      if (err instanceof ChunklmError) throw err;
      version = await this.call(() => this.api.ping());
    }
    if (version !== PROTOCOL_VERSION) throw protocolMismatch(version, PROTOCOL_VERSION);
  }

  /** Loads a GGUF model, replacing any loaded one. Progress reports bytes; the signal cancels. */
  async load(model: ModelInput, opts: ClientLoadOptions = {}): Promise<ModelInfo> {
    const { onProgress, signal, ...rest } = opts;
    const id = this.nextRequestId++;
    const progress = onProgress ? proxy(onProgress) : undefined;
    return this.withCancel(id, signal, () => this.api.load(toSourceSpec(model), rest, progress, id));
  }

  /** Token ids of `text` under the loaded model (no BOS and special text literal unless asked). */
  tokenize(text: string, opts: TokenizeOptions = {}): Promise<number[]> {
    return this.call(() => this.api.tokenize(text, opts));
  }

  detokenize(ids: number[]): Promise<string> {
    return this.call(() => this.api.detokenize(ids));
  }

  generate(input: GenerateInput, opts: GenerateOptions = {}): GenerationStream {
    const { signal, ...rest } = opts;
    const id = this.nextRequestId++;
    const queue: TokenEvent[] = [];
    let settled = false;
    let wake: (() => void) | undefined;
    const notify = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const onToken = proxy((event: TokenEvent) => {
      queue.push(event);
      notify();
    });
    const ctrl = new AbortController();
    const cancel = (): void => ctrl.abort();
    const abortFromCaller = (): void => cancel();
    if (signal?.aborted) cancel();
    else signal?.addEventListener('abort', abortFromCaller, { once: true });

    const result = this.withCancel(id, ctrl.signal, () => this.api.generate(input, rest, onToken, id)).finally(() => {
      signal?.removeEventListener('abort', abortFromCaller);
      settled = true;
      notify();
    });
    // Iterating alone must not leave an unhandled rejection behind: the iterator rethrows it.
    result.catch(() => undefined);

    const events = async function* (): AsyncGenerator<TokenEvent, void, undefined> {
      try {
        for (;;) {
          const next = queue.shift();
          if (next) {
            yield next;
            continue;
          }
          if (settled) {
            await result; // rethrows the generation's error, if any
            return;
          }
          await new Promise<void>((resolve) => (wake = resolve));
        }
      } finally {
        // Leaving the loop early (break, throw) stops the generation.
        if (!settled) cancel();
      }
    };
    return { result, cancel, [Symbol.asyncIterator]: events };
  }

  /** Frees the model's GPU memory; the Worker stays up for the next load. */
  unload(): Promise<void> {
    return this.call(() => this.api.unload());
  }

  /** Ends the Worker (when this client created it). Pending calls reject with WorkerError. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.fail(new WorkerError('disposed', 'this ChunklmClient was disposed; create a new one'));
    this.api[releaseProxy]();
    if (this.ownsWorker && isWorker(this.worker)) this.worker.terminate();
  }

  /** Runs a cancellable Worker call: the signal becomes `cancel(id)` on the Worker side. */
  private async withCancel<T>(id: number, signal: AbortSignal | undefined, start: () => Promise<T>): Promise<T> {
    const cancel = (): void => {
      if (!this.failure) this.api.cancel(id).catch(() => undefined);
    };
    // An already aborted signal sends cancel ahead of the call (messages are ordered and the
    // Worker remembers it); the call still runs, so generate() ends with an 'aborted' result.
    if (signal?.aborted) cancel();
    else signal?.addEventListener('abort', cancel, { once: true });
    try {
      return await this.call(start);
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  }

  /** Settles with the Worker's answer, or with WorkerError as soon as the Worker fails. */
  private call<T>(start: () => Promise<T> | T): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      const onFail = (err: WorkerError): void => reject(err);
      this.failureListeners.add(onFail);
      Promise.resolve()
        .then(start)
        .then(resolve, reject)
        .finally(() => this.failureListeners.delete(onFail));
    });
  }

  private fail(err: WorkerError): void {
    if (this.failure) return;
    this.failure = err;
    for (const listener of this.failureListeners) listener(err);
    this.failureListeners.clear();
  }
}

function isWorker(w: Worker | Endpoint): w is Worker {
  return typeof (w as Worker).terminate === 'function';
}

/** The Worker resolves relative URLs against its own script URL; resolve against the page instead. */
function resolveUrl(href: string): string {
  const base = typeof location !== 'undefined' ? location.href : undefined;
  try {
    return base ? new URL(href, base).href : new URL(href).href;
  } catch {
    throw new InvalidRequestError('bad-url', `'${href}' is not a valid URL`, { url: href });
  }
}

function toSourceSpec(model: ModelInput): ModelSourceSpec {
  if (typeof Blob !== 'undefined' && model instanceof Blob) return { blob: model };
  if (Array.isArray(model)) {
    const blobs = model as readonly Blob[];
    if (blobs.length === 0 || !blobs.every((b) => typeof Blob !== 'undefined' && b instanceof Blob)) {
      throw new InvalidRequestError('bad-model', 'a split model is given as the Blobs (Files) of all its parts');
    }
    return blobs.length === 1 ? { blob: blobs[0] } : { blobs: [...blobs] };
  }
  const href = String(model);
  if (href.length === 0) throw new InvalidRequestError('empty-url', 'the model URL is empty; give a URL or a file');
  return { url: resolveUrl(href) };
}

