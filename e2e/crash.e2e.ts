// Crash safety of the documents store in Chromium. A browser SIGKILLed while documents are added
// and removed must come back with whole documents only: each listed one answers from stored
// chunks, none is half there, every add or remove that had resolved before the kill holds, and
// the chunks no manifest names are collected. Damaged records are misses: recomputed, counted,
// and stored again.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ChunkSource } from '../src/engine/types.ts';
import { missingShared, sharedFile } from '../test/helpers/shared.ts';
import { launchChromium, openPage, until } from './browser.ts';
import {
  addDocuments,
  ask,
  damageRecords,
  describeChunks,
  documentStats,
  evictCaches,
  explain,
  indexedDbFiles,
  leveldbManifestNumber,
  listDocuments,
  loadModel,
  recordSizes,
  startChromium,
  storeProblems,
  storeSnapshot,
  tempDir,
  type OwnChromium,
} from './profile.ts';

const baseURL = inject('baseURL');
const model = sharedFile('models/stories260K.gguf');
const skipReason = model ? 'stories260K' : missingShared('models/stories260K.gguf');

/** Kills (and restarts after each); every cycle costs a browser start and a model load. */
const KILLS = 20;
/** Kill points are spread over this long after the add/remove loop starts. */
const MAX_KILL_DELAY_MS = 2500;

// Two chunks per document (a heading ends a chunk once it holds 64 tokens): its own section, then
// a section every document shares, so that removing one document must keep the shared chunk.
const OWN_SECTION = '# Day {n}\nOn day {n} a little bird came to the garden. It sang a happy song and ate some seeds. Lily smiled and waved at the bird.\n\n';
const SHARED_SECTION = '# The garden\nLily had a small garden behind the house. She grew red flowers and tall green beans there. Every morning she gave them water from a blue can.\n';

/** What the page's add/remove loop had finished when the test looked, just before the kill. */
interface LoopState {
  added: string[];
  removed: string[];
  /** The last operation started ('add c3-d1', 'remove c2-d0'); under way unless listed above. */
  phase: string;
  /** Set by the test as it takes its last look: no operation starts after it. */
  stop: boolean;
  error?: string;
}

describe.skipIf(!model)(`documents under SIGKILL of the browser (${skipReason})`, () => {
  let profile: ReturnType<typeof tempDir> | undefined;
  let chrome: OwnChromium | undefined;
  afterAll(async () => {
    await chrome?.kill();
    profile?.remove();
  });

  it(`${KILLS} kills while documents are added and removed leave only whole documents`, async () => {
    const mustList = new Set<string>(); // adds that had resolved, not removed since
    const mustNotList = new Set<string>(); // removes that had resolved
    const phases: string[] = [];
    let collected = 0;
    const loadMs: number[] = [];
    let pendingSeen = 0;
    let lastStorageLog: string[] = [];
    let manifestBefore: number | undefined;
    const resets: string[] = [];
    const t0 = Date.now();
    profile = tempDir('crash');
    for (let cycle = 0; cycle <= KILLS; cycle++) {
      chrome = await startChromium(profile.dir);
      const { page, problems } = await openPage(chrome.context, baseURL);
      const where = cycle === 0 ? 'at the first start' : `after kill ${cycle} of ${KILLS} (killed during '${phases.at(-1)}')`;
      const tLoad = Date.now();
      await loadModel(page);
      loadMs.push(Date.now() - tLoad);

      // The page's store is IndexedDB (a memory store standing in would list nothing).
      const opened = await documentStats(page);
      expect(opened.tiers.store.name, `${where}: the store the page opened; warnings: ${opened.warnings.join(' | ')}${explain(problems)}`).toBe('indexeddb:chunklm');
      // Chromium sometimes finds the LevelDB under IndexedDB damaged after a SIGKILL and creates
      // it afresh, discarding every database of the origin: nothing a page can prevent or undo.
      // Such a reset is counted and the promises of the cycles before it are void; the store must
      // still be consistent (it is then empty), and the next cycles hold the code to them again.
      const sentinel = await readSentinel(page);
      if (cycle > 0 && sentinel === undefined) {
        resets.push(
          `after kill ${cycle}: the sentinel database is gone, LevelDB MANIFEST ${manifestBefore ?? 'none'} → ${leveldbManifestNumber(profile.dir) ?? 'none'}; ` +
            `the browser logged: ${chrome.storageLog().join(' / ') || 'nothing about storage'}`,
        );
        mustList.clear();
        mustNotList.clear();
      }
      // Everything that resolved before the kill holds; whatever is listed is whole.
      const listed = await listDocuments(page);
      const ids = listed.map((d) => d.id);
      const lost = [...mustList].filter((id) => !ids.includes(id));
      if (lost.length > 0) {
        const snap = await storeSnapshot(page);
        expect.fail(
          `${where}: ${lost.map((id) => `'${id}'`).join(', ')} had been added (the add resolved) but ${lost.length === 1 ? 'is' : 'are'} not listed; ` +
            `listed [${ids.join(', ')}]; the store holds ${snap.manifests.length} manifests and ${snap.chunkIds.length} chunk records; ` +
            `warnings: ${opened.warnings.join(' | ') || 'none'}; IndexedDB folder: ${indexedDbFiles(profile.dir)}; ` +
            `the killed browser logged about storage: ${lastStorageLog.join(' / ') || 'nothing'}; this one: ${chrome.storageLog().join(' / ') || 'nothing'}${explain(problems)}`,
        );
      }
      for (const id of mustNotList) expect(ids, `${where}: '${id}' had been removed (its remove resolved) but is listed${explain(problems)}`).not.toContain(id);
      for (const d of listed) expect(d.storedChunks, `${where}: '${d.id}' lists ${d.chunks} chunks but ${d.storedChunks} stored${explain(problems)}`).toBe(d.chunks);
      const snapshot = await storeSnapshot(page);
      const { missing, orphans } = storeProblems(snapshot);
      expect(missing, `${where}: manifests name chunks that have no record${explain(problems)}`).toEqual([]);
      expect(orphans, `${where}: chunk records no manifest names survived the collection at load${explain(problems)}`).toEqual([]);
      pendingSeen = Math.max(pendingSeen, snapshot.manifests.filter((m) => m.pending).length);
      const stats = await documentStats(page);
      collected += stats.collected;
      expect(stats.documents, `${where}: stats().documents against documents.list()${explain(problems)}`).toBe(listed.length);

      // Each listed document answers from the store alone (the pool and memory tiers emptied first).
      const answers = await page.evaluate(async (docIds) => {
        const client = await window.chunklmReady!;
        const out: { id: string; sources: ChunkSource[]; tokens: number }[] = [];
        for (const id of docIds) {
          await client.documents.evict('gpu');
          await client.documents.evict('memory');
          const r = await client.generate({ documents: [id], question: 'What did the bird do?' }, { maxTokens: 1, temperature: 0, method: 'naive' }).result;
          out.push({ id, sources: (r.chunks ?? []).map((c) => c.source), tokens: r.tokens.length });
        }
        return out;
      }, ids);
      for (const a of answers) {
        expect(a.sources.length, `${where}: '${a.id}' answered with no chunks${explain(problems)}`).toBe(2);
        expect(a.sources, `${where}: '${a.id}' chunk sources${explain(problems)}`).toEqual(['store', 'store']);
      }
      if (cycle === KILLS) break;
      await writeSentinel(page, cycle);

      // A first answer builds the pipelines a chunk prefill uses, so that the first add of the
      // loop takes as long as the others (it would otherwise take most of the kill window).
      await page.evaluate(async () => {
        await (await window.chunklmReady!).generate('Once upon a time', { maxTokens: 1, temperature: 0 }).result;
      });
      // The loop: add a document, then remove the oldest while more than two are kept.
      await page.evaluate(
        ({ cycle, old, own, shared }) => {
          const state: LoopState = { added: [], removed: [], phase: 'starting', stop: false };
          (window as unknown as { crashLoop: LoopState }).crashLoop = state;
          void (async () => {
            const client = await window.chunklmReady!;
            const kept = [...old];
            for (let i = 0; !state.stop; i++) {
              const id = `c${cycle}-d${i}`;
              state.phase = `add ${id}`;
              await client.documents.add({ id, text: own.replaceAll('{n}', `${cycle}.${i}`) + shared });
              state.added.push(id);
              kept.push(id);
              while (kept.length > 2 && !state.stop) {
                const gone = kept.shift()!;
                state.phase = `remove ${gone}`;
                await client.documents.remove(gone);
                state.removed.push(gone);
              }
            }
          })().catch((err: unknown) => {
            state.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
          });
        },
        { cycle, old: ids, own: OWN_SECTION, shared: SHARED_SECTION },
      );
      // The last look stops the loop from starting anything new, so that only the operation under
      // way then can still end either way before the kill lands.
      const lastLook = (onlyDuringRemove: boolean) =>
        page.evaluate((onlyRemove) => {
          const st = (window as unknown as { crashLoop: LoopState }).crashLoop;
          if (!onlyRemove || st.phase.startsWith('remove') || st.error !== undefined) st.stop = true;
          return st;
        }, onlyDuringRemove);
      let state: LoopState;
      let when: string;
      if (cycle % 3 === 2) {
        // Aimed at a remove: killed as soon as one is seen under way (removes are short).
        const tLoop = Date.now();
        state = await until(async () => {
          const st = await lastLook(true);
          return st.stop ? st : undefined;
        }, `a remove in the loop of cycle ${cycle}`, 30_000, 2);
        when = `${Date.now() - tLoop} ms, aimed at a remove`;
      } else {
        // Kill points spread evenly over [0, MAX_KILL_DELAY_MS) by the golden ratio: no two alike.
        const delay = Math.floor(((cycle * 0.6180339887) % 1) * MAX_KILL_DELAY_MS);
        await page.waitForTimeout(delay);
        state = await lastLook(false);
        when = `${delay} ms`;
      }
      await chrome.kill();
      lastStorageLog = chrome.storageLog();
      chrome = undefined;
      manifestBefore = leveldbManifestNumber(profile.dir);
      expect(state.error, `${where}: the add/remove loop failed before kill ${cycle + 1}${explain(problems)}`).toBeUndefined();
      for (const id of state.added) mustList.add(id);
      for (const id of state.removed) {
        mustList.delete(id);
        mustNotList.add(id);
      }
      const [op, target] = state.phase.split(' ');
      const underWay = (op === 'add' && !state.added.includes(target)) || (op === 'remove' && !state.removed.includes(target));
      phases.push(`${underWay ? state.phase : `idle after ${state.phase}`} after ${when}`);
      // A remove under way at the kill may or may not have happened.
      if (op === 'remove' && underWay) mustList.delete(target);
    }
    const sorted = [...loadMs].sort((x, y) => x - y);
    console.log(
      `crash: ${KILLS} kills in ${((Date.now() - t0) / 1000).toFixed(1)} s (model load after a restart: median ${sorted[sorted.length >> 1]} ms, max ${sorted.at(-1)} ms); ` +
        `${collected} orphan chunk records collected at load in all; at most ${pendingSeen} pending manifests of killed adds at once; ` +
        `${resets.length} resets of the origin's IndexedDB by the browser${resets.length > 0 ? ` (${resets.join('; ')})` : ''}; killed during: ${phases.join('; ')}`,
    );
    // A browser that discarded the store after most kills would leave nothing tested.
    expect(resets.length, `the browser reset its IndexedDB after ${resets.length} of ${KILLS} kills: ${resets.join('; ')}`).toBeLessThanOrEqual(KILLS / 4);
    // The kills landed inside both kinds of operation, not only between them.
    expect(phases.some((p) => p.startsWith('add')), `kill points: ${phases.join('; ')}`).toBe(true);
    expect(phases.some((p) => p.startsWith('remove')), `kill points: ${phases.join('; ')}`).toBe(true);
  }, 900_000);
});

const SENTINEL_DB = 'crash-sentinel';

/** Writes the cycle number into a database of the test's own (strict durability): chunklm never touches it. */
function writeSentinel(page: Page, cycle: number): Promise<void> {
  return page.evaluate(
    ({ name, cycle }) =>
      new Promise<void>((resolve, reject) => {
        const r = indexedDB.open(name, 1);
        r.onupgradeneeded = () => r.result.createObjectStore('s');
        r.onerror = () => reject(r.error);
        r.onsuccess = () => {
          const db = r.result;
          const tx = db.transaction('s', 'readwrite', { durability: 'strict' });
          tx.objectStore('s').put(cycle, 'cycle');
          tx.oncomplete = () => {
            db.close();
            resolve();
          };
          tx.onerror = () => reject(tx.error);
        };
      }),
    { name: SENTINEL_DB, cycle },
  );
}

/** The cycle number the sentinel database holds, or undefined when the database is gone. */
function readSentinel(page: Page): Promise<number | undefined> {
  return page.evaluate(async (name) => {
    if (!(await indexedDB.databases()).some((d) => d.name === name)) return undefined;
    return new Promise<number | undefined>((resolve, reject) => {
      const r = indexedDB.open(name, 1);
      r.onupgradeneeded = () => r.result.createObjectStore('s');
      r.onerror = () => reject(r.error);
      r.onsuccess = () => {
        const db = r.result;
        const get = db.transaction('s', 'readonly').objectStore('s').get('cycle');
        get.onsuccess = () => {
          db.close();
          resolve(typeof get.result === 'number' ? get.result : undefined);
        };
        get.onerror = () => reject(get.error);
      };
    });
  }, SENTINEL_DB);
}

describe.skipIf(!model)(`damaged chunk records in IndexedDB (${skipReason})`, () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('two flipped records and a truncated one are recomputed, counted and stored again', async () => {
    const { page, problems } = await openPage(browser, baseURL);
    await loadModel(page);
    await addDocuments(page, [
      { id: 'two-chunks', text: OWN_SECTION.replaceAll('{n}', '1') + SHARED_SECTION },
      { id: 'one-chunk', text: 'Tom had a big red ball. He liked to kick it in the park with his dog Max. One day the ball rolled into the pond.' },
    ]);
    const question = { documents: ['two-chunks', 'one-chunk'], question: 'What did Max do?' };
    const opts = { maxTokens: 8, temperature: 0, method: 'naive' as const };
    await evictCaches(page);
    const clean = await ask(page, question, opts);
    expect(clean.chunks?.map((c) => c.source), `before damage: ${describeChunks(clean)}${explain(problems)}`).toEqual(['store', 'store', 'store']);
    const ids = clean.chunks!.map((c) => c.id);
    const before = (await documentStats(page)).corrupt;

    const damaged = await damageRecords(page, [
      { id: ids[0], kind: 'flip' },
      { id: ids[1], kind: 'truncate' },
      { id: ids[2], kind: 'flip' },
    ]);
    expect(damaged[1].after, 'the truncated record is shorter').toBeLessThan(damaged[1].before);

    await evictCaches(page);
    const hurt = await ask(page, question, opts);
    const what = `after damage: ${describeChunks(hurt)}${explain(problems)}`;
    expect(hurt.tokens.length, what).toBeGreaterThan(0);
    expect(hurt.chunks?.map((c) => c.source), what).toEqual(['computed', 'computed', 'computed']);
    // Recomputed KV is the KV that was stored: the same answer.
    expect(hurt.tokens, `${what}; clean answer '${clean.text}', after damage '${hurt.text}'`).toEqual(clean.tokens);
    expect((await documentStats(page)).corrupt - before, `stats().corrupt counts the damaged records; ${what}`).toBe(3);

    // The recomputed records were written back: whole again, and the next answer reads them.
    const sizes = await recordSizes(page, ids);
    damaged.forEach((d, i) => expect(sizes[i], `record ${d.id} stored whole again`).toBe(d.before));
    await evictCaches(page);
    const healed = await ask(page, question, opts);
    expect(healed.chunks?.map((c) => c.source), `after the rewrite: ${describeChunks(healed)}${explain(problems)}`).toEqual(['store', 'store', 'store']);
    expect(healed.tokens).toEqual(clean.tokens);
    expect((await documentStats(page)).corrupt - before, 'no further corrupt records').toBe(3);
    expect(problems, 'console errors').toEqual([]);
    await page.close();
  }, 300_000);
});
