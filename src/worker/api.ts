// The Worker's one narrow API, exposed through Comlink. It owns the engine, serializes the
// engine calls that touch the GPU (load, generate, unload), and turns `cancel(requestId)` into
// the AbortSignal of the matching call, because an AbortSignal itself cannot be posted.
// Host-independent: the browser entry (worker.ts) and the Node tests give it an engine factory.
import { releaseProxy } from 'comlink';
import type {
  GenerateInput,
  GenerateOptions,
  GenerationResult,
  LoadOptions,
  LoadProgress,
  ModelInfo,
  TokenEvent,
} from '../engine/types.ts';
import { InvalidRequestError, throwIfAborted } from '../errors.ts';
import { BlobSource, UrlSource, type ByteSource } from '../gguf/source.ts';

/** Bumped when the messages change, so a page never talks to a stale cached worker script. */
export const WORKER_PROTOCOL_VERSION = 1;

/** Where the model comes from. A URL is fetched by the Worker with Range requests; a Blob (File) is read in place. */
export type ModelSourceSpec = { url: string } | { blob: Blob };

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
  load(source: ByteSource, opts: LoadOptions): Promise<ModelInfo>;
  tokenize(text: string, opts?: TokenizeOptions): number[];
  detokenize(ids: number[]): string;
  generate(input: GenerateInput, opts: GenerateOptions): AsyncIterator<TokenEvent, GenerationResult>;
  unload(): void | Promise<void>;
}

export interface WorkerHost {
  /**
   * Creates the engine (acquires the GPU device); called on the first load, and again after a
   * failure or after the host calls `onLost` (device lost), so the next load starts afresh.
   */
  openEngine(onLost: () => void): Promise<EngineLike>;
  /** Opens the model bytes; defaults to {@link openModelSource}. */
  openSource?(spec: ModelSourceSpec, signal: AbortSignal): Promise<ByteSource>;
}

/** What the page sees through Comlink (every method returns a Promise there). */
export interface ChunklmWorkerApi {
  /** Returns {@link WORKER_PROTOCOL_VERSION}; also proves the Worker script has started. */
  ping(): number;
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
  /** Aborts the load or generate call started with `requestId`; unknown (finished) ids are ignored. */
  cancel(requestId: number): void;
  unload(): Promise<void>;
}

export async function openModelSource(spec: ModelSourceSpec, signal: AbortSignal): Promise<ByteSource> {
  if ('blob' in spec) return new BlobSource(spec.blob);
  return UrlSource.open(spec.url, { signal });
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

  constructor(private readonly host: WorkerHost) {}

  ping(): number {
    return WORKER_PROTOCOL_VERSION;
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
        const engine = await this.openEngine();
        const bytes = await (this.host.openSource ?? openModelSource)(source, ctrl.signal);
        this.loaded = false;
        const info = await engine.load(bytes, { ...opts, signal: ctrl.signal, onProgress: report?.push });
        this.loaded = true;
        return info;
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
        const it = this.requireModel().generate(input, { ...opts, signal: ctrl.signal });
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
      await this.engine?.unload();
    });
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
          // Device lost: forget this engine so that the next load acquires a new device.
          if (this.enginePromise !== attempt) return;
          this.enginePromise = undefined;
          this.engine = undefined;
          this.loaded = false;
        })
        .then(
          (engine) => (this.engine = engine),
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
