// The browser's model cache: one Cache Storage cache ('chunklm-models') of Responses keyed by the
// file's URL, whose headers carry its size, ETag and time of caching. A download is written as a
// streamed Response body: Cache Storage writes it to disk as it is read and adds the entry only
// when the body has ended, so a failed, cancelled or killed download leaves no entry, and the file
// never has to sit in the JS heap. A cached file is read back as a disk-backed Blob (slices are
// read on demand). Why Cache Storage and not OPFS: docs/ARCHITECTURE.md, "Decisions".
import { StorageError } from '../errors.ts';
import { BlobSource, type ByteSource } from '../gguf/source.ts';
import { checkWrittenBytes, type CachedModelFile, type ModelCache } from './model-cache.ts';

export const MODEL_CACHE_NAME = 'chunklm-models';

const H_BYTES = 'x-chunklm-bytes';
const H_ETAG = 'x-chunklm-etag';
const H_CACHED_AT = 'x-chunklm-cached-at';

export class CacheStorageModelCache implements ModelCache {
  readonly description: string;

  constructor(
    private readonly name = MODEL_CACHE_NAME,
    private readonly storage: CacheStorage | undefined = typeof caches !== 'undefined' ? caches : undefined,
  ) {
    this.description = `Cache Storage '${name}'`;
  }

  async list(): Promise<CachedModelFile[]> {
    const cache = await this.cache();
    const out: CachedModelFile[] = [];
    for (const req of await guard(cache.keys(), 'list')) {
      const res = await guard(cache.match(req), 'read');
      const entry = res ? entryOf(req.url, res) : undefined;
      if (entry) out.push(entry);
    }
    return out;
  }

  async open(url: string): Promise<{ entry: CachedModelFile; source: ByteSource } | undefined> {
    const cache = await this.cache();
    const res = await guard(cache.match(url), 'read');
    if (!res) return undefined;
    const entry = entryOf(url, res);
    const blob = entry ? await guard(res.blob(), 'read') : undefined;
    if (!entry || !blob || blob.size !== entry.bytes) {
      // Not one of ours, or its body is not the size it was written with: not an entry.
      await cache.delete(url).catch(() => undefined);
      return undefined;
    }
    return { entry, source: new BlobSource(blob, fileName(url)) };
  }

  async write(file: Omit<CachedModelFile, 'cachedAt'>, body: AsyncIterable<Uint8Array>): Promise<CachedModelFile> {
    const cache = await this.cache();
    await guard(cache.delete(file.url), 'write');
    const it = body[Symbol.asyncIterator]();
    let written = 0;
    let bodyError: unknown;
    const stream = new ReadableStream<Uint8Array>(
      {
        async pull(ctrl) {
          try {
            const step = await it.next();
            if (step.done) {
              checkWrittenBytes(file, written);
              ctrl.close();
              return;
            }
            written += step.value.byteLength;
            ctrl.enqueue(step.value);
          } catch (err) {
            bodyError = err;
            ctrl.error(err);
          }
        },
        async cancel() {
          await it.return?.();
        },
      },
      // Pull only when Cache Storage asks: the download goes no faster than the disk write.
      { highWaterMark: 0 },
    );
    const entry: CachedModelFile = { url: file.url, bytes: file.bytes, ...(file.etag !== undefined ? { etag: file.etag } : {}), cachedAt: Date.now() };
    const headers = new Headers({
      'content-type': 'application/octet-stream',
      'content-length': String(file.bytes),
      [H_BYTES]: String(file.bytes),
      [H_CACHED_AT]: String(entry.cachedAt),
    });
    if (file.etag !== undefined) headers.set(H_ETAG, file.etag);
    try {
      await cache.put(file.url, new Response(stream, { headers }));
    } catch (err) {
      if (bodyError !== undefined) throw bodyError;
      throw storageError(err, 'write', file.url);
    }
    return entry;
  }

  async remove(url: string): Promise<boolean> {
    const cache = await this.cache();
    return guard(cache.delete(url), 'remove');
  }

  private async cache(): Promise<Cache> {
    if (!this.storage) {
      throw new StorageError('store-unavailable', 'Cache Storage is not available here (it needs a secure context: https or localhost); models are not cached', {});
    }
    return guard(this.storage.open(this.name), 'open');
  }
}

function entryOf(url: string, res: Response): CachedModelFile | undefined {
  const bytes = Number(res.headers.get(H_BYTES));
  const cachedAt = Number(res.headers.get(H_CACHED_AT));
  if (!Number.isSafeInteger(bytes) || bytes < 0 || !Number.isFinite(cachedAt)) return undefined;
  const etag = res.headers.get(H_ETAG) ?? undefined;
  return { url, bytes, ...(etag !== undefined ? { etag } : {}), cachedAt };
}

function fileName(url: string): string {
  try {
    return decodeURIComponent(new URL(url).pathname.split('/').pop() || url);
  } catch {
    return url;
  }
}

async function guard<T>(p: Promise<T>, what: string): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw storageError(err, what);
  }
}

function storageError(err: unknown, what: string, url?: string): StorageError {
  if (err instanceof StorageError) return err;
  const name = (err as { name?: string })?.name;
  const msg = (err as Error)?.message ?? String(err);
  if (name === 'QuotaExceededError') {
    return new StorageError('quota-exceeded', `the browser refused to cache ${url ?? 'the model'}: its storage quota is used up (${msg})`, { url }, { cause: err });
  }
  return new StorageError('cache-failed', `the model cache could not ${what}${url ? ` ${url}` : ''}: ${msg}`, { url }, { cause: err });
}
