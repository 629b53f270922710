// The built demo's service worker, served under a sub-path: it registers with the page's folder as
// its scope, controls the page after a reload, precaches the app shell and no model, leaves model
// URLs to the network, and after the first visit the page, its Worker and a model already in the
// app's model cache work with the network off.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import golden from '../test/fixtures/stories260K-golden.json' with { type: 'json' };
import { projectRoot } from '../scripts/setup.mjs';
import { missingShared, sharedFile } from '../test/helpers/shared.ts';
import { launchChromium, openPage } from './browser.ts';

const distURL = inject('distURL');
const model = sharedFile('models/stories260K.gguf');

/** What the page's service worker state looks like from inside it. */
function serviceWorkerState(page: Page) {
  return page.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready;
    const names = await caches.keys();
    const cached: Record<string, string[]> = {};
    for (const name of names) cached[name] = (await (await caches.open(name)).keys()).map((r) => r.url);
    return { scope: reg.scope, script: reg.active?.scriptURL, controller: navigator.serviceWorker.controller?.scriptURL ?? null, cached };
  });
}

describe('the built demo offline, at a sub-path', () => {
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];

  beforeAll(async () => {
    browser = await launchChromium();
    context = await browser.newContext();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('registers its service worker with the page folder as scope; it controls the page after a reload', async () => {
    ({ page, problems } = await openPage(context, distURL));
    const first = await serviceWorkerState(page);
    expect(first.scope).toBe(distURL);
    expect(first.script).toBe(`${distURL}sw.js`);
    await page.reload();
    await page.waitForFunction(() => window.chunklmReady !== undefined);
    await page.evaluate(async () => void (await window.chunklmReady));
    const again = await serviceWorkerState(page);
    expect(again.controller).toBe(`${distURL}sw.js`);
    // The precache holds the app shell, and nothing of a model.
    const precache = Object.entries(again.cached).find(([name]) => name.includes('precache'));
    expect(precache, `caches: ${Object.keys(again.cached).join(', ')}`).toBeDefined();
    const urls = precache![1].map((u) => u.replace(/\?.*$/, ''));
    expect(urls).toContain(`${distURL}index.html`);
    // Every built asset: the page's JS, the engine's Worker (WGSL inlined), pdf.js and its worker.
    const assets = readdirSync(join(projectRoot, '.cache', 'e2e-dist', 'assets'));
    expect(assets.some((a) => /^worker-[\w-]+\.js$/.test(a))).toBe(true);
    for (const a of assets) expect(urls).toContain(`${distURL}assets/${a}`);
    expect(urls.filter((u) => /\.(gguf|kvpack)$|\/models\//.test(u))).toEqual([]);
  });

  it('leaves a model URL opened as a page to the network (a 404, not index.html)', async () => {
    const tab = await context.newPage();
    const res = await tab.goto(`${distURL}models/does-not-exist.gguf`);
    expect(res?.status()).toBe(404);
    await tab.close();
  });

  it.skipIf(!model)(`after the first visit, works offline: the page, its Worker, and a model in the model cache (${model ? 'stories260K' : missingShared('models/stories260K.gguf')})`, async () => {
    const online = await page.evaluate(async () => (await window.chunklmReady!).load('models/stories260K.gguf'));
    expect(online.files?.map((f) => f.source)).toEqual(['download']);
    const { cached } = await serviceWorkerState(page);
    // The model went to the app's own cache only.
    for (const [name, urls] of Object.entries(cached)) {
      if (name !== 'chunklm-models') expect(urls.filter((u) => u.endsWith('.gguf')), name).toEqual([]);
    }
    expect(cached['chunklm-models']).toEqual([`${distURL}models/stories260K.gguf`]);

    const failed: string[] = [];
    context.on('requestfailed', (req) => failed.push(`${req.method()} ${req.url()} ${req.failure()?.errorText}`));
    await context.setOffline(true);
    try {
      await page.reload();
      await page.waitForFunction(() => window.chunklmReady !== undefined);
      await page.evaluate(async () => void (await window.chunklmReady));
      expect(await page.evaluate(() => navigator.onLine)).toBe(false);
      const offline = await page.evaluate(async () => (await window.chunklmReady!).load('models/stories260K.gguf'));
      expect(offline.files?.map((f) => f.source)).toEqual(['cache']);
      const { text, maxTokens, tokens } = golden.prompt;
      const r = await page.evaluate(
        async ({ text, maxTokens }) => (await window.chunklmReady!).generate(text, { maxTokens, temperature: 0 }).result,
        { text, maxTokens },
      );
      expect(r.tokens).toEqual(tokens);
    } finally {
      await context.setOffline(false);
    }
    // Offline, only the model cache's freshness check went to the network (and failed, as it may).
    expect(failed.filter((f) => !f.includes(`${distURL}models/stories260K.gguf`))).toEqual([]);
    expect(problems.filter((p) => !p.includes('ERR_INTERNET_DISCONNECTED'))).toEqual([]);
  });
});
