// A .kvpack made on Node by the CLI (`chunklm pack`) is imported by URL in the page and answers
// without any chunk prefill: the chunks Dawn computed on Node are the ones the browser would name.
// (A pack for another model is refused: covered by the Node tests.)
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { missingShared, projectRoot, sharedFile } from '../test/helpers/shared.ts';
import { launchChromium, openPage, until } from './browser.ts';
import { addDocuments, ask, describeChunks, explain, listDocuments, loadModel, nonChunkTokens, tempDir } from './profile.ts';

const baseURL = inject('baseURL');
const model = sharedFile('models/stories260K.gguf');

// Two chunks: a heading ends a chunk once it holds 64 tokens.
const TEXT =
  '# The garden\nLily had a small garden behind the house. She grew red flowers and tall green beans there. Every morning she gave them water from a blue can.\n\n' +
  '# The bird\nA little bird came to the garden. It sang a happy song and ate some seeds. Lily smiled and waved at the bird all day long.\n';
const PACK_ID = 'packed-garden';

describe.skipIf(!model)(`.kvpack from the CLI, imported in the page (${model ? 'stories260K' : missingShared('models/stories260K.gguf')})`, () => {
  let work: ReturnType<typeof tempDir> | undefined;
  // Served by Vite at /models/ (public/models/ is git-ignored).
  const packName = `e2e-${process.pid}-${PACK_ID}.kvpack`;
  const packPath = join(projectRoot, 'public', 'models', packName);
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    rmSync(packPath, { force: true });
    work?.remove();
  });

  it('chunklm pack writes a .kvpack; documents.import(url) adds it and the answer computes no chunk', async () => {
    work = tempDir('kvpack');
    const docPath = join(work.dir, 'garden.txt');
    writeFileSync(docPath, TEXT);
    mkdirSync(join(projectRoot, 'public', 'models'), { recursive: true });
    const t0 = Date.now();
    const cli = spawnSync(process.execPath, ['bin/chunklm.mjs', 'pack', '--model', model as string, '--out', packPath, '--id', PACK_ID, docPath], {
      cwd: projectRoot,
      encoding: 'utf8',
      timeout: 240_000,
    });
    console.log(`kvpack: chunklm pack took ${Date.now() - t0} ms: ${cli.stdout.trim()}`);
    expect(cli.status, `chunklm pack failed (status ${cli.status}, signal ${cli.signal}): ${cli.stderr}${cli.error ? ` ${cli.error.message}` : ''}`).toBe(0);

    // Vite learns of a new file in public/ through its watcher: wait until it serves it.
    const url = new URL(`models/${packName}`, baseURL).href;
    await until(async () => ((await fetch(url, { method: 'HEAD' })).ok ? true : undefined), `Vite to serve ${url}`, 10_000, 100);

    const { page, problems } = await openPage(browser, baseURL);
    await loadModel(page);
    const info = await page.evaluate(async (href) => (await window.chunklmReady!).documents.import(href), `/models/${packName}`);
    expect(info.id, explain(problems)).toBe(PACK_ID);
    expect(info.chunks, `chunks of the imported document${explain(problems)}`).toBe(2);
    expect(info.storedChunks, `stored chunks of the imported document${explain(problems)}`).toBe(info.chunks);
    expect(info.currentModel, `the pack's chunks are for the loaded model and settings${explain(problems)}`).toBe(true);
    expect((await listDocuments(page)).map((d) => d.id), explain(problems)).toEqual([PACK_ID]);

    const r = await ask(page, { documents: [PACK_ID], question: 'What did Lily grow?' }, { maxTokens: 8, temperature: 0, method: 'naive' });
    const what = `answer over the imported pack: ${describeChunks(r)}${explain(problems)}`;
    expect(r.tokens.length, what).toBeGreaterThan(0);
    expect(r.chunks?.map((c) => c.source), what).toEqual(['store', 'store']);
    expect(r.computedTokens, `${what}; tokens computed besides BOS and the question`).toBe(nonChunkTokens(r));

    // The browser names the same text's chunks as Node did: adding it computes none of them.
    const [again] = await addDocuments(page, [{ id: 'added-garden', text: TEXT }]);
    expect(again.computedChunks, `chunks the page computed for the text the pack holds${explain(problems)}`).toBe(0);
    expect(problems, 'console errors').toEqual([]);
  }, 300_000);
});
