// A store the browser discarded is told from a first visit: Chromium recreates an origin's
// IndexedDB that it finds damaged (see crash.e2e.ts), and the documents list is then empty. A
// marker in Cache Storage, written with the first document, lets the page say so in
// stats().warnings instead of silently showing no documents. Here the discard is done by hand
// (both databases deleted while the page is away), as the browser would do it at start-up.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { missingShared, sharedFile } from '../test/helpers/shared.ts';
import { launchChromium, openPage } from './browser.ts';
import { addDocuments, documentStats, explain, listDocuments, loadModel } from './profile.ts';

const baseURL = inject('baseURL');
const model = sharedFile('models/stories260K.gguf');

describe.skipIf(!model)(`a documents store the browser discarded (${model ? 'stories260K' : missingShared('models/stories260K.gguf')})`, () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('a first visit has no notice; a store recreated after documents were kept says the browser discarded them', async () => {
    const context = await browser.newContext();
    const { page, problems } = await openPage(context, baseURL);
    await loadModel(page);
    const first = await documentStats(page);
    expect(first.warnings.filter((w) => w.includes('discarded')), `first visit${explain(problems)}`).toEqual([]);
    await addDocuments(page, [{ id: 'garden', text: 'Lily had a small garden behind the house. She grew red flowers and tall green beans there.' }]);
    expect((await listDocuments(page)).map((d) => d.id)).toEqual(['garden']);

    // Away from the page (so no Worker holds the databases open), the browser drops them.
    await page.goto('about:blank');
    const other = await context.newPage();
    await other.goto(baseURL);
    await other.evaluate(async () => {
      for (const name of ['chunklm-chunks', 'chunklm-documents']) {
        await new Promise<void>((resolve, reject) => {
          const r = indexedDB.deleteDatabase(name);
          r.onsuccess = () => resolve();
          r.onerror = () => reject(r.error);
          r.onblocked = () => reject(new Error(`deleting ${name} was blocked`));
        });
      }
    });
    await other.close();

    await page.goto(baseURL);
    await loadModel(page);
    const after = await documentStats(page);
    expect(await listDocuments(page)).toEqual([]);
    const notice = after.warnings.find((w) => w.includes('discarded'));
    expect(notice, `warnings after the discard: ${JSON.stringify(after.warnings)}${explain(problems)}`).toMatch(/browser discarded the documents stored in this site's IndexedDB 'chunklm'.*add the documents again/);

    // The next visit (nothing discarded since) is quiet again.
    await page.reload();
    await loadModel(page);
    expect((await documentStats(page)).warnings.filter((w) => w.includes('discarded'))).toEqual([]);
    expect(problems, 'console errors').toEqual([]);
    await context.close();
  }, 300_000);
});
