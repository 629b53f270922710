// Two tabs of one origin share the documents store: each tab has its own Worker and engine over
// the same IndexedDB. Adding and removing in both at once, with documents that share chunks, must
// leave one consistent store, the same list in both tabs, and each tab told of the other's changes.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StoreChange } from '../src/kv/store.ts';
import { missingShared, sharedFile } from '../test/helpers/shared.ts';
import { launchChromium, openPage } from './browser.ts';
import { ask, describeChunks, evictCaches, explain, listDocuments, loadModel, nonChunkTokens, storeProblems, storeSnapshot } from './profile.ts';

const baseURL = inject('baseURL');
const model = sharedFile('models/stories260K.gguf');

const ROUNDS = 8;
// Every document: one of three sections (so documents of both tabs share them), then a section
// every document shares. Two chunks each.
const SECTIONS = [
  '# The bird\nA little bird came to the garden. It sang a happy song and ate some seeds. Lily smiled and waved at the bird all day long.\n\n',
  '# The cat\nA big grey cat sat on the wall of the garden. It looked at the bird and licked its paws. Then it went to sleep in the warm sun.\n\n',
  '# The rain\nOne day dark clouds came over the garden. Big drops of rain fell on the flowers. Lily ran inside and watched from the window.\n\n',
];
const SHARED_SECTION = '# The garden\nLily had a small garden behind the house. She grew red flowers and tall green beans there. Every morning she gave them water from a blue can.\n';

interface Op {
  op: 'add' | 'remove';
  id: string;
}

/** Starts collecting the changes this tab's client is told of (other tabs' adds and removes). */
function recordChanges(page: Page): Promise<void> {
  return page.evaluate(async () => {
    const client = await window.chunklmReady!;
    const seen: StoreChange[] = [];
    (window as unknown as { changes: StoreChange[] }).changes = seen;
    client.documents.onChange((c) => seen.push({ kind: c.kind, ids: [...c.ids] }));
  });
}

function changesSeen(page: Page): Promise<StoreChange[]> {
  return page.evaluate(() => (window as unknown as { changes: StoreChange[] }).changes);
}

/** Adds `${tab}-0..ROUNDS-1`, removing every other one right after the next is added. */
function addRemoveLoop(page: Page, tab: string): Promise<Op[]> {
  return page.evaluate(
    async ({ tab, rounds, sections, shared }) => {
      const client = await window.chunklmReady!;
      const log: Op[] = [];
      for (let i = 0; i < rounds; i++) {
        const id = `${tab}-${i}`;
        await client.documents.add({ id, text: sections[i % sections.length] + shared });
        log.push({ op: 'add', id });
        if (i % 2 === 1) {
          const gone = `${tab}-${i - 1}`;
          await client.documents.remove(gone);
          log.push({ op: 'remove', id: gone });
        }
      }
      return log;
    },
    { tab, rounds: ROUNDS, sections: SECTIONS, shared: SHARED_SECTION },
  );
}

/** Whether `changes` tells of every operation in `ops` (an add as 'added' or 'updated'). */
function untold(ops: readonly Op[], changes: readonly StoreChange[]): Op[] {
  return ops.filter(({ op, id }) => !changes.some((c) => c.ids.includes(id) && (op === 'remove' ? c.kind === 'removed' : c.kind === 'added' || c.kind === 'updated')));
}

/** The operations of `ops` a tab has not been told of after waiting up to 10 s for the messages. */
async function untoldAfterWaiting(page: Page, ops: readonly Op[]): Promise<Op[]> {
  const end = Date.now() + 10_000;
  for (;;) {
    const left = untold(ops, await changesSeen(page));
    if (left.length === 0 || Date.now() > end) return left;
    await page.waitForTimeout(100);
  }
}

describe.skipIf(!model)(`two tabs of one origin (${model ? 'stories260K, one context, two Workers' : missingShared('models/stories260K.gguf')})`, () => {
  let browser: Browser;
  let context: BrowserContext;
  beforeAll(async () => {
    browser = await launchChromium();
    context = await browser.newContext();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('adding and removing in both tabs at once leaves a consistent store that both tabs list alike', async () => {
    const a = await openPage(context, baseURL);
    const b = await openPage(context, baseURL);
    const problems = (): string => explain([...a.problems.map((p) => `A ${p}`), ...b.problems.map((p) => `B ${p}`)]);
    await Promise.all([loadModel(a.page), loadModel(b.page)]);
    await Promise.all([recordChanges(a.page), recordChanges(b.page)]);

    const [opsA, opsB] = await Promise.all([addRemoveLoop(a.page, 'A'), addRemoveLoop(b.page, 'B')]);

    // Each tab is told of the other's changes (BroadcastChannel between the Workers).
    expect(await untoldAfterWaiting(b.page, opsA), `changes of tab A that tab B's onChange never heard of${problems()}`).toEqual([]);
    expect(await untoldAfterWaiting(a.page, opsB), `changes of tab B that tab A's onChange never heard of${problems()}`).toEqual([]);

    // One store: every chunk a manifest names has its record.
    const snapshot = await storeSnapshot(a.page);
    const { missing, orphans } = storeProblems(snapshot);
    expect(missing, `chunks named by manifests but absent from chunklm-chunks${problems()}`).toEqual([]);
    expect(snapshot.manifests.filter((m) => m.pending).map((m) => m.id), `pending manifests left when every add has resolved${problems()}`).toEqual([]);
    const named = new Set(snapshot.manifests.flatMap((m) => m.chunks.map((c) => c.id)));
    console.log(`tabs: ${snapshot.manifests.length} documents, ${named.size} chunks named, ${snapshot.chunkIds.length} records (${orphans.length} named by none, collected at the next load)`);

    // Both tabs list the same documents: what was added and not removed.
    const expected = [...opsA, ...opsB]
      .filter((o) => o.op === 'add')
      .map((o) => o.id)
      .filter((id) => ![...opsA, ...opsB].some((o) => o.op === 'remove' && o.id === id))
      .sort();
    const [listA, listB] = await Promise.all([listDocuments(a.page), listDocuments(b.page)]);
    const summary = (l: typeof listA) => l.map((d) => `${d.id}:${d.storedChunks}/${d.chunks}`).sort();
    expect(listA.map((d) => d.id).sort(), `documents listed in tab A${problems()}`).toEqual(expected);
    expect(summary(listB), `tab B lists what tab A lists${problems()}`).toEqual(summary(listA));
    for (const d of listA) expect(d.storedChunks, `'${d.id}' stored chunks${problems()}`).toBe(d.chunks);

    // Every document answers from the store in either tab (the pool and memory tiers emptied first).
    for (const { page } of [a, b]) {
      await evictCaches(page);
      const r = await ask(page, { documents: 'all', question: 'What did Lily grow?' }, { maxTokens: 4, temperature: 0, method: 'naive' });
      const what = `${page === a.page ? 'tab A' : 'tab B'}: ${describeChunks(r)}${problems()}`;
      expect(r.chunks?.length, what).toBe(2 * expected.length);
      // Documents share chunks: a chunk's first use reads the store, its repeats map the same pages.
      const firstUse = new Map<string, string>();
      for (const c of r.chunks ?? []) if (!firstUse.has(c.id)) firstUse.set(c.id, c.source);
      expect([...firstUse.values()], what).toEqual([...firstUse.values()].map(() => 'store'));
      expect(r.computedTokens, `${what}; tokens computed besides BOS and the question`).toBe(nonChunkTokens(r));
    }
    expect([...a.problems, ...b.problems], 'console errors').toEqual([]);
  }, 300_000);
});
