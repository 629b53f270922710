// Random-access byte sources a GGUF is read from. The parser only ever asks for ranges, so a
// multi-GB model is never held (or downloaded) whole just to read its header.
// Browser-safe: no node modules here (the Node file source is in node-file-source.ts).
import { AbortedError, GGUFError, throwIfAborted } from '../errors.ts';

export interface ByteSource {
  /** File name or URL, for messages. */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Exactly `length` bytes starting at `offset`; rejects when the range is outside the source. */
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
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
}

/**
 * A file served over HTTP(S). Every read is one `Range` request; servers that ignore `Range`
 * are refused rather than silently streaming the whole model for each header chunk.
 */
export class UrlSource implements ByteSource {
  private constructor(
    readonly name: string,
    readonly size: number,
    private readonly url: string,
    private readonly fetchFn: typeof fetch,
  ) {}

  static async open(url: string | URL, options: UrlSourceOptions = {}): Promise<UrlSource> {
    const href = String(url);
    const fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
    const { signal } = options;
    throwIfAborted(signal);

    // HEAD first: cheapest, and most static hosts send Content-Length.
    let size: number | undefined;
    try {
      const head = await fetchFn(href, { method: 'HEAD', signal });
      if (head.ok) size = parseLength(head.headers.get('content-length'));
      if (head.ok && head.headers.get('content-encoding')) size = undefined; // length of the encoded body
    } catch (err) {
      const e = asAbort(err, signal);
      if (e instanceof AbortedError) throw e;
      // Some hosts (or CORS setups) refuse HEAD: fall through to a one-byte ranged GET.
    }
    if (size === undefined) size = await probeSize(href, fetchFn, signal);
    return new UrlSource(href, size, href, fetchFn);
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    checkRange(this, offset, length);
    throwIfAborted(signal);
    if (length === 0) return new Uint8Array(0);
    const res = await request(this.fetchFn, this.url, offset, length, signal);
    if (res.status === 200 && !(offset === 0 && length === this.size)) {
      await res.body?.cancel().catch(() => undefined);
      throw rangeUnsupported(this.url);
    }
    if (res.status !== 206 && res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      throw httpError(this.url, res);
    }
    const got = res.status === 206 ? parseContentRange(res.headers.get('content-range')) : undefined;
    if (got && got.start !== offset) {
      await res.body?.cancel().catch(() => undefined);
      throw new GGUFError('bad-response', `${this.url}: asked for bytes from ${offset}, the server sent from ${got.start}`, { offset });
    }
    let buf: ArrayBuffer;
    try {
      buf = await res.arrayBuffer();
    } catch (err) {
      throw wrapFetchError(err, this.url, signal);
    }
    if (buf.byteLength !== length) {
      throw new GGUFError(
        'bad-response',
        `${this.url}: asked for ${length} bytes at ${offset}, the server sent ${buf.byteLength}; the file may have changed on the server`,
        { offset, length, got: buf.byteLength },
      );
    }
    return new Uint8Array(buf);
  }
}

async function request(fetchFn: typeof fetch, url: string, offset: number, length: number, signal?: AbortSignal): Promise<Response> {
  try {
    return await fetchFn(url, { headers: { Range: `bytes=${offset}-${offset + length - 1}` }, signal });
  } catch (err) {
    throw wrapFetchError(err, url, signal);
  }
}

async function probeSize(url: string, fetchFn: typeof fetch, signal?: AbortSignal): Promise<number> {
  const res = await request(fetchFn, url, 0, 1, signal);
  await res.body?.cancel().catch(() => undefined);
  if (res.status === 200) throw rangeUnsupported(url);
  if (res.status !== 206) throw httpError(url, res);
  const total = parseContentRange(res.headers.get('content-range'))?.total;
  if (total === undefined) {
    throw new GGUFError('bad-response', `${url}: the server did not report the file size (no Content-Length or Content-Range total)`);
  }
  return total;
}

function parseLength(v: string | null): number | undefined {
  if (v === null || !/^\d+$/.test(v.trim())) return undefined;
  const n = Number(v.trim());
  return Number.isSafeInteger(n) ? n : undefined;
}

/** `bytes START-END/TOTAL` (TOTAL may be `*`). */
function parseContentRange(v: string | null): { start: number; end: number; total: number | undefined } | undefined {
  const m = v === null ? null : /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(v.trim());
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

function rangeUnsupported(url: string): GGUFError {
  return new GGUFError(
    'range-unsupported',
    `${url}: the server ignored the HTTP Range header (answered 200 with the whole file). Serve the model from a host that supports range requests, or load it as a local file`,
    { url },
  );
}

function httpError(url: string, res: Response): GGUFError {
  return new GGUFError('http-error', `${url}: HTTP ${res.status} ${res.statusText}`.trim(), { url, status: res.status });
}

function wrapFetchError(err: unknown, url: string, signal?: AbortSignal): unknown {
  const e = asAbort(err, signal);
  if (e instanceof AbortedError || e instanceof GGUFError) return e;
  const msg = err instanceof Error ? err.message : String(err);
  return new GGUFError('fetch-failed', `${url}: request failed (${msg}); check the URL, the network and CORS headers`, { url }, { cause: err });
}
