// A model from a URL (a Hugging Face `resolve/main/<file>.gguf` link or any HTTP server with Range
// support), through the model cache:
//   1. the URL names one file, or a part of a split model (`-00001-of-0000N.gguf`: every part is
//      fetched); each file's size and ETag are asked for (HEAD);
//   2. files whose cache entry has that size and ETag are read from the cache, with no request for
//      their bytes; a stale entry is removed;
//   3. otherwise the headers are read with Range requests and the model's GPU footprint checked
//      (`checkFit`) before any weight is downloaded;
//   4. the missing files are downloaded into the cache as they stream (resumed after a dropped
//      connection), and the model is read from there.
// The cache never fails a load: when it cannot be opened or refuses a write (quota), the file is
// read over the network instead and the load says so in a warning. Without a network, complete
// cache entries are used as they are.
import { AbortedError, ChunklmError, GGUFError, throwIfAborted } from '../errors.ts';
import { probeFile, streamRange, type RemoteFileInfo, type RetryPolicy } from '../gguf/http.ts';
import type { GGUFFile } from '../gguf/reader.ts';
import { UrlSource, type ByteSource } from '../gguf/source.ts';
import { ConcatSource, openGGUF, splitPartNames, type OpenedGGUF } from '../gguf/split.ts';
import type { LoadProgress, ModelFileInfo } from '../engine/types.ts';
import { entryMatches, type ModelCache } from './model-cache.ts';

export interface RemoteModelOptions {
  /** Where downloaded files are kept; none: every load reads the weights over the network. */
  cache?: ModelCache;
  fetch?: typeof fetch;
  signal?: AbortSignal;
  retry?: RetryPolicy;
  /** 'header' and 'download' events (the engine reports 'weights' later). */
  onProgress?: (p: LoadProgress) => void;
  /** Throws when the model cannot run here; called once the headers are read, before any weight is downloaded. */
  checkFit?: (file: GGUFFile) => unknown;
}

export interface RemoteModel extends OpenedGGUF {
  /** Each file and where its bytes come from. */
  files: ModelFileInfo[];
  /** What went wrong without failing the load. */
  warnings: string[];
  /** Releases the files held open (a folder cache's file handles) once the weights are loaded. */
  close(): Promise<void>;
}

interface Part {
  url: string;
  /** What the server says now; undefined when it could not be reached. */
  remote?: RemoteFileInfo;
  /** The bytes the model is read from. */
  source?: ByteSource;
  from?: ModelFileInfo['source'];
}

/** Opens the model at `url` (see the file header); the weights are then read from `source`. */
export async function openRemoteModel(url: string, opts: RemoteModelOptions = {}): Promise<RemoteModel> {
  const { signal } = opts;
  const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const warnings: string[] = [];
  let cache = opts.cache;
  /** Runs a cache call; a cache failure becomes a warning and the cache is not used again in this load. */
  const cached = async <T>(f: (c: ModelCache) => Promise<T>): Promise<T | undefined> => {
    const c = cache;
    if (!c) return undefined;
    try {
      return await f(c);
    } catch (err) {
      if (err instanceof AbortedError) throw err;
      if (cache) warnings.push(`the model cache (${c.description}) failed, so the model is read over the network: ${(err as Error)?.message ?? String(err)}`);
      cache = undefined;
      return undefined;
    }
  };

  const parts: Part[] = splitPartNames(url).map((u) => ({ url: u }));
  try {
    // All settle before a failure is thrown, so that every cache file opened is closed.
    const probes = await Promise.allSettled(
      parts.map(async (p) => {
        const entry = await cached((c) => c.open(p.url));
        try {
          // With a cached copy, a server that cannot be reached is not waited for long.
          p.remote = await probeFile(p.url, { fetch: fetchFn, signal, retry: entry ? { ...opts.retry, retries: 1 } : opts.retry });
        } catch (err) {
          if (entry && err instanceof GGUFError && err.code === 'fetch-failed') {
            warnings.push(`${p.url} could not be reached (${err.message}); using the copy cached ${new Date(entry.entry.cachedAt).toISOString()}`);
            p.source = entry.source;
            p.from = 'cache';
            return;
          }
          throw err;
        }
        if (!entry) return;
        if (entryMatches(entry.entry, p.remote)) {
          p.source = entry.source;
          p.from = 'cache';
        } else {
          // The file changed on the server (another ETag or size): the old copy goes.
          await entry.source.close?.();
          await cached((c) => c.remove(p.url));
        }
      }),
    );
    for (const r of probes) if (r.status === 'rejected') throw r.reason;
    throwIfAborted(signal);

    const network = (p: Part): ByteSource => UrlSource.fromInfo(p.url, p.remote as RemoteFileInfo, { fetch: fetchFn, retry: opts.retry });
    opts.onProgress?.({ phase: 'header', loadedBytes: 0, totalBytes: parts.reduce((s, p) => s + (p.source?.size ?? p.remote?.size ?? 0), 0) });
    const byHeaderSource = new Map<ByteSource, Part>();
    for (const p of parts) byHeaderSource.set(p.source ?? network(p), p);
    const headers = await openGGUF([...byHeaderSource.keys()], { signal });
    // openGGUF puts the parts in split.no order; the model is read in that order.
    const ordered = headers.parts.map((s) => byHeaderSource.get(s) as Part);
    await opts.checkFit?.(headers.file);

    const missing = parts.filter((p) => !p.source);
    const total = missing.reduce((s, p) => s + (p.remote as RemoteFileInfo).size, 0);
    let done = 0;
    for (const p of missing) {
      const remote = p.remote as RemoteFileInfo;
      if (!cache) {
        p.source = network(p);
        p.from = 'network';
        continue;
      }
      let downloadError: unknown;
      const base = done;
      opts.onProgress?.({ phase: 'download', loadedBytes: done, totalBytes: total, file: p.url });
      const body = async function* (): AsyncGenerator<Uint8Array, void, undefined> {
        try {
          for await (const chunk of streamRange(p.url, 0, remote.size, { fetch: fetchFn, signal, retry: opts.retry, etag: remote.etag })) {
            done += chunk.byteLength;
            opts.onProgress?.({ phase: 'download', loadedBytes: done, totalBytes: total, file: p.url });
            yield chunk;
          }
        } catch (err) {
          downloadError = err;
          throw err;
        }
      };
      const file = { url: p.url, bytes: remote.size, ...(remote.etag !== undefined ? { etag: remote.etag } : {}) };
      try {
        await cache.write(file, body());
      } catch (err) {
        // The download's own failure (network, cancel) fails the load; the cache's becomes a warning.
        if (downloadError !== undefined) throw downloadError;
        if (signal?.aborted) throw new AbortedError();
        if (err instanceof ChunklmError || err instanceof Error) {
          warnings.push(`${p.url} was not cached (${err.message}); it is read over the network instead`);
        }
        cache = undefined;
        done = base + remote.size;
        p.source = network(p);
        p.from = 'network';
        continue;
      }
      const written = await cached((c) => c.open(p.url));
      if (written && written.entry.bytes === remote.size) {
        p.source = written.source;
        p.from = 'download';
      } else {
        warnings.push(`${p.url} was cached but could not be read back; it is read over the network instead`);
        p.source = network(p);
        p.from = 'network';
      }
    }
    throwIfAborted(signal);

    // The parts' sizes are the ones the headers were read with, so the tensor offsets still hold.
    const sources = ordered.map((p) => p.source as ByteSource);
    const source = sources.length === 1 ? sources[0] : new ConcatSource(sources, headers.source.name);
    const files = parts.map((p): ModelFileInfo => {
      const etag = p.remote?.etag;
      return { url: p.url, bytes: (p.source as ByteSource).size, ...(etag !== undefined ? { etag } : {}), source: p.from as ModelFileInfo['source'] };
    });
    const close = async (): Promise<void> => {
      await Promise.all(sources.map((s) => s.close?.()));
    };
    return { file: headers.file, source, parts: sources, files, warnings, close };
  } catch (err) {
    // Cache files opened for a load that failed are not left open.
    await Promise.all(parts.map((p) => p.source?.close?.().catch(() => undefined)));
    throw err;
  }
}
