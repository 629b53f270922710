// Models from a Hugging Face-style URL in Chromium: a local static server with Range requests,
// ETags and CORS (another origin than the page) serves each model of HUB_MODELS; the page loads it
// by URL (downloaded into the browser's model cache) and generates; after a reload the same load
// asks the server for no byte of the weights; an ETag change downloads that file again; remove
// empties the cache. Then: a cancelled download, a browser SIGKILLed mid-download, and a storage
// quota too small for the model leave no cache entry, and the last one still loads (uncached,
// with a warning); and a 384 MiB write streams through Cache Storage in bounded memory.
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { chromiumPath } from '../scripts/setup.mjs';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { GenerationResult, LoadOptions, ModelInfo } from '../src/engine/types.ts';
import type { CachedModelFile } from '../src/hub/model-cache.ts';
import { MODEL_CACHE_NAME } from '../src/hub/cache-storage.ts';
import { splitGGUFBytes } from '../src/gguf/split.ts';
import { GGMLType } from '../src/gguf/quant.ts';
import { makeSyntheticModel, SYNTHETIC_PRESETS } from '../src/model/synthetic.ts';
import { FileServer } from '../test/helpers/file-server.ts';
import { missingShared, sharedFile } from '../test/helpers/shared.ts';
import { readFileSync } from 'node:fs';
import { chromiumArgs, launchChromium, openPage, until } from './browser.ts';
import { explain, startChromium, tempDir, type OwnChromium } from './profile.ts';

const baseURL = inject('baseURL');
const stories = sharedFile('models/stories260K.gguf');

/** What a model's test checks its greedy answer against. */
type Reference =
  /** The start of the answer's text. */
  | { textStartsWith: string }
  /** The same model as one file at this URL, loaded without the cache: the answers' tokens must agree. */
  | { sameAs: string };

interface ServedModel {
  /** The URL given to load (for a split model, any part's). */
  url: string;
  /** The server paths of its files, in part order. */
  paths: string[];
  reference: Reference;
}

interface HubModel {
  name: string;
  /** Why the model cannot be served here (its data is absent); the test is skipped with it. */
  missing?: string;
  prompt: string;
  maxTokens: number;
  serve(server: FileServer): Promise<ServedModel>;
}

/** A synthetic model of a preset written as one file and as `parts` split files (the project's writer), served side by side. */
async function serveSynthetic(server: FileServer, repo: string, file: string, bytes: Uint8Array, parts: number, urlPart = 1): Promise<ServedModel> {
  const dir = `/${repo}/resolve/main`;
  const split = await splitGGUFBytes(bytes, parts);
  const pad = (n: number) => String(n).padStart(5, '0');
  const paths = split.map((_, i) => `${dir}/${file}-${pad(i + 1)}-of-${pad(parts)}.gguf`);
  paths.forEach((p, i) => server.put(p, split[i], `${file}-${i}-v1`));
  const whole = server.put(`${dir}/${file}.gguf`, bytes, `${file}-whole`);
  return { url: server.url(paths[urlPart - 1]), paths, reference: { sameAs: whole } };
}

/**
 * The models every scenario runs on. A model joins by adding an entry; the Qwen2.5-0.5B-shaped
 * Q4_K_M synthetic model (SYNTHETIC_PRESETS['qwen2.5-0.5b'] with a Q4_K_M recipe, split in parts
 * like the Hub's larger files) belongs here once the K-quant kernels run it.
 */
const HUB_MODELS: HubModel[] = [
  {
    name: 'stories260K (one file)',
    missing: stories ? undefined : missingShared('models/stories260K.gguf'),
    prompt: 'Once upon a time',
    maxTokens: 8,
    serve: async (server) => {
      const path = '/karpathy/tinyllamas/resolve/main/stories260K.gguf';
      server.put(path, new Uint8Array(readFileSync(stories as string)), 'stories260K-v1');
      return { url: server.url(path), paths: [path], reference: { textStartsWith: ', there was a little girl' } };
    },
  },
  {
    name: 'synthetic qwen2 (GQA 7, biases, tied head), Q8_0 in 3 split files',
    prompt: 'the quick brown fox',
    maxTokens: 8,
    serve: (server) =>
      serveSynthetic(server, 'chunklm/tiny-qwen2', 'tiny-qwen2-Q8_0', makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-qwen2-gqa7-h64'], weightType: GGMLType.Q8_0, seed: 21 }), 3, 2),
  },
];

// ---- page-side calls on the demo's live client ----

function load(page: Page, url: string, opts: Omit<LoadOptions, 'signal' | 'onProgress'> = {}): Promise<ModelInfo> {
  return page.evaluate(async ({ url, opts }) => (await window.chunklmReady!).load(url, opts), { url, opts });
}

function greedy(page: Page, prompt: string, maxTokens: number): Promise<GenerationResult> {
  return page.evaluate(async ({ prompt, maxTokens }) => (await window.chunklmReady!).generate(prompt, { maxTokens, temperature: 0 }).result, { prompt, maxTokens });
}

function listModels(page: Page): Promise<CachedModelFile[]> {
  return page.evaluate(async () => (await window.chunklmReady!).models.list());
}

/** The URLs in the origin's Cache Storage, read by the page itself (the Worker shares the origin). */
function cacheKeys(page: Page): Promise<string[]> {
  return page.evaluate(async (name) => (await (await caches.open(name)).keys()).map((r) => r.url), MODEL_CACHE_NAME);
}

async function reload(page: Page): Promise<void> {
  await page.reload();
  await page.waitForFunction(() => window.chunklmReady !== undefined);
  await page.evaluate(async () => void (await window.chunklmReady));
}

const sources = (info: ModelInfo) => info.files?.map((f) => f.source);

describe('models from a URL, cached in the browser', () => {
  let server: FileServer;
  let browser: Browser;
  let context: BrowserContext | undefined;
  beforeAll(async () => {
    server = await FileServer.start();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });
  afterEach(async () => {
    server.faults = {};
    await context?.close();
    context = undefined;
  });

  for (const m of HUB_MODELS) {
    it.skipIf(m.missing !== undefined)(`${m.name}${m.missing ? ` (${m.missing})` : ''}: downloaded once, then loaded from the cache with no request for its bytes`, async () => {
      const served = await m.serve(server);
      const urls = served.paths.map((p) => server.url(p));
      const prefix = served.paths[0].slice(0, served.paths[0].lastIndexOf('/') + 1);
      context = await browser.newContext();
      const { page, problems } = await openPage(context, baseURL);

      const first = await load(page, served.url);
      expect(sources(first), `first load${explain(problems)}`).toEqual(urls.map(() => 'download'));
      expect(first.files?.map((f) => f.url)).toEqual(urls);
      const answer = await greedy(page, m.prompt, m.maxTokens);
      expect(answer.tokens.length, explain(problems)).toBe(m.maxTokens);
      if ('textStartsWith' in served.reference) {
        expect(answer.text.startsWith(served.reference.textStartsWith), `answer '${answer.text}'`).toBe(true);
      }
      const listed = await listModels(page);
      for (const [i, url] of urls.entries()) {
        const entry = listed.find((e) => e.url === url);
        expect(entry, `models.list() has ${url}: ${JSON.stringify(listed)}`).toBeDefined();
        expect(entry?.bytes).toBe(server.files.get(served.paths[i])?.bytes.byteLength);
        expect(entry?.etag).toBe(`"${server.files.get(served.paths[i])?.etag}"`);
        expect(entry?.cachedAt).toBeGreaterThan(0);
      }

      // A second visit: the page reloaded (a new Worker), the same load, no GET for the model's files.
      const gets = server.gets(prefix).length;
      await reload(page);
      const second = await load(page, served.url);
      expect(sources(second), `second load${explain(problems)}`).toEqual(urls.map(() => 'cache'));
      expect(
        server.gets(prefix).slice(gets).map((r) => `${r.path} ${r.range ?? ''}`),
        'requests for the weights on the second visit',
      ).toEqual([]);
      const again = await greedy(page, m.prompt, m.maxTokens);
      expect(again.tokens, 'the cached model answers as the downloaded one did').toEqual(answer.tokens);

      if ('sameAs' in served.reference) {
        const whole = await load(page, served.reference.sameAs, { cache: false });
        expect(sources(whole)).toEqual(['network']);
        const reference = await greedy(page, m.prompt, m.maxTokens);
        expect(answer.tokens, 'the split files answer as the single file').toEqual(reference.tokens);
      }

      // The first file changes on the server (a new ETag): only it is downloaded again.
      server.files.get(served.paths[0])!.etag = 'changed';
      await reload(page);
      const third = await load(page, served.url);
      expect(sources(third), explain(problems)).toEqual(urls.map((_, i) => (i === 0 ? 'download' : 'cache')));
      expect((await listModels(page)).find((e) => e.url === urls[0])?.etag).toBe('"changed"');

      // remove(url) takes every part of the model out of the cache.
      expect(await page.evaluate(async (url) => (await window.chunklmReady!).models.remove(url), served.url)).toBe(true);
      const left = (await listModels(page)).map((e) => e.url);
      for (const url of urls) expect(left).not.toContain(url);
      expect(problems, 'console errors').toEqual([]);
    }, 600_000);
  }

  it('a cancelled download leaves nothing in the cache', async () => {
    const bytes = makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-qwen2-gqa7-h64'], weightType: GGMLType.Q8_0, seed: 22 });
    const url = server.put('/chunklm/cancel/resolve/main/model.gguf', bytes, 'cancel-v1');
    context = await browser.newContext();
    const { page, problems } = await openPage(context, baseURL);
    server.faults = { slow: { chunkBytes: 32 * 1024, delayMs: 10 } };
    const outcome = await page.evaluate(async (url) => {
      const client = await window.chunklmReady!;
      const ctrl = new AbortController();
      let downloaded = 0;
      try {
        await client.load(url, {
          signal: ctrl.signal,
          onProgress: (p) => {
            if (p.phase !== 'download') return;
            downloaded = p.loadedBytes;
            if (p.loadedBytes > 512 * 1024) ctrl.abort();
          },
        });
        return { result: 'loaded', downloaded };
      } catch (err) {
        return { result: (err as Error).name, downloaded };
      }
    }, url);
    expect(outcome.result, explain(problems)).toBe('AbortedError');
    expect(outcome.downloaded).toBeLessThan(bytes.length);
    expect((await listModels(page)).map((e) => e.url)).not.toContain(url);
    expect(await cacheKeys(page)).not.toContain(url);
  }, 300_000);

  it('a quota too small for the model: the load goes on uncached, with a warning', async () => {
    const bytes = makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-qwen2-gqa7-h64'], weightType: GGMLType.Q8_0, seed: 23 });
    const url = server.put('/chunklm/quota/resolve/main/model.gguf', bytes, 'quota-v1');
    context = await browser.newContext();
    const { page, problems } = await openPage(context, baseURL);
    const cdp = await context.newCDPSession(page);
    const origin = new URL(baseURL).origin;
    const { usage } = await page.evaluate(() => navigator.storage.estimate());
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: (usage ?? 0) + 256 * 1024 });
    const info = await load(page, url);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    const what = `files ${JSON.stringify(info.files)}; warnings ${JSON.stringify(info.warnings)}${explain(problems)}`;
    expect(sources(info), what).toEqual(['network']);
    expect(info.warnings?.join(' '), what).toMatch(/was not cached \(.*quota/i);
    expect((await greedy(page, 'the', 4)).tokens).toHaveLength(4);
    expect((await listModels(page)).map((e) => e.url)).not.toContain(url);
  }, 300_000);
});

describe('the Cache Storage model cache', () => {
  // A profile on disk, as a user's browser has (a fresh Playwright context keeps its storage in memory).
  const profile = tempDir('hub-stream');
  let context: BrowserContext;
  beforeAll(async () => {
    context = await chromium.launchPersistentContext(profile.dir, { executablePath: chromiumPath, headless: true, args: chromiumArgs });
  });
  afterAll(async () => {
    await context?.close();
    profile.remove();
  });

  it('writes a 384 MiB file as it streams, without holding it in memory, and reads it back by ranges', async () => {
    const MiB = 1 << 20;
    const n = 384;
    const page = await context.newPage();
    await page.goto(baseURL);
    const cdp = await context.newCDPSession(page);
    // The renderer's JS heap and ArrayBuffer backing stores, sampled while the page writes.
    const heap = async (): Promise<number> => {
      const u = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number; backingStorageSize?: number };
      return u.usedSize + (u.backingStorageSize ?? 0);
    };
    await cdp.send('HeapProfiler.collectGarbage');
    const base = await heap();
    let peak = base;
    let writing = true;
    const sampler = (async () => {
      while (writing) {
        peak = Math.max(peak, await heap());
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const result = await page
      .evaluate(
        async ({ n, MiB }) => {
          // The module as Vite serves it to the page (a plain import() here would be rewritten for Node).
          const importInPage = new Function('u', 'return import(u)') as (u: string) => Promise<typeof import('../src/hub/cache-storage.ts')>;
          const { CacheStorageModelCache } = await importInPage('/src/hub/cache-storage.ts');
          const cache = new CacheStorageModelCache('chunklm-stream-test');
          const url = 'https://example.test/big.gguf';
          // Each MiB is filled with its index, so a read shows which MiB it came from.
          const body = async function* () {
            for (let i = 0; i < n; i++) yield new Uint8Array(MiB).fill(i & 255);
          };
          await cache.write({ url, bytes: n * MiB }, body());
          const opened = await cache.open(url);
          const reads: number[] = [];
          for (const i of [0, 1, 200, n - 1]) reads.push((await opened!.source.read(i * MiB + 12345, 4))[3]);
          const listed = await cache.list();
          await caches.delete('chunklm-stream-test');
          return { size: opened!.source.size, reads, listed: listed.map((e) => e.bytes) };
        },
        { n, MiB },
      )
      .finally(() => (writing = false));
    await sampler;
    console.log(`cache-storage write of ${n} MiB: renderer heap + array buffers ${((peak - base) / MiB).toFixed(1)} MiB above the start at peak`);
    expect(result.size).toBe(n * MiB);
    expect(result.reads).toEqual([0, 1, 200, (n - 1) & 255]);
    expect(result.listed).toEqual([n * MiB]);
    // Garbage collection runs when it likes, so some spent chunks may still count; a write that
    // held the file would show all of it.
    expect(peak - base, 'memory the write held at its peak').toBeLessThan((n / 2) * MiB);
    await page.close();
  }, 300_000);
});

describe('a browser killed during a download', () => {
  let server: FileServer;
  let chrome: OwnChromium | undefined;
  const profile = tempDir('hub-kill');
  beforeAll(async () => {
    server = await FileServer.start();
  });
  afterAll(async () => {
    await chrome?.kill();
    await server?.close();
    profile.remove();
  });

  it('leaves no entry that reads as complete; the next visit downloads the file again', async () => {
    const bytes = makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-qwen2-gqa7-h64'], weightType: GGMLType.Q8_0, seed: 24 });
    const path = '/chunklm/kill/resolve/main/model.gguf';
    const url = server.put(path, bytes, 'kill-v1');
    chrome = await startChromium(profile.dir);
    const first = await openPage(chrome.context, baseURL);
    server.faults = { slow: { chunkBytes: 32 * 1024, delayMs: 10 } };
    await first.page.evaluate((url) => void window.chunklmReady!.then((c) => c.load(url)).catch(() => undefined), url);
    // The download's own GET (the whole file) is under way and past its first MiB.
    await until(
      async () => (server.gets(path).some((r) => r.range === `bytes=0-${bytes.length - 1}` && r.sent > 1 << 20) ? true : undefined),
      'the download to be under way',
      120_000,
      50,
    );
    await chrome.kill();
    server.faults = {};

    chrome = await startChromium(profile.dir);
    const { page, problems } = await openPage(chrome.context, baseURL);
    expect((await listModels(page)).map((e) => e.url), explain(problems)).not.toContain(url);
    expect(await cacheKeys(page)).not.toContain(url);
    const info = await load(page, url);
    expect(sources(info), explain(problems)).toEqual(['download']);
    expect((await listModels(page)).find((e) => e.url === url)?.bytes).toBe(bytes.length);
  }, 300_000);
});

describe('a Qwen2.5-0.5B-shaped Q4_K_M model from a URL (profile on disk)', () => {
  let server: FileServer;
  let chrome: OwnChromium | undefined;
  const profile = tempDir('hub-q4km');
  beforeAll(async () => {
    server = await FileServer.start();
  });
  afterAll(async () => {
    await chrome?.kill();
    await server?.close();
    profile.remove();
  });

  // The shape of Qwen2.5-0.5B (24 layers, dim 896, 14/2 heads, vocab 151936, tied head) with the
  // per-tensor types llama-quantize gives its Q4_K_M file: Q5_0 and Q8_0 where rows of 896 are not
  // whole super-blocks, Q4_K / Q6_K in ffn_down. Split in two parts as the Hub's large files are.
  // A profile on disk: Chromium's in-memory profiles refuse cache entries this large.
  it('downloads in parts, loads and generates; after a browser restart it loads from Cache Storage with no request for its bytes', async () => {
    const bytes = makeSyntheticModel({ ...SYNTHETIC_PRESETS['qwen2.5-0.5b'], weightType: GGMLType.Q4_K, recipe: 'Q4_K_M', seed: 31 });
    const served = await serveSynthetic(server, 'chunklm/qwen2.5-0.5b-shaped', 'qwen2.5-0.5b-shaped-Q4_K_M', bytes, 2);
    const prefix = served.paths[0].slice(0, served.paths[0].lastIndexOf('/') + 1);

    chrome = await startChromium(profile.dir);
    const first = await openPage(chrome.context, baseURL);
    const info = await load(first.page, served.url, { maxContext: 256 });
    expect(sources(info), `first load${explain(first.problems)}`).toEqual(['download', 'download']);
    expect(info.weightType).toBe('Q5_0'); // the type holding the most bytes of this mix
    expect(info.gpuMemory.peakBytes).toBeGreaterThanOrEqual(info.gpuMemory.weightBytes);
    const answer = await greedy(first.page, 'the quick brown fox', 4);
    expect(answer.tokens.length, explain(first.problems)).toBe(4);
    expect(first.problems, 'console errors').toEqual([]);
    await chrome.kill();

    chrome = await startChromium(profile.dir);
    const { page, problems } = await openPage(chrome.context, baseURL);
    const gets = server.gets(prefix).length;
    const again = await load(page, served.url, { maxContext: 256 });
    expect(sources(again), `after the restart${explain(problems)}`).toEqual(['cache', 'cache']);
    expect(
      server.gets(prefix).slice(gets).map((r) => `${r.path} ${r.range ?? ''}`),
      'requests for the weights after the restart',
    ).toEqual([]);
    expect((await greedy(page, 'the quick brown fox', 4)).tokens, 'the cached model answers as the downloaded one did').toEqual(answer.tokens);
    expect(problems, 'console errors').toEqual([]);
  }, 900_000);
});
