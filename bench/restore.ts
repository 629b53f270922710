// Restore benchmark (`npm run bench:restore`): time to first token over documents already read,
// with their chunks coming from each tier, against full prefill, in one run in real Chromium:
//   full     every prompt token computed (no cache);
//   gpu      chunks resident in the KV pool (asked before);
//   memory   chunks evicted from the pool, kept as encoded records in the Worker;
//   store    chunks read from IndexedDB (pool and memory emptied), same page;
//   reload   chunks read from IndexedDB after a page reload (a new Worker, a new engine);
//   restart  chunks read from IndexedDB after the browser is closed and started again.
// Also IndexedDB write and read throughput as the engine sees it (stats().io). Writes
// bench/results/restore-<adapter>.json and .md. The model is synthetic (real shapes, random
// weights), written to public/models/ so the page loads it by URL.
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { GGMLType } from '../src/gguf/quant.ts';
import { makeSyntheticModel } from '../src/model/synthetic.ts';
import { chromiumPath } from '../scripts/setup.mjs';
import { chromiumArgs } from '../e2e/browser.ts';
import { projectRoot } from './models.ts';
import { median } from './timing.ts';

const USAGE = `usage: npm run bench:restore -- [--quick] [--runs N] [--docs N] [--out DIR]
  --quick    2 documents of ~128 tokens, 2 runs: a smoke run (writes restore-<adapter>-quick.*)
  --runs N   measured asks per tier (median reported; default 3)
  --docs N   documents of ~256 tokens each (default 6)
  --out DIR  write the results there instead of bench/results`;

interface Args {
  quick: boolean;
  runs: number;
  docs: number;
  docTokens: number;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, runs: 3, docs: 6, docTokens: 256, out: join(projectRoot, 'bench', 'results') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = (): number => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n <= 0) {
        console.error(`${a} needs a positive integer\n${USAGE}`);
        process.exit(2);
      }
      return n;
    };
    if (a === '--quick') Object.assign(args, { quick: true, runs: 2, docs: 2, docTokens: 128 });
    else if (a === '--runs') args.runs = num();
    else if (a === '--docs') args.docs = num();
    else if (a === '--out') args.out = argv[++i];
    else {
      console.error(USAGE);
      process.exit(a === '--help' || a === '-h' ? 0 : 2);
    }
  }
  return args;
}

/** A model with enough KV per token that storage throughput means something (4 KiB per token in f16). */
const MODEL_SPEC = { architecture: 'llama' as const, nLayers: 4, dim: 256, nHeads: 4, nKvHeads: 4, headDim: 64, ffnDim: 512, vocabSize: 512, contextLength: 4096, weightType: GGMLType.F16, seed: 11, name: 'restore-bench' };
const MODEL_FILE = 'bench-restore.gguf';

/** Deterministic prose of lowercase words (the synthetic vocabulary covers letters well). */
function documentText(seed: number, approxTokens: number): string {
  const words = ['river', 'stone', 'garden', 'lantern', 'harbor', 'meadow', 'copper', 'window', 'forest', 'signal', 'market', 'winter', 'bridge', 'orchard', 'candle', 'valley'];
  let s = seed * 2654435761 >>> 0;
  const next = () => ((s = (Math.imul(s ^ (s >>> 15), 2246822519) + 0x9e3779b9) >>> 0) / 4294967296);
  const sentences: string[] = [];
  let tokens = 0;
  while (tokens < approxTokens) {
    const n = 6 + Math.floor(next() * 8);
    const w = Array.from({ length: n }, () => words[Math.floor(next() * words.length)]);
    sentences.push(`${w.join(' ')}.`);
    tokens += n * 5; // about five tokens per word for this vocabulary
  }
  return sentences.reduce((text, sen, i) => text + (i > 0 && i % 5 === 0 ? '\n\n' : i > 0 ? ' ' : '') + sen, '');
}

interface Ask {
  ttftMs: number;
  sources: Record<string, number>;
  promptTokens: number;
  computedTokens: number;
  reusedTokens: number;
}

interface PageApi {
  load(url: string): Promise<void>;
  ask(ids: string[], method: string): Promise<Ask>;
  add(id: string, text: string): Promise<{ computedChunks: number; bytes: number; chunks: number; tokens: number }>;
  evict(tier: 'gpu' | 'memory'): Promise<void>;
  io(): Promise<{ readBytes: number; readMs: number; writeBytes: number; writeMs: number }>;
  clear(): Promise<void>;
}

function pageApi(page: Page): PageApi {
  const question = 'what happened near the old bridge';
  return {
    load: (url) => page.evaluate(async (u) => void (await (await window.chunklmReady!).load(u)), url),
    ask: (ids, method) =>
      page.evaluate(
        async ({ ids, method, question }) => {
          const c = await window.chunklmReady!;
          const r = await c.generate({ documents: ids, question }, { maxTokens: 1, temperature: 0, method: method as 'naive' }).result;
          const sources: Record<string, number> = {};
          for (const ch of r.chunks ?? []) sources[ch.source] = (sources[ch.source] ?? 0) + 1;
          return { ttftMs: r.ttftMs, sources, promptTokens: r.promptTokens.length, computedTokens: r.computedTokens ?? 0, reusedTokens: r.reusedTokens ?? 0 };
        },
        { ids, method, question },
      ),
    add: (id, text) =>
      page.evaluate(
        async ({ id, text }) => {
          const info = await (await window.chunklmReady!).documents.add({ id, text });
          return { computedChunks: info.computedChunks ?? 0, bytes: info.bytes, chunks: info.chunks, tokens: info.tokens };
        },
        { id, text },
      ),
    evict: (tier) => page.evaluate(async (t) => void (await (await window.chunklmReady!).documents.evict(t)), tier),
    io: () => page.evaluate(async () => (await (await window.chunklmReady!).documents.stats()).io),
    clear: () => page.evaluate(async () => (await window.chunklmReady!).documents.clear()),
  };
}

async function openContext(profile: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profile, { executablePath: chromiumPath, headless: true, args: chromiumArgs });
}

async function openDemo(ctx: BrowserContext, url: string): Promise<{ page: Page; api: PageApi }> {
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  await page.goto(url);
  await page.waitForFunction(() => window.chunklmReady !== undefined);
  return { page, api: pageApi(page) };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const modelPath = join(projectRoot, 'public', 'models', MODEL_FILE);
  mkdirSync(join(projectRoot, 'public', 'models'), { recursive: true });
  if (!existsSync(modelPath)) writeFileSync(modelPath, makeSyntheticModel(MODEL_SPEC));
  const { createServer } = await import('vite');
  const server = await createServer({ configFile: join(projectRoot, 'vite.config.ts'), logLevel: 'warn', clearScreen: false, server: { port: 5191, strictPort: false, host: '127.0.0.1', hmr: false, watch: null } });
  await server.listen();
  const base = server.resolvedUrls!.local[0];
  const modelUrl = `${base}models/${MODEL_FILE}`;
  const profile = mkdtempSync(join(tmpdir(), 'chunklm-restore-'));
  const log = (s: string) => process.stderr.write(`[restore] ${s}\n`);
  try {
    let ctx = await openContext(profile);
    let { page, api } = await openDemo(ctx, base);
    await api.load(modelUrl);
    const info = await page.evaluate(async () => (await window.chunklmReady!).documents.stats());
    void info;
    const adapter = await page.evaluate(async () => {
      const a = await navigator.gpu?.requestAdapter();
      return a ? `${a.info.vendor} ${a.info.architecture} ${a.info.description}`.trim() : 'unknown';
    });
    await api.clear();
    const ids: string[] = [];
    let docTokens = 0;
    let docBytes = 0;
    let chunks = 0;
    for (let d = 0; d < args.docs; d++) {
      const id = `doc-${d}`;
      const r = await api.add(id, documentText(d + 1, args.docTokens));
      ids.push(id);
      docTokens += r.tokens;
      docBytes += r.bytes;
      chunks += r.chunks;
      log(`added ${id}: ${r.chunks} chunks, ${r.tokens} tokens, ${r.bytes} bytes`);
    }
    const written = await api.io();
    const method = 'attnlink';
    const rows: Record<string, Ask[]> = { full: [], gpu: [], memory: [], store: [], reload: [], restart: [] };
    const measure = async (tier: string, before: () => Promise<void>) => {
      for (let i = 0; i < args.runs; i++) {
        await before();
        const r = await api.ask(ids, tier === 'full' ? 'full' : method);
        rows[tier].push(r);
        log(`${tier} #${i + 1}: TTFT ${r.ttftMs.toFixed(1)} ms, sources ${JSON.stringify(r.sources)}`);
      }
    };
    await api.ask(ids, method); // warm: pipelines compiled, chunks in the pool
    await measure('full', async () => undefined);
    await measure('gpu', async () => undefined);
    await measure('memory', async () => api.evict('gpu'));
    await measure('store', async () => {
      await api.evict('gpu');
      await api.evict('memory');
    });
    const sameSession = await api.io();
    for (let i = 0; i < args.runs; i++) {
      await page.reload();
      await page.waitForFunction(() => window.chunklmReady !== undefined);
      ({ api } = { api: pageApi(page) });
      await api.load(modelUrl);
      const r = await api.ask(ids, method);
      rows.reload.push(r);
      log(`reload #${i + 1}: TTFT ${r.ttftMs.toFixed(1)} ms, sources ${JSON.stringify(r.sources)}`);
    }
    const afterReload = await api.io();
    for (let i = 0; i < args.runs; i++) {
      await ctx.close();
      ctx = await openContext(profile);
      ({ page, api } = await openDemo(ctx, base));
      await api.load(modelUrl);
      const r = await api.ask(ids, method);
      rows.restart.push(r);
      log(`restart #${i + 1}: TTFT ${r.ttftMs.toFixed(1)} ms, sources ${JSON.stringify(r.sources)}`);
    }
    await ctx.close();

    const med = (tier: string) => median(rows[tier].map((r) => r.ttftMs));
    const full = med('full');
    const tiers = Object.keys(rows).map((tier) => {
      const m = med(tier);
      const sources = rows[tier].at(-1)!.sources;
      return { tier, ttftMs: m, speedup: full / m, sources, computedTokens: rows[tier].at(-1)!.computedTokens, promptTokens: rows[tier].at(-1)!.promptTokens };
    });
    const mbps = (bytes: number, ms: number) => (ms > 0 ? bytes / 1e6 / (ms / 1000) : 0);
    const report = {
      kind: 'restore',
      date: new Date().toISOString(),
      adapter,
      model: { ...MODEL_SPEC, weightType: 'F16', kvBytesPerToken: MODEL_SPEC.nLayers * 2 * MODEL_SPEC.nKvHeads * MODEL_SPEC.headDim * 2 },
      method,
      documents: args.docs,
      chunks,
      documentTokens: docTokens,
      storedBytes: docBytes,
      runs: args.runs,
      tiers,
      indexedDb: {
        writeMBps: mbps(written.writeBytes, written.writeMs),
        writeBytes: written.writeBytes,
        // Reads in the same session (store rows), then in the reloaded page's engine (reload rows).
        readMBps: mbps(sameSession.readBytes, sameSession.readMs),
        readBytes: sameSession.readBytes,
        readAfterReloadMBps: mbps(afterReload.readBytes, afterReload.readMs),
      },
      raw: rows,
    };
    mkdirSync(args.out, { recursive: true });
    const slug = adapter.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'unknown';
    const name = `restore-${slug}${args.quick ? '-quick' : ''}`;
    const md = renderMarkdown(report);
    for (const [ext, text] of [['json', `${JSON.stringify(report, null, 2)}\n`], ['md', md]] as const) {
      const file = join(args.out, `${name}.${ext}`);
      writeFileSync(`${file}.tmp`, text);
      renameSync(`${file}.tmp`, file);
    }
    process.stdout.write(md);
    log(`wrote ${relative(projectRoot, join(args.out, name))}.{json,md}`);
  } finally {
    await server.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

function renderMarkdown(r: {
  date: string;
  adapter: string;
  method: string;
  documents: number;
  chunks: number;
  documentTokens: number;
  storedBytes: number;
  runs: number;
  model: { nLayers: number; dim: number; kvBytesPerToken: number };
  tiers: { tier: string; ttftMs: number; speedup: number; sources: Record<string, number>; computedTokens: number; promptTokens: number }[];
  indexedDb: { writeMBps: number; readMBps: number; readAfterReloadMBps: number; writeBytes: number; readBytes: number };
}): string {
  const lines = [
    `# Restore benchmark (${r.date.slice(0, 10)})`,
    '',
    `Adapter: ${r.adapter}. Synthetic model: ${r.model.nLayers} layers, dim ${r.model.dim}, KV ${r.model.kvBytesPerToken} bytes per token in the f16 pool.`,
    `${r.documents} documents, ${r.chunks} chunks, ${r.documentTokens} document tokens, ${(r.storedBytes / 1e6).toFixed(2)} MB of chunk records in IndexedDB. Linked with ${r.method}; medians of ${r.runs} asks per row.`,
    '',
    '| chunks from | TTFT ms | full / this | chunk sources | computed tokens / prompt |',
    '|---|---|---|---|---|',
    ...r.tiers.map((t) => `| ${t.tier} | ${t.ttftMs.toFixed(1)} | ${t.speedup.toFixed(2)}× | ${Object.entries(t.sources).map(([k, v]) => `${k} ${v}`).join(', ')} | ${t.computedTokens} / ${t.promptTokens} |`),
    '',
    `IndexedDB as the engine sees it: write ${r.indexedDb.writeMBps.toFixed(1)} MB/s (${(r.indexedDb.writeBytes / 1e6).toFixed(2)} MB), read ${r.indexedDb.readMBps.toFixed(1)} MB/s in the same page (${(r.indexedDb.readBytes / 1e6).toFixed(2)} MB), ${r.indexedDb.readAfterReloadMBps.toFixed(1)} MB/s after reloads.`,
    '',
    'Rows: full = every prompt token computed; gpu = chunks resident in the KV pool; memory = evicted from the pool, kept encoded in the Worker; store = IndexedDB in the same page; reload = IndexedDB after a page reload; restart = IndexedDB after the browser restarted. Times on SwiftShader are CPU timings, not GPU timings.',
    '',
  ];
  return lines.join('\n');
}

await main();
