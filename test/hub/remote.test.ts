// Models from URLs against a local server: resumed ranges after dropped connections, bounded
// retries, cancellation, the model cache (hits with no request for the weights, ETag changes, quota
// refusals, offline use), split models, the fit check before any download, and speed/time left.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LoadProgress } from '../../src/engine/types.ts';
import { AbortedError, GGUFError, GPUError, StorageError } from '../../src/errors.ts';
import { MemorySource, parseGGUF, readTensorBytes, splitGGUFBytes, streamRange, type RetryPolicy } from '../../src/gguf/index.ts';
import { MemoryModelCache, type ModelCache } from '../../src/hub/model-cache.ts';
import { withRate } from '../../src/hub/rate.ts';
import { openRemoteModel, type RemoteModel } from '../../src/hub/remote.ts';
import { makeSyntheticModel, SYNTHETIC_PRESETS } from '../../src/model/synthetic.ts';
import { FolderModelCache, defaultModelCacheDir } from '../../src/node/model-cache.ts';
import { FileServer } from '../helpers/file-server.ts';

const FAST: RetryPolicy = { retries: 3, initialDelayMs: 1, maxDelayMs: 4 };

const payload = Uint8Array.from({ length: 3 << 20 }, (_, i) => (i * 2654435761) >>> 24);
const model = makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-gqa4-h64'], seed: 7 });
let parts: Uint8Array[];

let server: FileServer;
const dirs: string[] = [];
beforeAll(async () => {
  server = await FileServer.start();
  parts = await splitGGUFBytes(model, 3);
});
afterAll(async () => {
  await server.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
afterEach(() => {
  server.faults = {};
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'chunklm-hub-'));
  dirs.push(d);
  return d;
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const c of it) chunks.push(c.slice());
  return Buffer.concat(chunks);
}

async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** Every tensor of the opened model reads back as in the single-file model. */
async function expectSameTensors(opened: RemoteModel): Promise<void> {
  const single = await parseGGUF(new MemorySource(model));
  expect(opened.file.tensors.map((t) => t.name)).toEqual(single.tensors.map((t) => t.name));
  for (const t of single.tensors) {
    const got = await readTensorBytes(opened.source, opened.file.tensorIndex.get(t.name)!);
    expect(Buffer.compare(got, model.subarray(t.offset, t.offset + t.byteLength)), t.name).toBe(0);
  }
  await opened.close();
}

/** Serves the split model under `dir` (a folder like a Hub repo's resolve/main); returns the first part's URL. */
function serveSplit(dir: string, etag = 'v1'): string {
  parts.forEach((p, i) => server.put(`${dir}/tiny-0000${i + 1}-of-00003.gguf`, p, `${etag}-${i}`));
  return server.url(`${dir}/tiny-00001-of-00003.gguf`);
}

describe('streamRange', () => {
  it('resumes from the byte it reached after dropped connections', async () => {
    const url = server.put('/resume.bin', payload, 'r1');
    server.faults = { drop: { afterBytes: 700_000, times: 3 } };
    const retries: number[] = [];
    const got = await collect(streamRange(url, 100, payload.length, { fetch, retry: FAST, etag: '"r1"', onRetry: (r) => retries.push(r.offset) }));
    expect(Buffer.compare(got, payload.subarray(100))).toBe(0);
    expect(retries).toEqual([100 + 700_000, 100 + 1_400_000, 100 + 2_100_000]);
    expect(server.gets('/resume.bin').map((r) => r.range)).toEqual([
      `bytes=100-${payload.length - 1}`,
      `bytes=700100-${payload.length - 1}`,
      `bytes=1400100-${payload.length - 1}`,
      `bytes=2100100-${payload.length - 1}`,
    ]);
  });

  it('gives up after the bounded retries with a typed error, and does not retry a 404', async () => {
    const url = server.put('/flaky.bin', payload);
    server.faults = { drop: { afterBytes: 0, times: 100 } };
    const before = server.gets('/flaky.bin').length;
    const err = await errorOf(collect(streamRange(url, 0, payload.length, { fetch, retry: FAST })));
    expect(err).toBeInstanceOf(GGUFError);
    expect((err as GGUFError).code).toBe('fetch-failed');
    expect(err.message).toContain('after 3 retries');
    expect(server.gets('/flaky.bin').length - before).toBe(4);

    server.faults = { status: { code: 503, times: 2 } };
    const ok = await collect(streamRange(url, 0, 1000, { fetch, retry: FAST }));
    expect(Buffer.compare(ok, payload.subarray(0, 1000))).toBe(0);

    server.faults = {};
    const missing = await errorOf(collect(streamRange(server.url('/nothing.bin'), 0, 10, { fetch, retry: FAST })));
    expect((missing as GGUFError).code).toBe('http-error');
    expect(server.gets('/nothing.bin')).toHaveLength(1);
  });

  it('refuses to splice two versions of a file when the ETag changes between attempts', async () => {
    const url = server.put('/changing.bin', payload, 'a');
    server.faults = { drop: { afterBytes: 1000, times: 1 } };
    const stream = streamRange(url, 0, payload.length, { fetch, retry: FAST, etag: '"a"', onRetry: () => server.put('/changing.bin', payload, 'b') });
    const err = await errorOf(collect(stream));
    expect((err as GGUFError).code).toBe('source-changed');
  });

  it('stops at once when cancelled', async () => {
    const url = server.put('/slow.bin', payload);
    server.faults = { slow: { chunkBytes: 16_384, delayMs: 20 } };
    const ctrl = new AbortController();
    let seen = 0;
    const err = await errorOf(
      (async () => {
        for await (const c of streamRange(url, 0, payload.length, { fetch, signal: ctrl.signal, retry: FAST })) {
          seen += c.byteLength;
          if (seen > 50_000) ctrl.abort();
        }
      })(),
    );
    expect(err).toBeInstanceOf(AbortedError);
    expect(seen).toBeLessThan(payload.length);
  });
});

describe('openRemoteModel', () => {
  it('downloads a split model into the cache, then loads it with no request for its bytes', async () => {
    const url = serveSplit('/org/tiny/resolve/main');
    const cache = new MemoryModelCache();
    const events: LoadProgress[] = [];
    const first = await openRemoteModel(url, { cache, retry: FAST, onProgress: (p) => events.push(p) });
    expect(first.files.map((f) => f.source)).toEqual(['download', 'download', 'download']);
    expect(first.files.map((f) => f.bytes)).toEqual(parts.map((p) => p.byteLength));
    expect(first.warnings).toEqual([]);
    await expectSameTensors(first);
    const downloads = events.filter((e) => e.phase === 'download');
    const total = parts.reduce((s, p) => s + p.byteLength, 0);
    expect(downloads.at(-1)).toMatchObject({ loadedBytes: total, totalBytes: total });
    expect(new Set(downloads.map((e) => e.file)).size).toBe(3);
    expect((await cache.list()).map((e) => [e.url, e.bytes, e.etag])).toEqual(
      parts.map((p, i) => [url.replace('00001-of', `0000${i + 1}-of`), p.byteLength, `"v1-${i}"`]),
    );

    const gets = server.gets('/org/tiny/').length;
    const second = await openRemoteModel(url, { cache, retry: FAST });
    expect(second.files.map((f) => f.source)).toEqual(['cache', 'cache', 'cache']);
    await expectSameTensors(second);
    expect(server.gets('/org/tiny/').length, 'GET requests on the second load').toBe(gets);
  });

  it('downloads again only the part whose ETag changed', async () => {
    const url = serveSplit('/org/etag/resolve/main');
    const cache = new MemoryModelCache();
    await openRemoteModel(url, { cache, retry: FAST });
    server.files.get('/org/etag/resolve/main/tiny-00002-of-00003.gguf')!.etag = 'v2-1';
    const gets = server.gets('/org/etag/').length;
    const again = await openRemoteModel(url, { cache, retry: FAST });
    expect(again.files.map((f) => f.source)).toEqual(['cache', 'download', 'cache']);
    expect(server.gets('/org/etag/').slice(gets).every((r) => r.path.endsWith('00002-of-00003.gguf'))).toBe(true);
    expect((await cache.list()).find((e) => e.url.includes('00002'))?.etag).toBe('"v2-1"');
    await expectSameTensors(again);
  });

  it('checks the fit after the headers and before any weight is downloaded', async () => {
    // Large enough (about 15 MiB in 3 parts) that the header reads (the first MiB of each part) are a small share.
    const big = makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-gqa8-h64'], nLayers: 6, ffnDim: 2048, weightType: 1, seed: 3 });
    const bigParts = await splitGGUFBytes(big, 3);
    bigParts.forEach((p, i) => server.put(`/org/fit/resolve/main/big-0000${i + 1}-of-00003.gguf`, p));
    const cache = new MemoryModelCache();
    const refusal = new GPUError('does-not-fit', 'too large for this test');
    let tensors = 0;
    const err = await errorOf(
      openRemoteModel(server.url('/org/fit/resolve/main/big-00002-of-00003.gguf'), {
        cache,
        retry: FAST,
        checkFit: (file) => {
          tensors = file.tensors.length;
          throw refusal;
        },
      }),
    );
    expect(err).toBe(refusal);
    expect(tensors, 'the fit check saw the tensors of all three parts').toBe((await parseGGUF(new MemorySource(big))).tensors.length);
    expect(await cache.list()).toEqual([]);
    const served = server.gets('/org/fit/').reduce((s, r) => s + r.bytes, 0);
    expect(served, `bytes served for a model of ${big.length}`).toBeLessThanOrEqual(3 << 20);
    expect(big.length).toBeGreaterThan(12 << 20);
  });

  it('continues uncached with a warning when the cache refuses a write for lack of space', async () => {
    const url = serveSplit('/org/quota/resolve/main');
    const cache = new MemoryModelCache({ quotaBytes: parts[0].byteLength + 10 });
    const opened = await openRemoteModel(url, { cache, retry: FAST });
    expect(opened.files.map((f) => f.source)).toEqual(['download', 'network', 'network']);
    expect(opened.warnings).toHaveLength(1);
    expect(opened.warnings[0]).toMatch(/was not cached \(the model cache \(memory\) is full/);
    await expectSameTensors(opened);
    expect((await cache.list()).map((e) => e.url)).toEqual([url]);
  });

  it('a cache that cannot be opened never fails the load', async () => {
    const url = serveSplit('/org/broken/resolve/main');
    const broken: ModelCache = {
      description: 'broken',
      list: async () => [],
      open: async () => {
        throw new StorageError('store-unavailable', 'no storage here');
      },
      write: async () => {
        throw new StorageError('store-unavailable', 'no storage here');
      },
      remove: async () => false,
    };
    const opened = await openRemoteModel(url, { cache: broken, retry: FAST });
    expect(opened.files.map((f) => f.source)).toEqual(['network', 'network', 'network']);
    expect(opened.warnings.join(' ')).toContain('no storage here');
    await expectSameTensors(opened);
  });

  it('uses complete cache entries when the server cannot be reached', async () => {
    const other = await FileServer.start();
    const url = other.put('/solo/tiny.gguf', model, 'solo');
    const cache = new MemoryModelCache();
    await openRemoteModel(url, { cache, retry: FAST });
    await other.close();
    const offline = await openRemoteModel(url, { cache, retry: FAST });
    expect(offline.files.map((f) => f.source)).toEqual(['cache']);
    expect(offline.warnings[0]).toMatch(/could not be reached .* using the copy cached/);
    await expectSameTensors(offline);
  });

  it('resumes a download whose connection drops, and reports the bytes', async () => {
    const url = server.put('/org/drop/resolve/main/tiny.gguf', model, 'd');
    const cache = new MemoryModelCache();
    const gets = server.gets('/org/drop/').length;
    const opened = await openRemoteModel(url, {
      cache,
      retry: FAST,
      onProgress: (p) => {
        // The download's connections drop twice, once it starts.
        if (p.phase === 'download' && p.loadedBytes === 0) server.faults = { drop: { afterBytes: 300_000, times: 2 } };
      },
    });
    expect(opened.files[0].source).toBe('download');
    await expectSameTensors(opened);
    const ranges = server.gets('/org/drop/').slice(gets).map((r) => r.range);
    // The header's range, then the download and two resumptions from the bytes reached.
    expect(ranges.slice(1)).toEqual([`bytes=0-${model.length - 1}`, `bytes=300000-${model.length - 1}`, `bytes=600000-${model.length - 1}`]);
  });
});

describe('cancelling a download', () => {
  for (const kind of ['memory', 'folder'] as const) {
    it(`leaves nothing in the ${kind} cache`, async () => {
      const dir = kind === 'folder' ? tempDir() : '';
      const cache = kind === 'folder' ? new FolderModelCache(dir) : new MemoryModelCache();
      const url = server.put(`/org/cancel-${kind}/resolve/main/tiny.gguf`, model, 'c');
      const ctrl = new AbortController();
      server.faults = { slow: { chunkBytes: 4096, delayMs: 5 } };
      const err = await errorOf(
        openRemoteModel(url, {
          cache,
          retry: FAST,
          signal: ctrl.signal,
          onProgress: (p) => {
            if (p.phase === 'download' && p.loadedBytes > 20_000) ctrl.abort();
          },
        }),
      );
      expect(err).toBeInstanceOf(AbortedError);
      expect(await cache.list()).toEqual([]);
      expect(await cache.open(url)).toBeUndefined();
      if (kind === 'folder') expect(readdirSync(dir)).toEqual([]);
    });
  }
});

describe('FolderModelCache', () => {
  it('lists, removes, and invalidates an entry whose ETag changed', async () => {
    const dir = tempDir();
    const cache = new FolderModelCache(dir);
    const url = server.put('/org/folder/resolve/main/tiny.gguf', model, 'f1');
    const first = await openRemoteModel(url, { cache, retry: FAST });
    expect(first.files[0].source).toBe('download');
    await expectSameTensors(first);
    const [entry] = await cache.list();
    expect(entry).toMatchObject({ url, bytes: model.length, etag: '"f1"' });
    expect(entry.cachedAt).toBeGreaterThan(0);

    const second = await openRemoteModel(url, { cache, retry: FAST });
    expect(second.files[0].source).toBe('cache');

    server.files.get('/org/folder/resolve/main/tiny.gguf')!.etag = 'f2';
    const third = await openRemoteModel(url, { cache, retry: FAST });
    expect(third.files[0].source).toBe('download');
    expect((await cache.list()).map((e) => e.etag)).toEqual(['"f2"']);

    expect(await cache.remove(url)).toBe(true);
    expect(await cache.remove(url)).toBe(false);
    expect(await cache.list()).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('never reads what a killed download left as an entry, and sweeps it', async () => {
    const dir = tempDir();
    const cache = new FolderModelCache(dir);
    // A part of a process that is gone, and a renamed file whose .json was never written.
    writeFileSync(join(dir, `${'a'.repeat(40)}.999999999.0.part`), new Uint8Array(100));
    writeFileSync(join(dir, `${'b'.repeat(40)}.gguf`), model);
    expect(await cache.list()).toEqual([]);
    expect(readdirSync(dir)).toEqual([`${'b'.repeat(40)}.gguf`]);
    // A body that fails half-way leaves no entry and no part.
    const failing = async function* () {
      yield model.subarray(0, 1000);
      throw new GGUFError('fetch-failed', 'the network went away');
    };
    const err = await errorOf(cache.write({ url: 'http://x/m.gguf', bytes: model.length }, failing()));
    expect((err as GGUFError).code).toBe('fetch-failed');
    // A body shorter than announced is not an entry either.
    const short = async function* () {
      yield model.subarray(0, 1000);
    };
    expect(((await errorOf(cache.write({ url: 'http://x/m.gguf', bytes: model.length }, short()))) as StorageError).code).toBe('bad-size');
    expect(await cache.open('http://x/m.gguf')).toBeUndefined();
    expect(readdirSync(dir).filter((n) => n.endsWith('.part'))).toEqual([]);
  });

  it('lives under the user cache directory by default', () => {
    expect(defaultModelCacheDir({ XDG_CACHE_HOME: '/xdg' }, 'linux', '/home/u')).toBe('/xdg/chunklm/models');
    expect(defaultModelCacheDir({}, 'linux', '/home/u')).toBe('/home/u/.cache/chunklm/models');
    expect(defaultModelCacheDir({}, 'darwin', '/Users/u')).toBe('/Users/u/Library/Caches/chunklm/models');
  });
});

describe('withRate', () => {
  it('adds bytes per second and seconds left from the last seconds of a phase', () => {
    let t = 0;
    const seen: LoadProgress[] = [];
    const report = withRate((p) => seen.push(p), () => t);
    const mb = 1 << 20;
    report({ phase: 'header', loadedBytes: 0, totalBytes: 10 * mb });
    report({ phase: 'download', loadedBytes: 0, totalBytes: 10 * mb });
    t = 100;
    report({ phase: 'download', loadedBytes: mb / 10, totalBytes: 10 * mb });
    t = 1000;
    report({ phase: 'download', loadedBytes: mb, totalBytes: 10 * mb });
    t = 2000;
    report({ phase: 'download', loadedBytes: 2 * mb, totalBytes: 10 * mb });
    expect(seen[0].bytesPerSecond).toBeUndefined();
    expect(seen[2].bytesPerSecond, 'too soon to tell').toBeUndefined();
    expect(seen[3]).toMatchObject({ bytesPerSecond: mb, secondsLeft: 9 });
    expect(seen[4]).toMatchObject({ bytesPerSecond: mb, secondsLeft: 8 });
    // A stall shows within the window: 8 s without bytes.
    t = 10_000;
    report({ phase: 'download', loadedBytes: 2 * mb, totalBytes: 10 * mb });
    expect(seen[5].bytesPerSecond).toBe(0);
    expect(seen[5].secondsLeft).toBeUndefined();
    // A new phase starts its own measure.
    report({ phase: 'weights', loadedBytes: 0, totalBytes: 10 * mb });
    expect(seen[6].bytesPerSecond).toBeUndefined();
  });
});
