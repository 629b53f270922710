// The demo as a visitor uses it: the built dist/ served statically under a sub-path, in Chromium.
// The local model loads with its progress bar reaching 100%; a .md and a .pdf are added; a
// question is answered as a stream; Stop stops; after a reload both documents are listed as
// cached and asking again reuses their chunks from IndexedDB (the UI and the chart say so); a
// garbage model file and a corrupt PDF each give a clear message and the page keeps working;
// the whole flow works from the keyboard alone. Screenshots of each state, at desktop and phone
// widths, go to e2e/screenshots/ (git-ignored).
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { projectRoot } from '../scripts/setup.mjs';
import { missingShared, sharedFile } from '../test/helpers/shared.ts';
import { launchChromium, until } from './browser.ts';
import { makePdf } from './pdf.ts';

const distURL = inject('distURL');
const model = sharedFile('models/stories260K.gguf');
const shots = join(projectRoot, 'e2e', 'screenshots');

const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

const MARKDOWN = `# The lighthouse keeper

Tom was a lighthouse keeper on a small island. Every night he climbed the stairs to light the lamp.

One stormy night a little boat was lost in the waves. Tom turned the big light toward the sea, and the boat found its way home.

The fisherman thanked Tom and gave him a fish for dinner.`;

const PDF_LINES = [
  'Lily had a red kite.',
  'She took the kite to the park on a windy day.',
  'The kite flew high above the trees and the birds.',
  'When the wind stopped, the kite came down softly on the grass.',
  'Lily smiled and went home to tell her mom.',
];

const QUESTION = 'What did Tom do on the stormy night?';

/** The element with `id` anywhere in the page, through shadow roots. */
const byId = (page: Page, id: string) => page.locator(`#${id}`);

/** Screenshots at desktop and phone widths (and in the dark scheme with `dark`). */
async function snap(page: Page, name: string, opts: { dark?: boolean } = {}): Promise<void> {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}-desktop.png`), fullPage: true });
  await page.setViewportSize(PHONE);
  await page.waitForTimeout(150);
  await page.screenshot({ path: join(shots, `${name}-phone.png`), fullPage: true });
  if (opts.dark) {
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.waitForTimeout(150);
    await page.screenshot({ path: join(shots, `${name}-phone-dark.png`), fullPage: true });
    await page.setViewportSize(DESKTOP);
    await page.waitForTimeout(150);
    await page.screenshot({ path: join(shots, `${name}-desktop-dark.png`), fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });
  }
  await page.setViewportSize(DESKTOP);
}

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown[] }[];
}

/** axe-core's WCAG 2 A/AA rules on the page (shadow roots included): the serious and critical violations. */
async function accessibilityViolations(page: Page): Promise<string[]> {
  await page.addScriptTag({ path: createRequire(import.meta.url).resolve('axe-core/axe.min.js') });
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(ctx: Document, opts: object): Promise<{ violations: AxeViolation[] }> } }).axe;
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) }));
  });
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => JSON.stringify(n.target)).join(', ')}`);
}

async function openApp(context: BrowserContext, problems: string[]): Promise<Page> {
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.goto(distURL);
  await page.waitForFunction(() => window.chunklmReady !== undefined);
  await page.evaluate(async () => void (await window.chunklmReady));
  return page;
}

/** Loads the model the panel offers first (the local demo model) and waits until it is ready. */
async function loadModel(page: Page): Promise<void> {
  await expect.poll(() => byId(page, 'model-preset-stories260k').isChecked(), { timeout: 30_000 }).toBe(true);
  const seen: number[] = [];
  await byId(page, 'model-load').click();
  await until(
    async () => {
      const status = byId(page, 'model-status');
      const state = await status.getAttribute('data-state');
      const bar = byId(page, 'model-progress');
      if ((await bar.count()) > 0) {
        const [value, max] = await Promise.all([bar.evaluate((b: HTMLProgressElement) => b.value), bar.evaluate((b: HTMLProgressElement) => b.max)]);
        seen.push(value / max);
      }
      if (state === 'error') throw new Error(`load failed: ${await byId(page, 'model-error').textContent()}`);
      return state === 'ready' ? true : undefined;
    },
    'the model to load',
    180_000,
  );
  // The bar reached 100% (it may be gone once the model card replaces it).
  expect(Math.max(...seen, 0)).toBe(1);
}

async function addFiles(page: Page, files: { name: string; mimeType: string; buffer: Buffer }[]): Promise<void> {
  await byId(page, 'doc-files').setInputFiles(files);
}

/** Waits until the list shows a document titled `title` whose chunks are all cached. */
async function waitCached(page: Page, title: string): Promise<void> {
  await until(
    async () => {
      const err = byId(page, 'documents-error');
      if ((await err.count()) > 0) throw new Error(`adding ${title} failed: ${await err.textContent()}`);
      const item = page.locator('#documents-list li', { hasText: title });
      if ((await item.count()) === 0) return undefined;
      return /\bcached\b/i.test((await item.first().textContent()) ?? '') && !/partly|read again/i.test((await item.first().textContent()) ?? '') ? true : undefined;
    },
    `${title} listed as cached`,
    120_000,
  );
}

interface AnswerView {
  state: string;
  text: string;
  ttftMs: number;
  reused: number;
  computed: number;
  sources: string[];
}

async function lastAnswer(page: Page): Promise<AnswerView> {
  // One read of the whole turn: the answer may end between two separate reads.
  return page.locator('#chat-log article.turn').last().evaluate((turn) => {
    const metrics = turn.querySelector('.metrics');
    const num = (name: string): number => (metrics ? Number(metrics.getAttribute(name)) : NaN);
    return {
      state: turn.getAttribute('data-state') ?? '',
      text: (turn.querySelector('.answer')?.textContent ?? '').trim(),
      ttftMs: num('data-ttft-ms'),
      reused: num('data-reused'),
      computed: num('data-computed'),
      sources: [...turn.querySelectorAll('.chunks button')].map((b) => b.getAttribute('data-source') ?? ''),
    };
  });
}

/** Asks `question` and records the answer's text each time it grows, until it ends. */
async function ask(page: Page, question: string): Promise<{ answer: AnswerView; growth: number }> {
  const before = await page.locator('#chat-log article.turn').count();
  await byId(page, 'chat-question').fill(question);
  await byId(page, 'chat-ask').click();
  const lengths = new Set<number>();
  const answer = await until(
    async () => {
      if ((await page.locator('#chat-log article.turn').count()) <= before) return undefined;
      const a = await lastAnswer(page);
      if (a.state === 'streaming') lengths.add(a.text.length);
      if (a.state === 'error') throw new Error(`the answer failed: ${await byId(page, 'chat-error').textContent()}`);
      return a.state === 'done' || a.state === 'stopped' ? a : undefined;
    },
    'the answer',
    240_000,
    50,
  );
  return { answer, growth: [...lengths].filter((n) => n > 0).length };
}

async function setMethod(page: Page, method: string): Promise<void> {
  await byId(page, 'set-method').selectOption(method);
}

async function setNumber(page: Page, id: string, value: number): Promise<void> {
  await byId(page, id).fill(String(value));
  await byId(page, id).dispatchEvent('change');
}

// Each step loads, reads or answers on SwiftShader, on a machine that may be busy: generous limits.
describe.skipIf(!model)(`the demo as a visitor uses it (${model ? 'stories260K, dist under a sub-path' : missingShared('models/stories260K.gguf')})`, { timeout: 300_000 }, () => {
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const problems: string[] = [];
  const ttft: Record<string, number> = {};

  beforeAll(async () => {
    browser = await launchChromium();
    context = await browser.newContext({ viewport: DESKTOP });
    page = await openApp(context, problems);
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('first visit: the local model is offered, nothing is loaded; it loads with the progress bar reaching 100%', async () => {
    await snap(page, '01-first-visit', { dark: true });
    expect(await byId(page, 'model-status').getAttribute('data-state')).toBe('idle');
    await loadModel(page);
    expect(await byId(page, 'model-info').textContent()).toContain('llama');
    await snap(page, '02-model-loaded');
  });

  it('adds a .md and a .pdf document; both are listed as cached', async () => {
    await addFiles(page, [
      { name: 'lighthouse.md', mimeType: 'text/markdown', buffer: Buffer.from(MARKDOWN) },
      { name: 'kite.pdf', mimeType: 'application/pdf', buffer: Buffer.from(makePdf(PDF_LINES, 'The red kite')) },
    ]);
    await waitCached(page, 'The lighthouse keeper');
    await waitCached(page, 'The red kite');
    const list = (await byId(page, 'documents-list').textContent()) ?? '';
    expect(list).toContain('The lighthouse keeper');
    expect(list).toContain('The red kite');
    // Both are chosen for questions.
    const checked = await page.locator('#documents-list input[type=checkbox]').evaluateAll((els) => els.map((e) => (e as HTMLInputElement).checked));
    expect(checked).toEqual([true, true]);
    await snap(page, '03-documents');
  });

  it('answers a question as a stream, with the chunks used and where they came from', async () => {
    // Short answers: SwiftShader decodes a few tokens a second.
    await setNumber(page, 'set-max-tokens', 32);
    // The baseline first: every token of the prompt computed, as a runtime without a chunk cache does.
    await setMethod(page, 'full');
    const full = await ask(page, QUESTION);
    expect(full.answer.state).toBe('done');
    expect(full.answer.text.length).toBeGreaterThan(0);
    expect(full.growth).toBeGreaterThan(1); // the text grew while it streamed
    expect(full.answer.reused).toBe(0);
    ttft.full = full.answer.ttftMs;

    await setMethod(page, 'attnlink');
    const linked = await ask(page, QUESTION);
    expect(linked.answer.state).toBe('done');
    expect(linked.answer.reused).toBeGreaterThan(0);
    expect(linked.answer.sources.length).toBeGreaterThan(0);
    expect(linked.answer.sources.every((s) => s === 'gpu' || s === 'memory' || s === 'store')).toBe(true);
    ttft.gpu = linked.answer.ttftMs;
    // A chunk's text shows on click.
    const chip = page.locator('#chat-log article.turn').last().locator('.chunks button').first();
    await chip.click();
    expect(await chip.getAttribute('aria-expanded')).toBe('true');
    expect(((await page.locator('#chat-log article.turn').last().locator('.chunk-text').textContent()) ?? '').length).toBeGreaterThan(10);
    await snap(page, '04-answered', { dark: true });
  });

  it('has no serious accessibility violations (axe-core, WCAG 2.1 A and AA), in the light and the dark scheme', async () => {
    expect(await accessibilityViolations(page)).toEqual([]);
    await page.emulateMedia({ colorScheme: 'dark' });
    expect(await accessibilityViolations(page)).toEqual([]);
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('Stop ends a long answer early and keeps what was written', async () => {
    await setNumber(page, 'set-max-tokens', 400);
    await byId(page, 'chat-question').fill('Tell me a long story about the lighthouse.');
    await byId(page, 'chat-ask').click();
    await until(async () => ((await lastAnswer(page)).text.length > 0 ? true : undefined), 'the first words', 60_000, 50);
    await byId(page, 'chat-stop').click();
    const a = await until(async () => {
      const v = await lastAnswer(page);
      return v.state === 'streaming' ? undefined : v;
    }, 'the stopped answer');
    expect(a.state).toBe('stopped');
    expect(a.text.length).toBeGreaterThan(0);
    expect(await page.locator('#chat-log article.turn').last().locator('.metrics').getAttribute('data-finish-reason')).toBe('aborted');
    expect(await byId(page, 'chat-ask').isEnabled()).toBe(true);
    await setNumber(page, 'set-max-tokens', 32);
  });

  it('after a reload both documents are listed as cached; asking again reuses their chunks from IndexedDB, in the UI and on the chart', async () => {
    await page.reload();
    await page.waitForFunction(() => window.chunklmReady !== undefined);
    await page.evaluate(async () => void (await window.chunklmReady));
    await loadModel(page);
    await waitCached(page, 'The lighthouse keeper');
    await waitCached(page, 'The red kite');
    const again = await ask(page, QUESTION);
    expect(again.answer.state).toBe('done');
    expect(again.answer.reused).toBeGreaterThan(0);
    expect(again.answer.sources.length).toBeGreaterThan(0);
    expect(again.answer.sources.every((s) => s === 'store')).toBe(true);
    ttft.store = again.answer.ttftMs;
    // The chart kept the earlier answers and drew this one from IndexedDB.
    const bars = await page.locator('#ttft-chart g.bar').evaluateAll((gs) =>
      gs.map((g) => ({ ttft: Number(g.getAttribute('data-ttft-ms')), method: g.getAttribute('data-method'), source: g.getAttribute('data-source') })),
    );
    expect(bars.length).toBeGreaterThanOrEqual(4);
    expect(bars[0]).toMatchObject({ method: 'full', source: 'computed' });
    expect(bars.at(-1)).toMatchObject({ method: 'attnlink', source: 'store', ttft: Number(again.answer.ttftMs.toFixed(1)) });
    // Timings are reported, not asserted (SwiftShader on a shared CPU): see the printed line.
    process.stdout.write(
      `app: TTFT full prefill ${ttft.full.toFixed(0)} ms; attnlink from the GPU tier ${ttft.gpu.toFixed(0)} ms; after a reload, from IndexedDB ${ttft.store.toFixed(0)} ms (SwiftShader)\n`,
    );
    await snap(page, '05-after-reload');
  });

  it('a garbage file given as a model and a corrupt .pdf each give a clear message, and the page keeps working', async () => {
    await byId(page, 'model-change').click();
    await byId(page, 'model-file').setInputFiles({ name: 'garbage.gguf', mimeType: 'application/octet-stream', buffer: Buffer.from('this is not a model file at all, just text '.repeat(40)) });
    await byId(page, 'model-load').click();
    const modelError = byId(page, 'model-error');
    await until(async () => ((await modelError.count()) > 0 ? true : undefined), 'the model error');
    expect(await modelError.getAttribute('data-code')).toBe('bad-magic');
    expect((await modelError.textContent()) ?? '').toMatch(/GGUF/);

    await addFiles(page, [{ name: 'broken.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage') }]);
    const docError = byId(page, 'documents-error');
    await until(async () => ((await docError.count()) > 0 ? true : undefined), 'the document error');
    expect(await docError.getAttribute('data-code')).toBe('bad-pdf');
    expect((await docError.textContent()) ?? '').toMatch(/broken\.pdf/);
    await snap(page, '06-errors');

    // The page goes on: the real model loads again and answers from the stored documents.
    await byId(page, 'model-file').setInputFiles([]);
    await loadModel(page);
    const after = await ask(page, QUESTION);
    expect(after.answer.state).toBe('done');
    expect(after.answer.reused).toBeGreaterThan(0);
    expect(problems.filter((p) => !/Failed to load resource/.test(p))).toEqual([]);
  });
});

describe.skipIf(!model)('the demo from the keyboard alone', { timeout: 400_000 }, () => {
  let browser: Browser;

  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  /** The id of the focused element, through shadow roots. */
  const focusedId = (page: Page): Promise<string> =>
    page.evaluate(() => {
      let el: Element | null = document.activeElement;
      while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
      return el?.id ?? '';
    });

  /** Presses Tab until the element with `id` has focus (at most `max` presses). */
  async function tabTo(page: Page, id: string, max = 80): Promise<number> {
    for (let i = 0; i < max; i++) {
      if ((await focusedId(page)) === id) return i;
      await page.keyboard.press('Tab');
    }
    throw new Error(`#${id} never got the focus in ${max} Tab presses (last: #${await focusedId(page)})`);
  }

  it('loads the model, adds a document, asks and gets an answer, with Tab, typing and Enter only', async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await openApp(context, []);
    await expect.poll(() => byId(page, 'model-preset-stories260k').isChecked(), { timeout: 30_000 }).toBe(true);
    await tabTo(page, 'model-load');
    await page.keyboard.press('Enter');
    await until(async () => ((await byId(page, 'model-status').getAttribute('data-state')) === 'ready' ? true : undefined), 'the model', 180_000);

    await tabTo(page, 'doc-text');
    await page.keyboard.type('Sam the cat lived in a blue house by the river. Every morning Sam drank milk and watched the boats.');
    await tabTo(page, 'doc-add');
    await page.keyboard.press('Enter');
    await until(async () => ((await page.locator('#documents-list li').count()) > 0 ? true : undefined), 'the document', 60_000);

    await tabTo(page, 'chat-question');
    await page.keyboard.type('Where did Sam live?');
    await page.keyboard.press('Enter');
    const a = await until(async () => {
      const turn = page.locator('#chat-log article.turn').last();
      if ((await turn.count()) === 0) return undefined;
      const state = await turn.getAttribute('data-state');
      return state === 'done' ? ((await turn.locator('.answer').textContent()) ?? '') : undefined;
    }, 'the answer', 240_000);
    expect(a.trim().length).toBeGreaterThan(0);
    // Focus comes back to the question box, ready for the next one.
    expect(await focusedId(page)).toBe('chat-question');
    await snap(page, '07-keyboard');
    await context.close();
  });
});
