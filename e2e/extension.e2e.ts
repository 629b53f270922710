// The Chrome extension (examples/chrome-extension/), built with scripts/build-extension.mjs and
// loaded unpacked into Debian's Chromium, headless, on a persistent profile. A local test page and
// the demo model are served from a static server. The side panel is opened as a page
// (chrome-extension://<id>/sidepanel.html): it loads the model by its http URL, reads the chosen
// tab and answers as a stream, every chunk computed; the same page in a new tab computes nothing;
// an edited paragraph computes only its own chunk; a reopened panel lists the pages from IndexedDB
// and loads the model from the extension's model cache without downloading it; a selection is read
// instead of the whole page. A screenshot of the panel goes to e2e/screenshots/ (git-ignored).
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildExtension } from '../scripts/build-extension.mjs';
import { chromiumPath, projectRoot } from '../scripts/setup.mjs';
import { missingShared, sharedFile } from '../test/helpers/shared.ts';
import { chromiumArgs, until } from './browser.ts';
import { startStaticServer, type StaticServer } from './static-server.ts';

const model = sharedFile('models/stories260K.gguf');
const shots = join(projectRoot, 'e2e', 'screenshots');

/** Short paragraphs (each well under the panel's 64-token chunks, two together over it): one chunk each. */
const PARAGRAPHS = [
  'Tom was a lighthouse keeper on a small island far out in the sea.',
  'Every night he climbed the long stairs to light the big lamp at the top.',
  'One stormy night a little boat was lost in the dark and the waves were high.',
  'Tom turned the light toward the sea, and the boat found its way home.',
  'The fisherman thanked Tom and gave him a big fish for his dinner.',
];

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>The lighthouse keeper</title></head>
<body><article>
${PARAGRAPHS.map((p) => `<p>${p}</p>`).join('\n')}
</article></body></html>`;

const QUESTION = 'What did Tom do on the stormy night?';

interface AnswerView {
  state: string;
  text: string;
  computed: number;
  sources: string[];
}

/** The side panel's app element, as far as the test reaches into it. */
interface PanelAppView extends HTMLElement {
  settings: { maxTokens: number };
  model?: { files?: { url: string; source: string }[] };
}

/** Short answers: SwiftShader decodes slowly. */
async function shortAnswers(panel: Page): Promise<void> {
  await panel.evaluate(() => {
    const app = document.querySelector('chunklm-extension-app') as PanelAppView;
    app.settings = { ...app.settings, maxTokens: 24 };
  });
}

interface ReadView {
  state: string;
  chunks: number;
  computed: number;
}

async function openPanel(context: BrowserContext, extensionId: string, problems: string[]): Promise<Page> {
  const page = await context.newPage();
  await page.setViewportSize({ width: 420, height: 1000 });
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.goto(`chrome-extension://${extensionId}/sidepanel.html`);
  await page.waitForFunction(() => window.chunklmReady !== undefined);
  await page.evaluate(async () => void (await window.chunklmReady));
  return page;
}

async function waitModelReady(panel: Page): Promise<void> {
  await until(
    async () => {
      const state = await panel.locator('#model-status').getAttribute('data-state');
      if (state === 'error') throw new Error(`load failed: ${await panel.locator('#model-error').textContent()}`);
      return state === 'ready' ? true : undefined;
    },
    'the model to load',
    90_000,
  );
}

/** Ticks exactly the tab `tabId` in the Pages list. */
async function chooseOnly(panel: Page, tabId: number): Promise<void> {
  await until(async () => ((await panel.locator(`#pages-tabs li[data-tab-id="${tabId}"]`).count()) > 0 ? true : undefined), `tab ${tabId} listed`, 10_000);
  for (const box of await panel.locator('#pages-tabs li input[type=checkbox]').all()) await box.setChecked(false);
  await panel.locator(`#pages-tabs li[data-tab-id="${tabId}"] input[type=checkbox]`).setChecked(true);
}

async function tabIds(panel: Page): Promise<number[]> {
  return panel.locator('#pages-tabs li').evaluateAll((lis) => lis.map((li) => Number(li.getAttribute('data-tab-id'))));
}

async function lastAnswer(panel: Page): Promise<AnswerView> {
  // One read of the whole turn: the answer may end between two separate reads.
  return panel.locator('#chat-log article.turn').last().evaluate((turn) => {
    const metrics = turn.querySelector('.metrics');
    return {
      state: turn.getAttribute('data-state') ?? '',
      text: (turn.querySelector('.answer')?.textContent ?? '').trim(),
      computed: metrics ? Number(metrics.getAttribute('data-computed')) : NaN,
      sources: [...turn.querySelectorAll('.chunks button')].map((b) => b.getAttribute('data-source') ?? ''),
    };
  });
}

/** "Ask about these pages" with `tabId` chosen: what reading the page reported, and the answer (with how often its text grew). */
async function askAbout(panel: Page, tabId: number): Promise<{ read: ReadView; answer: AnswerView; growth: number }> {
  await chooseOnly(panel, tabId);
  const before = await panel.locator('#chat-log article.turn').count();
  await panel.locator('#pages-question').fill(QUESTION);
  await panel.locator('#pages-ask').click();
  const lengths = new Set<number>();
  const answer = await until(
    async () => {
      const err = panel.locator('#pages-error');
      if ((await err.count()) > 0) throw new Error(`asking failed: ${await err.textContent()}`);
      if ((await panel.locator('#chat-log article.turn').count()) <= before) return undefined;
      const a = await lastAnswer(panel);
      if (a.state === 'streaming') lengths.add(a.text.length);
      if (a.state === 'error') throw new Error(`the answer failed: ${await panel.locator('#chat-error').textContent()}`);
      return a.state === 'done' || a.state === 'stopped' ? a : undefined;
    },
    'the answer',
    120_000,
    20,
  );
  const read = await panel.locator(`#pages-tabs li[data-tab-id="${tabId}"] .page-read`).evaluate((el) => ({
    state: el.getAttribute('data-state') ?? '',
    chunks: Number(el.getAttribute('data-chunks')),
    computed: Number(el.getAttribute('data-computed')),
  }));
  return { read, answer, growth: [...lengths].filter((n) => n > 0).length };
}

describe.skipIf(!model)(`the Chrome extension (${model ? 'stories260K, unpacked in headless Chromium' : missingShared('models/stories260K.gguf')})`, () => {
  let context: BrowserContext;
  let server: StaticServer;
  let extensionId: string;
  let panel: Page;
  let pageUrl: string;
  let modelUrl: string;
  let firstTab: Page;
  let secondTab: Page;
  let secondTabId: number;
  const problems: string[] = [];
  const scratch = mkdtempSync(join(tmpdir(), 'chunklm-extension-'));

  beforeAll(async () => {
    const extDir = join(scratch, 'extension');
    const ms = await buildExtension(extDir, { logLevel: 'warn' });
    process.stdout.write(`[e2e] built the extension into ${extDir} in ${(ms / 1000).toFixed(1)} s\n`);
    const site = join(scratch, 'site');
    mkdirSync(site);
    writeFileSync(join(site, 'lighthouse.html'), PAGE);
    copyFileSync(model!, join(site, 'stories260K.gguf'));
    server = await startStaticServer(site, '/site/');
    pageUrl = `${server.url}lighthouse.html`;
    modelUrl = `${server.url}stories260K.gguf`;
    // Debian's chromium loads an unpacked extension in plain headless mode (branded Chrome 137+
    // ignores --load-extension).
    context = await chromium.launchPersistentContext(join(scratch, 'profile'), {
      executablePath: chromiumPath,
      headless: true,
      args: [...chromiumArgs, `--disable-extensions-except=${extDir}`, `--load-extension=${extDir}`],
    });
    const worker = context.serviceWorkers()[0] ?? (await context.waitForEvent('serviceworker', { timeout: 30_000 }));
    extensionId = new URL(worker.url()).host;
  });

  afterAll(async () => {
    if (problems.length > 0) process.stdout.write(`[e2e] extension console errors:\n  ${problems.join('\n  ')}\n`);
    await context?.close();
    await server?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('loads the model by URL in the side panel and answers about a tab as a stream, computing every chunk', async () => {
    firstTab = await context.newPage();
    await firstTab.goto(pageUrl);
    panel = await openPanel(context, extensionId, problems);
    await shortAnswers(panel);
    await panel.locator('#model-url').fill(modelUrl);
    const loadStart = Date.now();
    await panel.locator('#model-load').click();
    await waitModelReady(panel);
    process.stdout.write(`[e2e] extension: first model load (download into the extension's cache) ready in ${Date.now() - loadStart} ms\n`);

    const [tabId] = await until(async () => ((await tabIds(panel)).length > 0 ? tabIds(panel) : undefined), 'the tab listed', 10_000);
    expect(await panel.locator(`#pages-tabs li[data-tab-id="${tabId}"]`).getAttribute('data-url')).toBe(pageUrl);
    expect(await panel.locator(`#pages-tabs li[data-tab-id="${tabId}"] label`).textContent()).toContain('The lighthouse keeper');
    const first = await askAbout(panel, tabId);
    process.stdout.write(`[e2e] extension: first read ${JSON.stringify(first.read)}, answer ${JSON.stringify(first.answer.text.slice(0, 60))}\n`);
    expect(first.read.state).toBe('done');
    expect(first.read.chunks).toBe(PARAGRAPHS.length);
    expect(first.read.computed).toBe(first.read.chunks);
    expect(first.answer.state).toBe('done');
    expect(first.answer.text.length).toBeGreaterThan(0);
    expect(first.growth).toBeGreaterThan(1); // the text grew while it streamed
    expect(first.answer.sources).toHaveLength(PARAGRAPHS.length);
    // The page is listed among the pages read before.
    expect(await panel.locator('#pages-cached li').count()).toBe(1);
    expect(await panel.locator('#pages-cached li').textContent()).toContain('The lighthouse keeper');
  });

  it('the same page in a new tab computes nothing', async () => {
    const known = new Set(await tabIds(panel));
    secondTab = await context.newPage();
    await secondTab.goto(pageUrl);
    secondTabId = await until(async () => (await tabIds(panel)).find((id) => !known.has(id)), 'the new tab listed', 10_000);
    const again = await askAbout(panel, secondTabId);
    expect(again.read).toEqual({ state: 'done', chunks: PARAGRAPHS.length, computed: 0 });
    expect(again.answer.state).toBe('done');
    expect(again.answer.sources).toHaveLength(PARAGRAPHS.length);
    expect(again.answer.sources.every((s) => s === 'gpu' || s === 'memory' || s === 'store')).toBe(true);
    expect(await panel.locator('#pages-cached li').count()).toBe(1);
  });

  it('an edited paragraph computes only its own chunk', async () => {
    // Same length, so the other paragraphs' chunks stay as they were.
    await secondTab.evaluate(() => {
      const p = document.querySelectorAll('article p')[2];
      p.textContent = p.textContent!.replace('little boat', 'small ship!');
    });
    const edited = await askAbout(panel, secondTabId);
    expect(edited.read).toEqual({ state: 'done', chunks: PARAGRAPHS.length, computed: 1 });
    expect(edited.answer.state).toBe('done');
    expect(edited.answer.sources.filter((s) => s === 'computed')).toHaveLength(0); // computed by the read, linked from the GPU
    await firstTab.close();
  });

  it('a reopened side panel lists the pages from IndexedDB and loads the model from the cache, without a download', async () => {
    await panel.close();
    const start = Date.now();
    panel = await openPanel(context, extensionId, problems);
    await until(async () => ((await panel.locator('#pages-cached li').count()) > 0 ? true : undefined), 'the pages read before listed', 30_000);
    const listedMs = Date.now() - start;
    await waitModelReady(panel);
    const readyMs = Date.now() - start;
    process.stdout.write(`[e2e] extension: side panel reopened, documents listed in ${listedMs} ms, model ready in ${readyMs} ms\n`);
    const files = await panel.evaluate(() => (document.querySelector('chunklm-extension-app') as PanelAppView).model?.files);
    expect(files).toEqual([expect.objectContaining({ url: modelUrl, source: 'cache' })]);
    const listed = await panel.locator('#pages-cached li').evaluateAll((lis) => lis.map((li) => [li.getAttribute('data-id'), li.hasAttribute('data-cached')]));
    expect(listed).toHaveLength(1);
    expect(listed[0][0]).toMatch(/^page:[0-9a-f]{16}$/);
    expect(listed[0][1]).toBe(true);

    // Asked again, the page's chunks come from IndexedDB: nothing is computed.
    await shortAnswers(panel);
    const restored = await askAbout(panel, secondTabId);
    expect(restored.read).toEqual({ state: 'done', chunks: PARAGRAPHS.length, computed: 0 });
    expect(restored.answer.sources.every((s) => s === 'gpu' || s === 'memory' || s === 'store')).toBe(true);
    mkdirSync(shots, { recursive: true });
    await panel.screenshot({ path: join(shots, 'extension-sidepanel.png'), fullPage: true });
  });

  it('a selection in the page is read instead of the whole page', async () => {
    await secondTab.evaluate(() => {
      const range = document.createRange();
      range.selectNodeContents(document.querySelectorAll('article p')[3]);
      const selection = window.getSelection()!;
      selection.removeAllRanges();
      selection.addRange(range);
    });
    const selected = await askAbout(panel, secondTabId);
    expect(selected.read.state).toBe('done');
    expect(selected.read.chunks).toBe(1);
    expect(await panel.locator(`#pages-tabs li[data-tab-id="${secondTabId}"] .page-read`).textContent()).toContain('the selection');
    expect(selected.answer.state).toBe('done');
  });
});
