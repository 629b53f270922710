// Random-access byte sources a GGUF is read from. The parser only ever asks for ranges, so a
// multi-GB model is never held (or downloaded) whole just to read its header.
// Browser-safe: no node modules here (the Node file source is in node-file-source.ts).
import { AbortedError, GGUFError, throwIfAborted } from '../errors.ts';
import { probeFile, readRange, type RangeRequestOptions, type RemoteFileInfo, type RetryPolicy } from './http.ts';

export interface ByteSource {
  /** File name or URL, for messages. */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Exactly `length` bytes starting at `offset`; rejects when the range is outside the source. */
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** Releases what the source holds open (a file handle); sources that hold nothing have none. */
  close?(): Promise<void>;
}

/** Rejects ranges that are not inside `[0, size)`: a read past the end means the file is short. */
export function checkRange(source: ByteSource, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new GGUFError('bad-read', `invalid read of ${length} bytes at ${offset} from ${source.name}`, { offset, length });
  }
  if (offset + length > source.size) {
    throw new GGUFError(
      'truncated',
      `${source.name} ends at byte ${source.size} but ${length} bytes were needed at ${offset}; the file is truncated (an incomplete download?)`,
      { offset, length, size: source.size },
    );
  }
}

/** Wraps a DOMException AbortError (fetch, Blob) as AbortedError; other errors pass through. */
function asAbort(err: unknown, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted || (err instanceof Error && err.name === 'AbortError')) return new AbortedError();
  return err;
}

/** A Blob or File (drag-and-drop, `<input type=file>`, OPFS, IndexedDB). */
export class BlobSource implements ByteSource {
  readonly name: string;
  readonly size: number;

  constructor(
    private readonly blob: Blob,
    name?: string,
  ) {
    this.name = name ?? (typeof File !== 'undefined' && blob instanceof File ? blob.name : 'blob');
    this.size = blob.size;
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    checkRange(this, offset, length);
    throwIfAborted(signal);
    let buf: ArrayBuffer;
    try {
      buf = await this.blob.slice(offset, offset + length).arrayBuffer();
    } catch (err) {
      throw asAbort(err, signal);
    }
    throwIfAborted(signal);
    if (buf.byteLength !== length) {
      throw new GGUFError('truncated', `${this.name}: asked for ${length} bytes at ${offset}, got ${buf.byteLength}`, { offset, length });
    }
    return new Uint8Array(buf);
  }
}

/** Bytes already in memory (tests, synthetic models, a cached download). Reads return copies. */
export class MemorySource implements ByteSource {
  readonly size: number;

  constructor(
    private readonly bytes: Uint8Array,
    readonly name = 'memory',
  ) {
    this.size = bytes.byteLength;
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    checkRange(this, offset, length);
    throwIfAborted(signal);
    return this.bytes.slice(offset, offset + length);
  }
}

export interface UrlSourceOptions {
  signal?: AbortSignal;
  /** Replaces the global fetch (tests, auth headers, a caching layer). */
  fetch?: typeof fetch;
  /** How a dropped connection or a passing server error is retried (see DEFAULT_RETRY). */
  retry?: RetryPolicy;
  /** Told before each retry (for logs and warnings). */
  onRetry?: RangeRequestOptions['onRetry'];
}

/**
 * A file served over HTTP(S). Every read is one `Range` request, resumed from the byte it reached
 * when the connection drops (src/gguf/http.ts); servers that ignore `Range` are refused rather than
 * silently streaming the whole model for each header chunk. Reads check the file's ETag, so a file
 * replaced on the server while it is read fails with GGUFError 'source-changed'.
 */
export class UrlSource implements ByteSource {
  private constructor(
    readonly name: string,
    readonly size: number,
    readonly url: string,
    /** The file's ETag when it was opened (undefined when the server sends none). */
    readonly etag: string | undefined,
    private readonly opts: Omit<RangeRequestOptions, 'signal' | 'etag'>,
  ) {}

  /** Asks the server for the file's size and ETag (HEAD, or a one-byte range where HEAD fails). */
  static async open(url: string | URL, options: UrlSourceOptions = {}): Promise<UrlSource> {
    const href = String(url);
    throwIfAborted(options.signal);
    const opts = { fetch: options.fetch ?? globalThis.fetch.bind(globalThis), retry: options.retry, onRetry: options.onRetry };
    const info = await probeFile(href, { ...opts, signal: options.signal });
    return new UrlSource(href, info.size, href, info.etag, opts);
  }

  /** A source for a file whose size (and ETag) are already known: opening it sends no request. */
  static fromInfo(url: string | URL, info: RemoteFileInfo, options: Omit<UrlSourceOptions, 'signal'> = {}): UrlSource {
    const href = String(url);
    return new UrlSource(href, info.size, href, info.etag, { fetch: options.fetch ?? globalThis.fetch.bind(globalThis), retry: options.retry, onRetry: options.onRetry });
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    checkRange(this, offset, length);
    throwIfAborted(signal);
    if (length === 0) return new Uint8Array(0);
    return readRange(this.url, offset, length, { ...this.opts, signal, etag: this.etag });
  }
}
