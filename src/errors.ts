// Typed errors shared by every layer. Each has a stable `name` and `code` so that callers can
// branch on them, and so that they survive the Worker boundary (serializeError/deserializeError).

export type ErrorFields = Record<string, string | number | boolean | null | undefined>;

export class ChunklmError extends Error {
  override name = 'ChunklmError';
  readonly code: string;
  readonly fields: ErrorFields;
  constructor(code: string, message: string, fields: ErrorFields = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.fields = fields;
  }
}

/** Malformed, truncated or unsupported GGUF input. */
export class GGUFError extends ChunklmError {
  override name = 'GGUFError';
}

/** A model the runtime cannot run: unknown architecture, tensor type, missing tensor, bad shape. */
export class UnsupportedModelError extends ChunklmError {
  override name = 'UnsupportedModelError';
}

/** Tokenizer metadata that cannot be used, or input it cannot encode. */
export class TokenizerError extends ChunklmError {
  override name = 'TokenizerError';
}

/** No WebGPU, a device too small for the model, or a lost device. */
export class GPUError extends ChunklmError {
  override name = 'GPUError';
}

/** The paged KV cache cannot hold the request: no free pages left ('kv-cache-full'), or a pool that does not fit the device. */
export class KVCacheError extends ChunklmError {
  override name = 'KVCacheError';
}

/** Persistent storage refused or lost data: 'quota-exceeded', 'store-unavailable', 'bad-pack', 'model-mismatch'. */
export class StorageError extends ChunklmError {
  override name = 'StorageError';
}

/** The caller aborted the request through its AbortSignal. */
export class AbortedError extends ChunklmError {
  override name = 'AbortedError';
  constructor(message = 'the request was cancelled') {
    super('aborted', message);
  }
}

/** Bad arguments to a public API call (negative maxTokens, empty prompt, no model loaded, ...). */
export class InvalidRequestError extends ChunklmError {
  override name = 'InvalidRequestError';
}

/** The Worker that hosts the engine failed to start or died (script error, out of memory). */
export class WorkerError extends ChunklmError {
  override name = 'WorkerError';
}

const errorClasses: Record<string, new (code: string, message: string, fields?: ErrorFields) => ChunklmError> = {
  ChunklmError,
  GGUFError,
  UnsupportedModelError,
  TokenizerError,
  GPUError,
  KVCacheError,
  StorageError,
  InvalidRequestError,
  WorkerError,
};

export interface SerializedError {
  name: string;
  code: string;
  message: string;
  fields: ErrorFields;
  stack?: string;
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof ChunklmError) {
    return { name: err.name, code: err.code, message: err.message, fields: err.fields, stack: err.stack };
  }
  if (err instanceof Error) {
    const code = err.name === 'AbortError' ? 'aborted' : 'internal';
    return { name: err.name === 'AbortError' ? 'AbortedError' : err.name, code, message: err.message, fields: {}, stack: err.stack };
  }
  return { name: 'Error', code: 'internal', message: String(err), fields: {} };
}

export function deserializeError(s: SerializedError): Error {
  let err: Error;
  if (s.name === 'AbortedError') err = new AbortedError(s.message);
  else {
    const Cls = errorClasses[s.name];
    err = Cls ? new Cls(s.code, s.message, s.fields) : Object.assign(new Error(s.message), { name: s.name });
  }
  if (s.stack) err.stack = s.stack;
  return err;
}

/** Throws AbortedError when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError();
}
