// The model cache: downloaded GGUF files kept by URL with the ETag and size they had, so a model
// loads again without downloading its weights. Implementations: Cache Storage in a browser
// (cache-storage.ts), a folder on Node (src/node/model-cache.ts), memory here (tests, and hosts
// with nothing better). The contract every implementation keeps:
// - an entry is complete or absent: a write that fails, is cancelled or is killed leaves nothing
//   that `open` or `list` return (a killed writer may leave debris, never an entry);
// - `write` consumes its body as it arrives and never holds the whole file in memory (the memory
//   cache aside);
// - a refused write (quota) is StorageError 'quota-exceeded', other storage failures StorageError.
import { StorageError } from '../errors.ts';
import { MemorySource, type ByteSource } from '../gguf/source.ts';

/** A complete file in the cache. */
export interface CachedModelFile {
  url: string;
  bytes: number;
  /** The ETag the server sent with it (without a weak W/ marker); undefined when it sent none. */
  etag?: string;
  /** When it was written (ms since the epoch). */
  cachedAt: number;
}

export interface ModelCache {
  /** Where the files live, for messages ("Cache Storage 'chunklm-models'", a folder path). */
  readonly description: string;
  /** Every complete entry. */
  list(): Promise<CachedModelFile[]>;
  /** The entry for `url` and its bytes; undefined when there is none (a damaged one is removed). */
  open(url: string): Promise<{ entry: CachedModelFile; source: ByteSource } | undefined>;
  /**
   * Stores `body`, which must yield exactly `file.bytes` bytes, as the entry for `file.url`. Any
   * entry for the URL is gone once the write starts; the new one exists only if the write resolves.
   * An error from `body` is rethrown as it is.
   */
  write(file: Omit<CachedModelFile, 'cachedAt'>, body: AsyncIterable<Uint8Array>): Promise<CachedModelFile>;
  /** Removes the entry; false when there was none. */
  remove(url: string): Promise<boolean>;
}

/** Whether a cached entry is the file the server has now (same size, same ETag or none on either side). */
export function entryMatches(entry: Pick<CachedModelFile, 'bytes' | 'etag'>, now: { size: number; etag?: string }): boolean {
  return entry.bytes === now.size && (entry.etag ?? '') === (now.etag ?? '');
}

/** Throws StorageError 'bad-size' unless the body gave exactly the bytes announced. */
export function checkWrittenBytes(file: Pick<CachedModelFile, 'url' | 'bytes'>, written: number): void {
  if (written !== file.bytes) {
    throw new StorageError('bad-size', `${file.url}: the download gave ${written} bytes but the file has ${file.bytes}; nothing was cached`, {
      url: file.url,
      written,
      bytes: file.bytes,
    });
  }
}

/** Files in memory, for tests and hosts without storage; `quotaBytes` makes writes beyond it fail like a full disk. */
export class MemoryModelCache implements ModelCache {
  readonly description = 'memory';
  private readonly entries = new Map<string, { entry: CachedModelFile; bytes: Uint8Array }>();

  constructor(private readonly opts: { quotaBytes?: number; now?: () => number } = {}) {}

  async list(): Promise<CachedModelFile[]> {
    return [...this.entries.values()].map((e) => ({ ...e.entry }));
  }

  async open(url: string): Promise<{ entry: CachedModelFile; source: ByteSource } | undefined> {
    const e = this.entries.get(url);
    return e ? { entry: { ...e.entry }, source: new MemorySource(e.bytes, url) } : undefined;
  }

  async write(file: Omit<CachedModelFile, 'cachedAt'>, body: AsyncIterable<Uint8Array>): Promise<CachedModelFile> {
    this.entries.delete(file.url);
    const used = [...this.entries.values()].reduce((s, e) => s + e.bytes.byteLength, 0);
    const quota = this.opts.quotaBytes ?? Infinity;
    const chunks: Uint8Array[] = [];
    let written = 0;
    for await (const chunk of body) {
      written += chunk.byteLength;
      if (used + written > quota) {
        throw new StorageError('quota-exceeded', `the model cache (${this.description}) is full: ${file.url} needs ${file.bytes} bytes, ${quota - used} are free`, {
          url: file.url,
        });
      }
      chunks.push(chunk.slice());
    }
    checkWrittenBytes(file, written);
    const bytes = new Uint8Array(written);
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.byteLength;
    }
    const entry = { url: file.url, bytes: file.bytes, ...(file.etag !== undefined ? { etag: file.etag } : {}), cachedAt: (this.opts.now ?? Date.now)() };
    this.entries.set(file.url, { entry, bytes });
    return { ...entry };
  }

  async remove(url: string): Promise<boolean> {
    return this.entries.delete(url);
  }
}
