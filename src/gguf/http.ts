// HTTP byte ranges that survive a dropped connection: a range is streamed chunk by chunk, and when
// the connection fails or ends early the rest is asked for from the byte that was reached, after a
// growing pause, a bounded number of times in a row. Every answer is checked to be the bytes asked
// for, of the same file (ETag), so a resumed range never splices two versions of a file together.
// Browser-safe: no node modules here.
import { AbortedError, GGUFError, throwIfAborted } from '../errors.ts';

export interface RetryPolicy {
  /** Consecutive failed attempts that made no progress before giving up (default 5). */
  retries?: number;
  /** Pause before the first retry; doubled after each failure (default 500 ms). */
  initialDelayMs?: number;
  /** Longest pause (default 8 s). */
  maxDelayMs?: number;
}

export const DEFAULT_RETRY: Required<RetryPolicy> = { retries: 5, initialDelayMs: 500, maxDelayMs: 8000 };

export interface RangeRequestOptions {
  fetch: typeof fetch;
  signal?: AbortSignal;
  retry?: RetryPolicy;
  /** The file's ETag when it was first seen: an answer with another one means the file changed. */
  etag?: string;
  /** Told before each retry: why the last attempt failed, from which byte it resumes, and after what pause. */
  onRetry?: (info: { attempt: number; offset: number; delayMs: number; error: unknown }) => void;
}

/** What a HEAD (or a one-byte probe) says about a file. */
export interface RemoteFileInfo {
  size: number;
  etag?: string;
}

/** A failure worth another attempt: the network, a body cut short, or a server error that may pass. */
class RetryableError extends Error {
  override name = 'RetryableError';
}

/**
 * Streams bytes [start, end) of `url` as they arrive. On a dropped connection, a short body or a
 * 408/429/5xx answer, the rest is asked for again (a failure that brought new bytes resets the
 * count); other failures and the last retry's failure are GGUFErrors ('fetch-failed',
 * 'http-error', 'range-unsupported', 'source-changed', 'bad-response'); the signal gives
 * AbortedError.
 */
export async function* streamRange(url: string, start: number, end: number, opts: RangeRequestOptions): AsyncGenerator<Uint8Array, void, undefined> {
  const policy = { ...DEFAULT_RETRY, ...opts.retry };
  const { signal } = opts;
  let pos = start;
  let failures = 0;
  while (pos < end) {
    throwIfAborted(signal);
    const before = pos;
    try {
      const res = await fetchRange(opts.fetch, url, pos, end, signal);
      // A server may answer a shorter range than asked; the rest is asked for next.
      const answerEnd = Math.min(end, checkAnswer(url, res, pos, end, opts.etag));
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      try {
        for (;;) {
          let step: ReadableStreamReadResult<Uint8Array>;
          try {
            step = await reader.read();
          } catch (err) {
            throw asRetryable(err, signal);
          }
          if (step.done) break;
          const chunk = step.value.byteLength > answerEnd - pos ? step.value.subarray(0, answerEnd - pos) : step.value;
          if (chunk.byteLength === 0) continue;
          pos += chunk.byteLength;
          yield chunk;
          if (pos >= answerEnd) break;
        }
      } finally {
        // Stops the body when the consumer leaves early, an error came, or the server sent more.
        reader.cancel().catch(() => undefined);
      }
      // A body that ends cleanly short of its own range is not a dropped connection (fetch reports
      // those as errors) but a server that sends other bytes than it announces.
      if (pos < answerEnd) {
        throw new GGUFError(
          'bad-response',
          `${url}: the server announced bytes up to ${answerEnd} but its answer ended at ${pos}; the file may have changed on the server`,
          { url, offset: pos, announced: answerEnd },
        );
      }
    } catch (err) {
      if (!(err instanceof RetryableError)) throw err;
      if (pos > before) failures = 0;
      failures++;
      if (failures > policy.retries) {
        throw new GGUFError(
          'fetch-failed',
          `${url}: the download failed at byte ${pos} of ${end} after ${policy.retries} retries (${err.message}); check the network and try again`,
          { url, offset: pos, retries: policy.retries },
        );
      }
      const delayMs = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (failures - 1));
      opts.onRetry?.({ attempt: failures, offset: pos, delayMs, error: err });
      await sleep(delayMs, signal);
    }
  }
}

/** Reads bytes [offset, offset + length) into one array, resuming like streamRange. */
export async function readRange(url: string, offset: number, length: number, opts: RangeRequestOptions): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let done = 0;
  for await (const chunk of streamRange(url, offset, offset + length, opts)) {
    out.set(chunk, done);
    done += chunk.byteLength;
  }
  return out;
}

/**
 * Size and ETag of `url`: a HEAD request, or a one-byte ranged GET where HEAD is refused or says
 * nothing useful. A network failure is retried like a range.
 */
export async function probeFile(url: string, opts: RangeRequestOptions): Promise<RemoteFileInfo> {
  const policy = { ...DEFAULT_RETRY, ...opts.retry };
  const { signal } = opts;
  for (let failures = 0; ; ) {
    throwIfAborted(signal);
    try {
      return await probeOnce(url, opts.fetch, signal);
    } catch (err) {
      if (!(err instanceof RetryableError)) throw err;
      failures++;
      if (failures > policy.retries) {
        throw new GGUFError('fetch-failed', `${url}: request failed after ${policy.retries} retries (${err.message}); check the URL, the network and CORS headers`, {
          url,
          retries: policy.retries,
        });
      }
      const delayMs = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (failures - 1));
      opts.onRetry?.({ attempt: failures, offset: 0, delayMs, error: err });
      await sleep(delayMs, signal);
    }
  }
}

async function probeOnce(url: string, fetchFn: typeof fetch, signal: AbortSignal | undefined): Promise<RemoteFileInfo> {
  let head: Response | undefined;
  try {
    head = await fetchFn(url, { method: 'HEAD', signal });
  } catch (err) {
    const e = asRetryable(err, signal);
    if (e instanceof AbortedError) throw e;
    // Some hosts (or CORS setups) refuse HEAD outright: fall through to a ranged GET.
  }
  if (head && retryableStatus(head.status)) throw new RetryableError(`HTTP ${head.status}`);
  if (head?.ok && !head.headers.get('content-encoding')) {
    const size = parseLength(head.headers.get('content-length'));
    if (size !== undefined) return { size, etag: etagOf(head) };
  }
  const res = await fetchRange(fetchFn, url, 0, 1, signal);
  await res.body?.cancel().catch(() => undefined);
  if (res.status === 200) throw rangeUnsupported(url);
  if (res.status !== 206) throw httpError(url, res);
  const total = parseContentRange(res.headers.get('content-range'))?.total;
  if (total === undefined) {
    throw new GGUFError('bad-response', `${url}: the server did not report the file size (no Content-Length or Content-Range total)`, { url });
  }
  return { size: total, etag: etagOf(res) };
}

async function fetchRange(fetchFn: typeof fetch, url: string, start: number, end: number, signal: AbortSignal | undefined): Promise<Response> {
  let res: Response;
  try {
    res = await fetchFn(url, { headers: { Range: `bytes=${start}-${end - 1}` }, signal });
  } catch (err) {
    throw asRetryable(err, signal);
  }
  if (retryableStatus(res.status)) {
    await res.body?.cancel().catch(() => undefined);
    throw new RetryableError(`HTTP ${res.status} ${res.statusText}`.trim());
  }
  return res;
}

/** Throws unless `res` carries bytes from `start` of the same file; returns where its bytes end. */
function checkAnswer(url: string, res: Response, start: number, end: number, etag: string | undefined): number {
  const fail = (err: Error): never => {
    res.body?.cancel().catch(() => undefined);
    throw err;
  };
  let answerEnd = end;
  if (res.status === 200) {
    // The whole file: acceptable only when the whole file was asked for.
    if (start !== 0 || parseLength(res.headers.get('content-length')) !== end) fail(rangeUnsupported(url));
  } else if (res.status !== 206) {
    fail(httpError(url, res));
  } else {
    const got = parseContentRange(res.headers.get('content-range'));
    if (got && got.start !== start) {
      fail(new GGUFError('bad-response', `${url}: asked for bytes from ${start}, the server sent from ${got.start}`, { url, offset: start }));
    }
    if (got) answerEnd = got.end + 1;
  }
  const now = etagOf(res);
  if (etag !== undefined && now !== undefined && now !== etag) {
    fail(
      new GGUFError('source-changed', `${url} changed on the server while it was read (ETag ${etag}, now ${now}); load it again`, {
        url,
        etag,
        now,
      }),
    );
  }
  if (!res.body) fail(new GGUFError('bad-response', `${url}: the answer has no body`, { url }));
  return answerEnd;
}

function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** An ETag without its weak marker (`W/"x"` and `"x"` name the same version for our purpose). */
export function etagOf(res: Response): string | undefined {
  const v = res.headers.get('etag') ?? res.headers.get('x-linked-etag');
  if (!v) return undefined;
  return v.trim().replace(/^W\//, '');
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

/** A DOMException AbortError (or any error once the signal fired) is AbortedError; other errors may pass. */
function asRetryable(err: unknown, signal: AbortSignal | undefined): Error {
  if (signal?.aborted || (err instanceof Error && err.name === 'AbortError')) return new AbortedError();
  if (err instanceof GGUFError || err instanceof AbortedError) return err;
  const msg = err instanceof Error ? (err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message) : String(err);
  return new RetryableError(msg);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortedError());
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AbortedError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
