// The persistent tier's contract (src/kv/store.ts), run against each implementation, then what
// is particular to each: IndexedDB durability, unreadable records, quota and tabs; the memory
// store's quota; the folder's temporary files, corrupt manifests and chunk id checks.
import { mkdtemp, readdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  IDBDatabase as FakeIDBDatabase,
  IDBKeyRange as FakeIDBKeyRange,
  IDBObjectStore as FakeIDBObjectStore,
  indexedDB as fakeIndexedDB,
} from 'fake-indexeddb';
import { set } from 'idb-keyval';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { StorageError } from '../../src/errors.ts';
import { IdbStore, idbSchema } from '../../src/kv/idb-store.ts';
import { MemoryStore } from '../../src/kv/memory-store.ts';
import { DOCUMENT_MANIFEST_VERSION, type DocumentManifest, type PersistentStore, type StoreChange } from '../../src/kv/store.ts';
import { FolderStore } from '../../src/node/folder-store.ts';

// rename is wrapped so that one test can make the disk look full.
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return { ...actual, rename: vi.fn(actual.rename) };
});

beforeAll(() => {
  // idb-keyval and IdbStore use the globals, as in a page.
  Object.assign(globalThis, { indexedDB: fakeIndexedDB, IDBKeyRange: FakeIDBKeyRange });
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

let libraries = 0;
/** A library name no other test uses: fake-indexeddb keeps every database for the whole file. */
function uniqueName(): string {
  return `test-${process.pid}-${++libraries}`;
}

async function openIdb(name = uniqueName()): Promise<IdbStore> {
  const store = await IdbStore.open(name);
  cleanups.push(() => store.close());
  return store;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chunklm-store-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function chunkId(n: number): string {
  return n.toString(16).padStart(16, '0');
}

function record(n: number, length = 64): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (n * 31 + i) & 0xff);
}

function manifest(id: string, overrides: Partial<DocumentManifest> = {}): DocumentManifest {
  return {
    version: DOCUMENT_MANIFEST_VERSION,
    id,
    title: `Document ${id}`,
    text: 'One paragraph. Another sentence.',
    textHash: 'ab'.repeat(32),
    modelFingerprint: 'cd'.repeat(32),
    settings: { chunker: 'kvsplit', budget: 256, lead: true },
    chunks: [{ id: chunkId(1), tokens: [1, 2, 3], start: 0, end: 14, bytes: 64 }],
    tokens: 3,
    bytes: 64,
    createdAt: 1_700_000_000_000,
    lastUsedAt: 1_700_000_000_000,
    pinned: false,
    ...overrides,
  };
}

const implementations: [string, () => Promise<PersistentStore>][] = [
  ['MemoryStore', async () => new MemoryStore()],
  ['IdbStore', () => openIdb()],
  ['FolderStore', async () => new FolderStore(await tempDir())],
];

describe.each(implementations)('%s keeps the store contract', (_, open) => {
  it('returns the bytes it was given, in a buffer of exactly their length', async () => {
    const store = await open();
    await store.putChunks([
      [chunkId(1), record(1)],
      [chunkId(2), record(2, 1000)],
    ]);
    const got = await store.getChunk(chunkId(2));
    expect(got).toBeInstanceOf(Uint8Array);
    expect(got).toEqual(record(2, 1000));
    expect(got?.buffer.byteLength).toBe(1000);
    expect(await store.getChunk(chunkId(1))).toEqual(record(1));
  });

  it("keeps its own copy: the caller's buffer and the returned bytes can change freely", async () => {
    const store = await open();
    const bytes = record(3);
    await store.putChunks([[chunkId(3), bytes]]);
    bytes.fill(0);
    const first = await store.getChunk(chunkId(3));
    expect(first).toEqual(record(3));
    first?.fill(0);
    expect(await store.getChunk(chunkId(3))).toEqual(record(3));
  });

  it('stores only the bytes of a view into a bigger buffer', async () => {
    const store = await open();
    const big = new Uint8Array(4096).fill(0xee);
    big.set(record(4, 32), 100);
    await store.putChunks([[chunkId(4), big.subarray(100, 132)]]);
    const got = await store.getChunk(chunkId(4));
    expect(got).toEqual(record(4, 32));
    expect(got?.buffer.byteLength).toBe(32);
  });

  it('reads several chunks at once, in order, with misses as undefined', async () => {
    const store = await open();
    await store.putChunks([
      [chunkId(5), record(5)],
      [chunkId(6), record(6)],
    ]);
    expect(await store.getChunks([chunkId(6), chunkId(99), chunkId(5)])).toEqual([record(6), undefined, record(5)]);
    expect(await store.getChunks([])).toEqual([]);
    expect(await store.getChunk(chunkId(98))).toBeUndefined();
  });

  it('deletes chunks, and deleting one that is absent is no error', async () => {
    const store = await open();
    await store.putChunks([
      [chunkId(7), record(7)],
      [chunkId(8), record(8)],
    ]);
    await store.deleteChunks([chunkId(7), chunkId(97)]);
    expect(await store.getChunks([chunkId(7), chunkId(8)])).toEqual([undefined, record(8)]);
    expect(await store.chunkIds()).toEqual([chunkId(8)]);
  });

  it('lists chunk ids, and rewriting a chunk adds nothing', async () => {
    const store = await open();
    expect(await store.chunkIds()).toEqual([]);
    await store.putChunks([
      [chunkId(9), record(9)],
      [chunkId(10), record(10)],
    ]);
    await store.putChunks([[chunkId(9), record(9)]]);
    expect((await store.chunkIds()).sort()).toEqual([chunkId(9), chunkId(10)]);
    expect(await store.getChunk(chunkId(9))).toEqual(record(9));
  });

  it('puts, gets, lists and deletes manifests', async () => {
    const store = await open();
    expect(await store.listManifests()).toEqual([]);
    expect(await store.getManifest('doc-a')).toBeUndefined();
    await store.putManifest(manifest('doc-a'));
    await store.putManifest(manifest('Doc B/é?', { pinned: true }));
    expect(await store.getManifest('doc-a')).toEqual(manifest('doc-a'));
    expect(await store.getManifest('Doc B/é?')).toEqual(manifest('Doc B/é?', { pinned: true }));
    const listed = (await store.listManifests()).sort((a, b) => a.id.localeCompare(b.id));
    expect(listed).toEqual([manifest('doc-a'), manifest('Doc B/é?', { pinned: true })].sort((a, b) => a.id.localeCompare(b.id)));
    await store.deleteManifests(['doc-a', 'never-stored']);
    expect(await store.getManifest('doc-a')).toBeUndefined();
    expect((await store.listManifests()).map((m) => m.id)).toEqual(['Doc B/é?']);
  });

  it('overwrites a manifest in place, and a returned manifest is a copy', async () => {
    const store = await open();
    await store.putManifest(manifest('doc-c'));
    await store.putManifest(manifest('doc-c'));
    await store.putManifest(manifest('doc-c', { lastUsedAt: 1_800_000_000_000 }));
    const listed = await store.listManifests();
    expect(listed).toEqual([manifest('doc-c', { lastUsedAt: 1_800_000_000_000 })]);
    listed[0].chunks.length = 0;
    expect((await store.getManifest('doc-c'))?.chunks).toHaveLength(1);
  });
});

/** fake-indexeddb's own path for a request whose operation fails (the request's error event, then the transaction's abort). */
interface FakeTransactionInternals {
  _execRequestAsync(request: { operation: () => unknown; source: unknown }): IDBRequest;
  _abort(errorName: string | null): void;
}

function failingRequest(store: IDBObjectStore, error: DOMException): IDBRequest {
  const tx = store.transaction as unknown as FakeTransactionInternals;
  return tx._execRequestAsync({
    operation: () => {
      throw error;
    },
    source: store,
  });
}

describe('IdbStore', () => {
  it('writes manifests in strict-durability transactions and chunks in relaxed ones', async () => {
    const store = await openIdb();
    const transaction = vi.spyOn(FakeIDBDatabase.prototype, 'transaction');
    await store.putChunks([[chunkId(1), record(1)]]);
    await store.putManifest(manifest('doc'));
    await store.deleteManifests(['doc']);
    const writes = transaction.mock.calls.filter(([, mode]) => mode === 'readwrite').map(([names, , options]) => [names, options]);
    expect(writes).toEqual([
      ['chunks', { durability: 'relaxed' }],
      ['manifests', { durability: 'strict' }],
      ['manifests', { durability: 'strict' }],
    ]);
  });

  it('makes a manifest visible to another connection once putManifest resolves', async () => {
    const name = uniqueName();
    const writer = await openIdb(name);
    const reader = await openIdb(name);
    await writer.putManifest(manifest('doc'));
    expect(await reader.getManifest('doc')).toEqual(manifest('doc'));
  });

  it('reads a record whose blob file is gone (NotReadableError) as a miss, and only that one', async () => {
    const store = await openIdb();
    await store.putChunks([1, 2, 3].map((n) => [chunkId(n), record(n)] as const));
    const get = FakeIDBObjectStore.prototype.get;
    vi.spyOn(FakeIDBObjectStore.prototype, 'get').mockImplementation(function (this: IDBObjectStore, key: IDBValidKey | IDBKeyRange) {
      if (key === chunkId(2)) return failingRequest(this, new DOMException('Data lost due to missing file.', 'NotReadableError'));
      return get.call(this, key);
    });
    expect(await store.getChunks([chunkId(1), chunkId(2), chunkId(3), chunkId(4)])).toEqual([record(1), undefined, record(3), undefined]);
    expect(await store.getChunk(chunkId(2))).toBeUndefined();
  });

  it('does not hide other read failures', async () => {
    const store = await openIdb();
    await store.putChunks([[chunkId(1), record(1)]]);
    const get = FakeIDBObjectStore.prototype.get;
    vi.spyOn(FakeIDBObjectStore.prototype, 'get').mockImplementation(function (this: IDBObjectStore, key: IDBValidKey | IDBKeyRange) {
      if (key === chunkId(1)) return failingRequest(this, new DOMException('the connection is closing', 'InvalidStateError'));
      return get.call(this, key);
    });
    const err = await store.getChunks([chunkId(1)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ code: 'store-unavailable', fields: { domException: 'InvalidStateError' } });
  });

  it.each(['a failed request', 'an aborted commit'])('turns QuotaExceededError from %s into quota-exceeded and writes none of the batch', async (how) => {
    const store = await openIdb();
    const put = FakeIDBObjectStore.prototype.put;
    vi.spyOn(FakeIDBObjectStore.prototype, 'put').mockImplementation(function (this: IDBObjectStore, value: unknown, key?: IDBValidKey) {
      if (key !== chunkId(3)) return put.call(this, value, key);
      if (how === 'a failed request') return failingRequest(this, new DOMException('quota', 'QuotaExceededError'));
      // As Chromium does when the commit itself runs out of room: the transaction aborts with the error.
      const request = put.call(this, value, key);
      (this.transaction as unknown as FakeTransactionInternals)._abort('QuotaExceededError');
      return request;
    });
    const err = await store.putChunks([1, 2, 3].map((n) => [chunkId(n), record(n)] as const)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ code: 'quota-exceeded', fields: { bytes: 3 * 64, domException: 'QuotaExceededError' } });
    vi.restoreAllMocks();
    expect(await store.chunkIds()).toEqual([]);
  });

  it('skips stored values that are not manifests and counts them', async () => {
    const name = uniqueName();
    const store = await openIdb(name);
    await store.putManifest(manifest('good'));
    const schema = idbSchema(name);
    const raw = await openRawStore(schema.manifests.db, schema.manifests.store);
    await set('no-chunks', { version: 1, id: 'no-chunks' }, raw);
    await set('text', 'not an object', raw);
    expect((await store.listManifests()).map((m) => m.id)).toEqual(['good']);
    expect(store.corruptManifests).toBe(2);
    expect(await store.getManifest('text')).toBeUndefined();
  });

  it('reads chunk values that are not bytes as misses, and an ArrayBuffer as bytes', async () => {
    const name = uniqueName();
    const store = await openIdb(name);
    const schema = idbSchema(name);
    const raw = await openRawStore(schema.chunks.db, schema.chunks.store);
    await set(chunkId(1), 'text', raw);
    await set(chunkId(2), record(2).buffer, raw);
    expect(await store.getChunks([chunkId(1), chunkId(2)])).toEqual([undefined, record(2)]);
  });

  it('tells other instances of the same library about changes, not itself', async () => {
    const name = uniqueName();
    const a = await openIdb(name);
    const b = await openIdb(name);
    const other = await openIdb();
    const seenByA: StoreChange[] = [];
    const seenByOther: StoreChange[] = [];
    a.onChange((c) => seenByA.push(c));
    other.onChange((c) => seenByOther.push(c));
    const received = new Promise<StoreChange>((resolve) => {
      const stop = b.onChange((c) => {
        stop();
        resolve(c);
      });
    });
    a.announce({ kind: 'added', ids: ['doc-1'] });
    expect(await received).toEqual({ kind: 'added', ids: ['doc-1'] });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seenByA).toEqual([]);
    expect(seenByOther).toEqual([]);
  });

  it('reports no estimate and refuses persistence where navigator.storage is missing', async () => {
    const store = await openIdb();
    vi.stubGlobal('navigator', undefined);
    expect(await store.estimate()).toBeUndefined();
    expect(await store.persist()).toBe(false);
    vi.unstubAllGlobals();
  });

  it('fails to open with store-unavailable when there is no IndexedDB', async () => {
    vi.stubGlobal('indexedDB', undefined);
    const err = await IdbStore.open(uniqueName()).catch((e: unknown) => e);
    vi.unstubAllGlobals();
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ code: 'store-unavailable' });
    expect((err as Error).message).toMatch(/IndexedDB is not available/);
  });
});

/** A store function over the same database, to put values that IdbStore itself never writes. */
async function openRawStore(dbName: string, storeName: string) {
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const request = fakeIndexedDB.open(dbName);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  cleanups.push(() => db.close());
  return <T>(mode: IDBTransactionMode, callback: (store: IDBObjectStore) => T | PromiseLike<T>): Promise<T> =>
    Promise.resolve(callback(db.transaction(storeName, mode).objectStore(storeName)));
}

describe('MemoryStore', () => {
  it('refuses a write that would go over its quota, writing nothing', async () => {
    const store = new MemoryStore({ quotaBytes: 200 });
    await store.putChunks([[chunkId(1), record(1, 100)]]);
    const err = await store
      .putChunks([
        [chunkId(2), record(2, 50)],
        [chunkId(3), record(3, 60)],
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ code: 'quota-exceeded', fields: { bytes: 210, quota: 200 } });
    expect(await store.chunkIds()).toEqual([chunkId(1)]);
    // Rewriting what is there needs no new room; freeing room lets the write through.
    await store.putChunks([[chunkId(1), record(1, 100)]]);
    await store.deleteChunks([chunkId(1)]);
    await store.putChunks([
      [chunkId(2), record(2, 50)],
      [chunkId(3), record(3, 60)],
    ]);
    const estimate = await store.estimate();
    expect(estimate.quota).toBe(200);
    expect(estimate.usage).toBe(110);
    await store.putManifest(manifest('doc'));
    expect((await store.estimate()).usage).toBe(110 + new TextEncoder().encode(JSON.stringify(manifest('doc'))).byteLength);
  });
});

describe('FolderStore', () => {
  it('never shows temporary files as chunks or manifests, and sweeps the stale ones', async () => {
    const dir = await tempDir();
    const store = new FolderStore(dir);
    await store.putChunks([[chunkId(1), record(1)]]);
    await store.putManifest(manifest('doc'));
    // What a writer killed before its rename leaves behind.
    const staleChunk = join(dir, 'chunks', `${chunkId(2)}.clkv.123-abc.tmp`);
    const staleManifest = join(dir, 'documents', 'other.json.123-abc.tmp');
    const freshChunk = join(dir, 'chunks', `${chunkId(3)}.clkv.456-def.tmp`);
    await writeFile(staleChunk, record(2).subarray(0, 10));
    await writeFile(staleManifest, '{"version":1,');
    await writeFile(freshChunk, record(3));
    const old = new Date(Date.now() - 120_000);
    await utimes(staleChunk, old, old);
    await utimes(staleManifest, old, old);

    expect(await store.chunkIds()).toEqual([chunkId(1)]);
    expect(await store.getChunk(chunkId(2))).toBeUndefined();
    expect((await store.listManifests()).map((m) => m.id)).toEqual(['doc']);
    expect(store.corruptManifests).toBe(0);

    expect(await store.sweepTemporary()).toBe(2);
    expect((await readdir(join(dir, 'chunks'))).sort()).toEqual([`${chunkId(1)}.clkv`, `${chunkId(3)}.clkv.456-def.tmp`]);
    expect(await readdir(join(dir, 'documents'))).toEqual(['doc.json']);
  });

  it('leaves no temporary files after its own writes', async () => {
    const dir = await tempDir();
    const store = new FolderStore(dir);
    await store.putChunks([1, 2, 3].map((n) => [chunkId(n), record(n)] as const));
    await store.putManifest(manifest('doc'));
    const files = [...(await readdir(join(dir, 'chunks'))), ...(await readdir(join(dir, 'documents')))];
    expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('skips and counts manifest files that are unreadable or not manifests', async () => {
    const dir = await tempDir();
    const store = new FolderStore(dir);
    await store.putManifest(manifest('good'));
    await writeFile(join(dir, 'documents', 'truncated.json'), '{"version":1,"id":"trunc');
    await writeFile(join(dir, 'documents', 'shape.json'), JSON.stringify({ id: 'shape', chunks: [] }));
    expect((await store.listManifests()).map((m) => m.id)).toEqual(['good']);
    expect(store.corruptManifests).toBe(2);
    expect(await store.getManifest('truncated')).toBeUndefined();
  });

  it('refuses ids that are not chunk ids', async () => {
    const store = new FolderStore(await tempDir());
    for (const id of ['../escape0000000000', 'ABCDEF0123456789', 'abc', `${chunkId(1)}.clkv`]) {
      const err = await store.putChunks([[id, record(1)]]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect(err).toMatchObject({ code: 'bad-id' });
    }
    await expect(store.getChunk('../../etc/passwd')).rejects.toMatchObject({ code: 'bad-id' });
    expect(await store.chunkIds()).toEqual([]);
  });

  it('keeps ids that differ only in case apart, and estimates from the file system', async () => {
    const dir = await tempDir();
    const store = new FolderStore(dir);
    await store.putManifest(manifest('Doc'));
    await store.putManifest(manifest('doc'));
    expect((await store.listManifests()).map((m) => m.id).sort()).toEqual(['Doc', 'doc']);
    await store.putChunks([[chunkId(1), record(1, 1000)]]);
    const estimate = await store.estimate();
    expect(estimate?.usage).toBeGreaterThanOrEqual(1000);
    expect(estimate?.quota).toBeGreaterThan(estimate?.usage ?? 0);
  });

  it('turns a full disk into quota-exceeded', async () => {
    const dir = await tempDir();
    const store = new FolderStore(dir);
    const full = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    vi.mocked(rename).mockRejectedValueOnce(full);
    const err = await store.putChunks([[chunkId(1), record(1)]]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ code: 'quota-exceeded', fields: { bytes: 64, errno: 'ENOSPC' } });
    // The failed write leaves neither the record nor its temporary file.
    expect(await readdir(join(dir, 'chunks'))).toEqual([]);
  });
});
