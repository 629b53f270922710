// Documents outlive the browser: a profile on disk (launchPersistentContext) keeps the Worker's
// IndexedDB store, so a second browser run answers from stored chunk KV without computing any.
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { GenerationResult } from '../src/engine/types.ts';
import { missingShared, sharedFile } from '../test/helpers/shared.ts';
import { chromiumPath } from '../scripts/setup.mjs';
import { chromiumArgs, openPage } from './browser.ts';
import { addDocuments, ask, describeChunks, evictCaches, explain, listDocuments, loadModel, nonChunkTokens, tempDir, type AskOptions } from './profile.ts';

const baseURL = inject('baseURL');
const model = sharedFile('models/stories260K.gguf');

const DOCS = [
  { id: 'garden', text: 'Lily had a small garden behind the house. She grew red flowers and tall green beans. Every morning she gave them water from a blue can.' },
  { id: 'ball', text: 'Tom had a big red ball. He liked to kick it in the park with his dog Max. One day the ball rolled into the pond and Max jumped in after it.' },
  { id: 'cake', text: 'Mom baked a warm apple cake for Sue. The kitchen smelled sweet. Sue helped her put the plates on the table and they ate it with milk.' },
];
const QUESTION = { documents: 'all' as const, question: 'Who jumped into the pond?' };
const METHODS: AskOptions[] = [
  { maxTokens: 16, temperature: 0, method: 'naive' },
  { maxTokens: 16, temperature: 0 }, // the default method (attnlink)
];

function openProfile(dir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(dir, { executablePath: chromiumPath, headless: true, args: chromiumArgs });
}

describe.skipIf(!model)(`documents across a browser restart (${model ? 'stories260K, one profile on disk' : missingShared('models/stories260K.gguf')})`, () => {
  let profile: ReturnType<typeof tempDir> | undefined;
  let context: BrowserContext | undefined;
  afterAll(async () => {
    await context?.close();
    profile?.remove();
  });

  it('a second browser run lists the documents and answers from stored chunks only, with the same tokens', async () => {
    // Session 1: read the documents and ask.
    profile = tempDir('persist');
    context = await openProfile(profile.dir);
    let { page, problems } = await openPage(context, baseURL);
    await loadModel(page);
    const added = await addDocuments(page, DOCS);
    expect(added.map((d) => d.id), `documents.add in session 1${explain(problems)}`).toEqual(DOCS.map((d) => d.id));
    for (const d of added) expect(d.storedChunks, `stored chunks of '${d.id}' after add${explain(problems)}`).toBe(d.chunks);
    const first: GenerationResult[] = [];
    for (const opts of METHODS) first.push(await ask(page, QUESTION, opts));
    for (const r of first) expect(r.tokens.length, `session 1 answer: '${r.text}'${explain(problems)}`).toBeGreaterThan(0);
    await context.close();
    context = undefined;

    // Session 2: a new browser on the same profile.
    context = await openProfile(profile.dir);
    ({ page, problems } = await openPage(context, baseURL));
    await loadModel(page);
    const listed = await listDocuments(page);
    expect(listed.map((d) => d.id).sort(), `documents.list() in session 2${explain(problems)}`).toEqual(DOCS.map((d) => d.id).sort());
    for (const d of listed) {
      expect(d.currentModel, `'${d.id}' made for the loaded model${explain(problems)}`).toBe(true);
      expect(d.storedChunks, `stored chunks of '${d.id}' in session 2${explain(problems)}`).toBe(d.chunks);
    }
    for (const [i, opts] of METHODS.entries()) {
      // The first answer leaves the chunks in the pool: empty it, so each method reads the store.
      await evictCaches(page);
      const again = await ask(page, QUESTION, opts);
      const what = `session 2, method ${opts.method ?? 'default'}: chunks ${describeChunks(again)}${explain(problems)}`;
      expect(again.chunks?.length, what).toBe(first[i].chunks?.length);
      expect(again.chunks?.every((c) => c.source === 'store'), what).toBe(true);
      expect(again.computedTokens, `${what}; computed tokens beyond BOS and question`).toBe(nonChunkTokens(again));
      expect(again.promptTokens, what).toEqual(first[i].promptTokens);
      expect(again.tokens, `${what}; session 1 said '${first[i].text}', session 2 '${again.text}'`).toEqual(first[i].tokens);
      console.log(
        `persistence (${opts.method ?? 'default'}): TTFT ${first[i].ttftMs.toFixed(1)} ms in session 1 (chunks ${first[i].chunks?.map((c) => c.source).join('/')}), ` +
          `${again.ttftMs.toFixed(1)} ms in session 2 (chunks from the store), ${again.promptTokens.length} prompt tokens`,
      );
    }
    expect(problems, 'console errors in session 2').toEqual([]);
  });
});
