// Storage room in Chromium: the store's default budget comes from navigator.storage.estimate();
// a small budget set through the client evicts the least recently used chunks of unpinned
// documents (pinned ones stay); and when the browser itself refuses a write for room
// (QuotaExceededError, here from a quota lowered over CDP), the answer goes on with a warning.
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { missingShared, sharedFile } from '../test/helpers/shared.ts';
import { launchChromium, openPage } from './browser.ts';
import { addDocuments, ask, describeChunks, documentStats, evictCaches, explain, listDocuments, loadModel } from './profile.ts';

const baseURL = inject('baseURL');
const model = sharedFile('models/stories260K.gguf');

/** One chunk each, about the same length. */
const DOCS = [
  { id: 'old', text: 'Lily had a small garden behind the house. She grew red flowers and tall green beans. Every morning she gave them water.' },
  { id: 'middle', text: 'Tom had a big red ball. He liked to kick it in the park with his dog Max. One day the ball rolled into the pond.' },
  { id: 'new', text: 'Mom baked a warm apple cake for Sue. The kitchen smelled sweet. Sue helped her put the plates on the table.' },
];
const PINNED = { id: 'pinned', text: 'Ben found a shiny stone by the river. He put it in his pocket and ran home to show it to his sister Ann.', pin: true };

describe.skipIf(!model)(`storage room (${model ? 'stories260K' : missingShared('models/stories260K.gguf')})`, () => {
  let browser: Browser;
  let context: BrowserContext;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('the default budget derives from navigator.storage.estimate(); a small budget evicts unpinned chunks, oldest first', async () => {
    context = await browser.newContext();
    const { page, problems } = await openPage(context, baseURL);
    await loadModel(page);
    const estimate = await page.evaluate(() => navigator.storage.estimate());
    const { store } = (await documentStats(page)).tiers;
    console.log(`quota: estimate ${JSON.stringify(estimate)}; store budget ${store.budgetBytes} bytes, quota ${store.quotaBytes}, usage ${store.usageBytes}, persisted ${store.persisted}`);
    expect(store.quotaBytes, `stats().tiers.store.quotaBytes${explain(problems)}`).toBeGreaterThan(0);
    expect(Number.isFinite(store.budgetBytes) && store.budgetBytes > 0, `budgetBytes ${store.budgetBytes}${explain(problems)}`).toBe(true);
    // Half the quota the store read at load (the quota the page reads now may have moved a little).
    expect(store.budgetBytes).toBeLessThanOrEqual(store.quotaBytes!);
    expect(Math.abs(store.budgetBytes - store.quotaBytes! / 2), `budget ${store.budgetBytes} vs quota ${store.quotaBytes}`).toBeLessThanOrEqual(store.quotaBytes! * 0.01);
    expect(typeof store.persisted, `stats().tiers.store.persisted${explain(problems)}`).toBe('boolean');

    const infos = await addDocuments(page, [...DOCS, PINNED]);
    const record = Math.max(...infos.map((d) => d.bytes));
    const pinnedBytes = infos[3].bytes;
    // Room for the pinned document and one more record: the two oldest unpinned ones go.
    const budget = pinnedBytes + record + Math.floor(record / 2);
    await page.evaluate(async (bytes) => (await window.chunklmReady!).documents.setBudget(bytes), budget);
    const stats = await documentStats(page);
    const listed = new Map((await listDocuments(page)).map((d) => [d.id, d]));
    const stored = [...listed.values()].map((d) => `${d.id}:${d.storedChunks}/${d.chunks}`).join(', ');
    const what = `budget ${budget} bytes (records ${infos.map((d) => d.bytes).join('/')}): ${stored}${explain(problems)}`;
    expect(stats.tiers.store.budgetBytes, what).toBe(budget);
    expect(stats.tiers.store.bytes, what).toBeLessThanOrEqual(budget);
    expect(stats.evictions.store, what).toBe(2);
    expect(listed.size, `every document stays listed; ${what}`).toBe(4);
    expect(listed.get('pinned')?.storedChunks, what).toBe(1);
    expect(listed.get('new')?.storedChunks, what).toBe(1);
    expect(listed.get('old')?.storedChunks, what).toBe(0);
    expect(listed.get('middle')?.storedChunks, what).toBe(0);

    // An evicted document still answers: its chunk is computed again.
    await evictCaches(page);
    const r = await ask(page, { documents: ['old', 'pinned'], question: 'What did Ben find?' }, { maxTokens: 4, temperature: 0, method: 'naive' });
    expect(r.chunks?.map((c) => c.source), `${describeChunks(r)}${explain(problems)}`).toEqual(['computed', 'store']);
    expect((await documentStats(page)).tiers.store.bytes, 'the store stays within the budget after the answer stores its chunk').toBeLessThanOrEqual(budget);
    expect(problems, 'console errors').toEqual([]);
    await context.close();
  }, 300_000);

  it('writes the browser refuses for room (QuotaExceededError) end in warnings, not failures, and are stored once there is room', async () => {
    context = await browser.newContext();
    const { page, problems } = await openPage(context, baseURL);
    await loadModel(page);
    // Chromium keeps to a quota set over CDP (navigator.storage.estimate() still reports the real one).
    const cdp = await context.newCDPSession(page);
    const origin = new URL(baseURL).origin;
    const { usage } = await page.evaluate(() => navigator.storage.estimate());
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: (usage ?? 0) + 64 * 1024 });

    // Documents of one chunk (~50 KB of KV each) until a write is refused.
    const outcomes = await page.evaluate(async () => {
      const client = await window.chunklmReady!;
      const out: { id: string; storedChunks?: number; warnings?: string[]; error?: { name: string; code: unknown } }[] = [];
      for (let i = 0; i < 10 && !out.some((o) => o.warnings || o.error); i++) {
        const id = `day-${i}`;
        const text = `# Day ${i}\nOn day ${i} a little bird came to the garden. It sang a happy song and ate some seeds. Lily smiled and waved at the bird all day long.\n`;
        try {
          const info = await client.documents.add({ id, text });
          out.push({ id, storedChunks: info.storedChunks, ...(info.warnings ? { warnings: info.warnings } : {}) });
        } catch (err) {
          const e = err as { name?: unknown; code?: unknown };
          out.push({ id, error: { name: String(e.name), code: e.code } });
        }
      }
      return out;
    });
    const what = `adds under a ${64} KiB quota: ${JSON.stringify(outcomes)}${explain(problems)}`;
    const refused = outcomes.find((o) => o.warnings || o.error);
    expect(refused, `no write was refused; ${what}`).toBeDefined();
    if (refused?.error) {
      // The manifest itself was refused: a typed error, and the document is not listed.
      expect(refused.error, what).toEqual({ name: 'StorageError', code: 'quota-exceeded' });
    } else {
      // A chunk record was refused: the document is kept, its chunk unstored, with a warning.
      expect(refused?.storedChunks, what).toBe(0);
      expect(refused?.warnings?.join(' '), what).toMatch(/lack of room.*computed again when next used/);
    }
    const stats = await documentStats(page);
    console.log(`quota exceeded after ${outcomes.length} adds: ${JSON.stringify(refused)}; store evictions ${stats.evictions.store}, store ${stats.tiers.store.bytes} bytes`);
    expect(stats.evictions.store, `the engine evicted before it retried the refused write; ${what}`).toBeGreaterThan(0);
    expect(stats.warnings.length, what).toBeGreaterThan(0);

    // Answers go on: a chunk that cannot be stored is computed, with a warning.
    const listed = await listDocuments(page);
    await evictCaches(page);
    const r = await ask(page, { documents: 'all', question: 'What did the bird eat?' }, { maxTokens: 4, temperature: 0, method: 'naive' });
    const answerWhat = `${describeChunks(r)}; warnings ${JSON.stringify(r.warnings)}${explain(problems)}`;
    expect(r.tokens.length, answerWhat).toBeGreaterThan(0);
    expect(r.chunks?.length, answerWhat).toBe(listed.length);
    const unstored = listed.filter((d) => d.storedChunks < d.chunks).map((d) => d.id);
    expect(unstored.length, `documents with unstored chunks: ${listed.map((d) => `${d.id}:${d.storedChunks}/${d.chunks}`).join(', ')}`).toBeGreaterThan(0);
    for (const c of r.chunks ?? []) if (unstored.includes(c.document ?? '')) expect(c.source, answerWhat).toBe('computed');

    // Room again: the next answer stores what it computes, and the one after reads it.
    await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    await evictCaches(page);
    const stored = await ask(page, { documents: 'all', question: 'What did the bird eat?' }, { maxTokens: 4, temperature: 0, method: 'naive' });
    expect(stored.warnings, `${describeChunks(stored)}${explain(problems)}`).toBeUndefined();
    await evictCaches(page);
    const fromStore = await ask(page, { documents: 'all', question: 'What did the bird eat?' }, { maxTokens: 4, temperature: 0, method: 'naive' });
    expect(fromStore.chunks?.map((c) => c.source), `${describeChunks(fromStore)}${explain(problems)}`).toEqual(listed.map(() => 'store'));
    expect((await listDocuments(page)).every((d) => d.storedChunks === d.chunks), 'every document stored once there is room').toBe(true);
    await context.close();
  }, 300_000);
});
