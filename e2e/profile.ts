// Helpers for the browser tests of the documents store: profiles on disk that outlive a browser,
// a Chromium started (and SIGKILLed) by the test itself, the page-side calls on the demo's live
// client (window.chunklmReady), and raw IndexedDB reads and edits of the store behind the Worker.
import { PENDING_MANIFEST_PREFIX } from '../src/engine/documents.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { DocumentInfo, DocumentInput, DocumentsInput, DocumentStats, GenerateOptions, GenerationResult, ModelInfo } from '../src/engine/types.ts';
import { chromiumPath } from '../scripts/setup.mjs';
import { chromiumArgs } from './browser.ts';

/** Where the global setup serves stories260K (public/models/). */
export const MODEL_PATH = '/models/stories260K.gguf';

/** Options of a generate call that can cross page.evaluate (no signal). */
export type AskOptions = Omit<GenerateOptions, 'signal'>;

/** A failure message tail: the page's console errors and crashes, or that there were none. */
export function explain(problems: readonly string[]): string {
  return problems.length > 0 ? ` [page: ${problems.join(' | ')}]` : ' [no console errors on the page]';
}

/** A fresh temporary directory (a browser profile, files for the CLI); `remove()` deletes it. */
export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `chunklm-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The files under the profile's IndexedDB folder with their sizes, to explain a lost document. */
export function indexedDbFiles(profileDir: string): string {
  const root = join(profileDir, 'Default', 'IndexedDB');
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      out.push(`${rel || '.'}: unreadable or absent`);
      return;
    }
    for (const name of names.sort()) {
      const full = join(dir, name);
      const st = statSync(full, { throwIfNoEntry: false });
      if (st?.isDirectory()) walk(full, rel ? `${rel}/${name}` : name);
      else out.push(`${rel ? `${rel}/` : ''}${name} ${st?.size ?? '?'} B`);
    }
  };
  walk(root, '');
  return out.join(', ');
}

/**
 * The MANIFEST number of the origin's IndexedDB LevelDB in the profile (from its CURRENT file), or
 * undefined when there is none yet. LevelDB moves to a higher number every time it is opened, and
 * starts at 1 only when it is created: a number that drops back to 1 means the browser created the
 * backing store afresh, discarding what it held (Chromium does this when it finds it corrupt).
 */
export function leveldbManifestNumber(profileDir: string): number | undefined {
  const root = join(profileDir, 'Default', 'IndexedDB');
  let dirs: string[];
  try {
    dirs = readdirSync(root).filter((d) => d.endsWith('.indexeddb.leveldb'));
  } catch {
    return undefined;
  }
  let highest: number | undefined;
  for (const d of dirs) {
    try {
      const m = /MANIFEST-(\d+)/.exec(readFileSync(join(root, d, 'CURRENT'), 'utf8'));
      if (m) highest = Math.max(highest ?? 0, Number(m[1]));
    } catch {
      // no CURRENT yet
    }
  }
  return highest;
}

/** Loads stories260K into the page's client and resolves with the model's description. */
export function loadModel(page: Page): Promise<ModelInfo> {
  return page.evaluate(async (url) => {
    if (!window.chunklmReady) throw new Error('the page has no window.chunklmReady (did src/ui/main.ts run?)');
    const client = await window.chunklmReady;
    return client.load(url);
  }, MODEL_PATH);
}

/** Adds documents one after the other (documents.add); resolves with their infos. */
export function addDocuments(page: Page, docs: readonly DocumentInput[]): Promise<DocumentInfo[]> {
  return page.evaluate(async (list) => {
    const client = await window.chunklmReady!;
    const out: DocumentInfo[] = [];
    for (const d of list) out.push(await client.documents.add(d));
    return out;
  }, docs);
}

export function listDocuments(page: Page): Promise<DocumentInfo[]> {
  return page.evaluate(async () => (await window.chunklmReady!).documents.list());
}

export function documentStats(page: Page): Promise<DocumentStats> {
  return page.evaluate(async () => (await window.chunklmReady!).documents.stats());
}

/** Runs a documents question to the end and resolves with the whole result. */
export function ask(page: Page, input: DocumentsInput, opts: AskOptions): Promise<GenerationResult> {
  return page.evaluate(async ({ input, opts }) => (await window.chunklmReady!).generate(input, opts).result, { input, opts });
}

/** Empties the Worker's GPU pool and memory tier of chunks, so the next answer reads the store. */
export function evictCaches(page: Page): Promise<void> {
  return page.evaluate(async () => {
    const client = await window.chunklmReady!;
    await client.documents.evict('gpu');
    await client.documents.evict('memory');
  });
}

/** Prompt tokens a documents answer computed from scratch besides its chunks (BOS, question). */
export function nonChunkTokens(r: GenerationResult): number {
  return r.promptTokens.length - (r.reusedTokens ?? 0) - (r.recomputedTokens ?? 0);
}

/** One-line summary of where each chunk of an answer came from, for failure messages. */
export function describeChunks(r: GenerationResult): string {
  return (r.chunks ?? []).map((c) => `${c.document ?? 'text'}#${c.index}:${c.source}`).join(', ');
}

/**
 * Key prefix of the manifest an add in progress writes first (src/engine/documents.ts): it names
 * the chunks the add is about to write, so that no other tab collects them meanwhile; after a
 * crash it stays for a grace period, then it is dropped and its chunks collected.
 */
export { PENDING_MANIFEST_PREFIX };

/** The store as IndexedDB holds it: chunk record ids, and what each manifest names. */
export interface StoreSnapshot {
  chunkIds: string[];
  manifests: { id: string; pending: boolean; chunks: { id: string; bytes: number }[] }[];
}

/**
 * Chunks that documents' manifests say are stored (bytes > 0) but that have no record, and
 * records no manifest (pending ones included) names.
 */
export function storeProblems(s: StoreSnapshot): { missing: string[]; orphans: string[] } {
  const stored = new Set(s.chunkIds);
  const named = new Set(s.manifests.flatMap((m) => m.chunks.map((c) => c.id)));
  return {
    missing: s.manifests
      .filter((m) => !m.pending)
      .flatMap((m) => m.chunks.filter((c) => c.bytes > 0 && !stored.has(c.id)).map((c) => `${m.id}:${c.id.slice(0, 12)}`)),
    orphans: s.chunkIds.filter((id) => !named.has(id)).map((id) => id.slice(0, 12)),
  };
}

/**
 * Reads `chunklm-chunks` (keys only) and `chunklm-documents` with the page's own IndexedDB, the
 * same origin as the Worker. A database the engine has not created yet reads as empty (opening it
 * here would create it without its object store).
 */
export function storeSnapshot(page: Page): Promise<StoreSnapshot> {
  return page.evaluate(async (pendingPrefix) => {
    const names = new Set((await indexedDB.databases()).map((d) => d.name));
    const read = async (dbName: string, storeName: string, what: 'keys' | 'values'): Promise<unknown[]> => {
      if (!names.has(dbName)) return [];
      const db = await new Promise<IDBDatabase>((resolve, reject) => {
        const r = indexedDB.open(dbName);
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
      try {
        if (!db.objectStoreNames.contains(storeName)) return [];
        const store = db.transaction(storeName, 'readonly').objectStore(storeName);
        const req = what === 'keys' ? store.getAllKeys() : store.getAll();
        return await new Promise<unknown[]>((resolve, reject) => {
          req.onsuccess = () => resolve(req.result);
          req.onerror = () => reject(req.error);
        });
      } finally {
        db.close();
      }
    };
    const chunkIds = (await read('chunklm-chunks', 'chunks', 'keys')).map(String);
    const manifests = (await read('chunklm-documents', 'manifests', 'values')).map((v) => {
      const m = v as { id: string; chunks: { id: string; bytes: number }[] };
      return { id: m.id, pending: m.id.startsWith(pendingPrefix), chunks: m.chunks.map((c) => ({ id: c.id, bytes: c.bytes })) };
    });
    return { chunkIds, manifests };
  }, PENDING_MANIFEST_PREFIX);
}

/** What `damageRecords` does to a stored chunk record. */
export interface RecordDamage {
  id: string;
  /** 'flip' inverts bytes in the middle of the record; 'truncate' keeps its first half. */
  kind: 'flip' | 'truncate';
}

/** Damages chunk records in place through raw IndexedDB; resolves with each record's size before and after. */
export function damageRecords(page: Page, damage: readonly RecordDamage[]): Promise<{ id: string; before: number; after: number }[]> {
  return page.evaluate(async (list) => {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const r = indexedDB.open('chunklm-chunks');
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    try {
      const tx = db.transaction('chunks', 'readwrite');
      const store = tx.objectStore('chunks');
      const out: { id: string; before: number; after: number }[] = [];
      for (const d of list) {
        const value = await new Promise<unknown>((resolve, reject) => {
          const req = store.get(d.id);
          req.onsuccess = () => resolve(req.result);
          req.onerror = () => reject(req.error);
        });
        if (!(value instanceof Uint8Array)) throw new Error(`chunk record ${d.id} is not stored as a Uint8Array (${String(value)})`);
        let bytes: Uint8Array;
        if (d.kind === 'truncate') bytes = value.slice(0, value.byteLength >> 1);
        else {
          bytes = value.slice();
          const mid = bytes.byteLength >> 1;
          for (let i = mid; i < Math.min(bytes.byteLength, mid + 8); i++) bytes[i] ^= 0xff;
        }
        store.put(bytes, d.id);
        out.push({ id: d.id, before: value.byteLength, after: bytes.byteLength });
      }
      await new Promise<void>((resolve, reject) => {
        tx.oncomplete = () => resolve();
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error);
      });
      return out;
    } finally {
      db.close();
    }
  }, damage);
}

/** Byte lengths of stored chunk records (undefined where there is none), read with raw IndexedDB. */
export function recordSizes(page: Page, ids: readonly string[]): Promise<(number | undefined)[]> {
  return page.evaluate(async (list) => {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const r = indexedDB.open('chunklm-chunks');
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    try {
      const store = db.transaction('chunks', 'readonly').objectStore('chunks');
      return await Promise.all(
        list.map(
          (id) =>
            new Promise<number | undefined>((resolve, reject) => {
              const req = store.get(id);
              req.onsuccess = () => resolve(req.result instanceof Uint8Array ? req.result.byteLength : undefined);
              req.onerror = () => reject(req.error);
            }),
        ),
      );
    } finally {
      db.close();
    }
  }, ids);
}

/** Pids of group `pgid` that still run (zombies, which hold nothing, do not count); from /proc. */
function livingInGroup(pgid: number): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') pids.push(Number(name));
  }
  return pids;
}

/** Resolves once no process of group `pgid` is left running, or throws after 30 s. */
async function groupGone(pgid: number): Promise<void> {
  if (process.platform !== 'linux') return;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const alive = livingInGroup(pgid);
    if (alive.length === 0) return;
    if (Date.now() > deadline) throw new Error(`processes ${alive.join(', ')} of Chromium's group ${pgid} were still running 30 s after SIGKILL`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const STORAGE_LINE = /indexed_?db|leveldb|corrupt|backing.?store/i;

/** A Chromium this process started on a profile directory, driven over CDP. */
export interface OwnChromium {
  browser: Browser;
  /** The profile's default context (its storage is the profile's). */
  context: BrowserContext;
  /** SIGKILLs the browser's whole process group and waits for the browser process to exit. */
  kill(): Promise<void>;
  /** What the browser logged about its storage (IndexedDB, LevelDB, corruption) on stderr. */
  storageLog(): string[];
}

/**
 * Starts Debian's Chromium on `profileDir` in its own process group (so that a SIGKILL reaches
 * the renderer, GPU and utility processes too) and connects Playwright to it over CDP.
 */
export async function startChromium(profileDir: string): Promise<OwnChromium> {
  const child: ChildProcess = spawn(
    chromiumPath,
    // Logging to stderr so that what the browser says about its storage (a backing store it found
    // corrupt and deleted, say) can explain a lost document.
    [...chromiumArgs, '--headless=new', '--remote-debugging-port=0', `--user-data-dir=${profileDir}`, '--enable-logging=stderr', '--vmodule=*indexed_db*=1', 'about:blank'],
    { detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  const storage: string[] = [];
  const wsEndpoint = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Chromium printed no DevTools address within 30 s; its stderr ends: ${stderr.slice(-2000)}`)), 30_000);
    // stderr is read to the end, not only up to the address: a full pipe would block Chromium.
    child.stderr?.on('data', (d: Buffer) => {
      const text = d.toString();
      for (const line of text.split('\n')) if (STORAGE_LINE.test(line) && storage.length < 200) storage.push(line.trim().slice(0, 400));
      stderr = (stderr + text).slice(-8000);
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`Chromium exited (code ${code}, signal ${signal}) before it printed its DevTools address; its stderr ends: ${stderr.slice(-2000)}`));
    });
  });
  const browser = await chromium.connectOverCDP(wsEndpoint);
  const context = browser.contexts()[0];
  if (!context) throw new Error('Chromium started over CDP has no default context');
  let killed = false;
  return {
    browser,
    context,
    kill: async () => {
      if (!killed && child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // the group is already gone
        }
      }
      killed = true;
      await exited;
      // The other processes of the group (renderers, GPU, utility) die on their own schedule: a
      // process busy in the kernel (an fsync) exits once that returns, holding its files until
      // then. The next start must find the profile as a rebooted machine would: nobody left.
      if (child.pid !== undefined) await groupGone(child.pid);
    },
    storageLog: () => [...storage],
  };
}
