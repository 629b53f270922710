// The persistent tier over IndexedDB (idb-keyval), and the one module that knows its schema.
// Chunk records and manifests live in two databases of one object store each, because
// idb-keyval's model is one store per database; the store functions that open them are our own
// (not idb-keyval's createStore) so that manifest writes can ask for 'strict' durability, open
// failures become StorageError, and close() can reach the connections.
import { delMany, get, getMany, keys, set, setMany, values, type UseStore } from 'idb-keyval';
import { StorageError } from '../errors.ts';
import { isDocumentManifest } from './store.ts';
import type { DocumentManifest, PersistentStore, StorageEstimate, StoreChange } from './store.ts';

/**
 * Version of the layout below. Each database is opened at this version and its object store is
 * created in onupgradeneeded. A future layout change either uses new database names (and reads
 * or drops the old ones), or bumps this version and migrates in onupgradeneeded; an older build
 * that meets a newer database then fails to open it (VersionError) instead of misreading it.
 */
export const SCHEMA_VERSION = 1;

/** Database and object store names for a library called `name`. */
export function idbSchema(name: string) {
  return {
    /** key: chunk id; value: the CLKV record, an ArrayBuffer-backed Uint8Array of exactly its length. */
    chunks: { db: `${name}-chunks`, store: 'chunks' },
    /** key: document id; value: the DocumentManifest object. */
    manifests: { db: `${name}-documents`, store: 'manifests' },
    /** BroadcastChannel on which tabs tell each other that documents changed. */
    channel: `${name}-documents`,
  } as const;
}

interface OwnStore {
  use: UseStore;
  /** Opens the database now, so that open() reports an unusable IndexedDB at once. */
  ready(): Promise<void>;
  /** Whether this store's connection created the database (it did not exist before). */
  created(): boolean;
  close(): void;
}

function errorName(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('name' in err)) return undefined;
  return typeof err.name === 'string' ? err.name : undefined;
}

function errorMessage(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'message' in err && typeof err.message === 'string') return err.message;
  return String(err);
}

/**
 * Whether a read failed because the record's data is gone. Chromium reports a missing blob file
 * as NotReadableError (132+; DataError or NotFoundError with "Failed to read large IndexedDB
 * value" before), Firefox as a bare UnknownError (w3c/IndexedDB#423). Either way it is a miss.
 */
function isUnreadable(err: unknown): boolean {
  const name = errorName(err);
  if (name === 'NotReadableError' || name === 'UnknownError') return true;
  if (/failed to read large indexeddb value/i.test(errorMessage(err))) return true;
  const cause = typeof err === 'object' && err !== null && 'cause' in err ? err.cause : undefined;
  return cause !== undefined && errorName(cause) === 'NotReadableError';
}

function toStorageError(err: unknown, what: string, bytes?: number): StorageError {
  if (err instanceof StorageError) return err;
  const name = errorName(err) ?? 'Error';
  if (name === 'QuotaExceededError') {
    return new StorageError(
      'quota-exceeded',
      `the browser refused to ${what} for lack of room${errorMessage(err) ? ` (${errorMessage(err)})` : ''}; delete documents or ask for persistent storage`,
      { bytes, domException: name },
      { cause: err },
    );
  }
  return new StorageError('store-unavailable', `IndexedDB failed to ${what}: ${name}: ${errorMessage(err)}`, { domException: name }, { cause: err });
}

function openDatabase(dbName: string, storeName: string, onCreated?: () => void): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const fail = (detail: string, err?: unknown): void =>
      reject(
        new StorageError('store-unavailable', `cannot open IndexedDB database '${dbName}': ${detail}`, { domException: errorName(err) }, { cause: err }),
      );
    if (typeof indexedDB === 'undefined') {
      fail('IndexedDB is not available in this context (a Node process, or a sandboxed frame); use a folder or memory store');
      return;
    }
    let request: IDBOpenDBRequest;
    try {
      request = indexedDB.open(dbName, SCHEMA_VERSION);
    } catch (err) {
      // Opaque origins (file://, sandboxed iframes) throw SecurityError synchronously.
      fail(`the browser refused access (${errorName(err)}); serve the page from an http(s) origin`, err);
      return;
    }
    let settled = false;
    request.onupgradeneeded = (event) => {
      const db = request.result;
      if (event.oldVersion === 0) onCreated?.();
      if (!db.objectStoreNames.contains(storeName)) db.createObjectStore(storeName);
    };
    request.onsuccess = () => {
      // A connection that arrives after we gave up on a blocked open must not stay open.
      if (settled) request.result.close();
      else resolve(request.result);
      settled = true;
    };
    request.onerror = () => {
      if (settled) return;
      settled = true;
      const err = request.error;
      if (errorName(err) === 'VersionError') {
        fail(`it was written by a newer chunklm (schema above ${SCHEMA_VERSION}); reload the page to get the current version`, err);
      } else {
        fail(
          `${errorName(err)}: ${errorMessage(err)}. Private browsing, blocked site data or a full disk can cause this; allow site data or use a normal window`,
          err,
        );
      }
    };
    request.onblocked = () => {
      if (settled) return;
      settled = true;
      fail('another tab holds it open at an older version; close the other chunklm tabs and reload');
    };
  });
}

/**
 * An idb-keyval store function for one database, opened as createStore does (cached connection,
 * object store made on upgrade), whose write transactions carry `durability` and resolve only on
 * 'complete'.
 */
function ownStore(dbName: string, storeName: string, durability: IDBTransactionDurability): OwnStore {
  let dbp: Promise<IDBDatabase> | undefined;
  let closed = false;
  let created = false;

  const getDB = (): Promise<IDBDatabase> => {
    if (closed) return Promise.reject(new StorageError('store-unavailable', `the IndexedDB store '${dbName}' was closed`));
    if (dbp) return dbp;
    const p = openDatabase(dbName, storeName, () => {
      created = true;
    });
    dbp = p;
    p.then(
      (db) => {
        db.onclose = () => {
          if (dbp === p) dbp = undefined;
        };
        // Let another tab upgrade the schema instead of blocking it; the next call reopens.
        db.onversionchange = () => {
          db.close();
          if (dbp === p) dbp = undefined;
        };
      },
      () => {
        if (dbp === p) dbp = undefined;
      },
    );
    return p;
  };

  const use: UseStore = async (mode, callback) => {
    const db = await getDB();
    const tx = db.transaction(storeName, mode, mode === 'readwrite' ? { durability } : undefined);
    // A failed request's error event reaches the transaction before the abort sets tx.error, and
    // idb-keyval rejects with that (still null) tx.error: keep the request's own error. The
    // AbortErrors of the requests cancelled by the abort are consequences, not the cause.
    let requestError: DOMException | undefined;
    tx.addEventListener('error', (e) => {
      const error = (e.target as IDBRequest | null)?.error;
      if (error && error.name !== 'AbortError') requestError ??= error;
    });
    // Settles when the transaction does; an abort rejects with its cause, when one is known.
    const finished =
      mode === 'readwrite'
        ? new Promise<void>((resolve, reject) => {
            tx.addEventListener('complete', () => resolve());
            tx.addEventListener('abort', () => reject(tx.error ?? requestError));
          })
        : undefined;
    finished?.catch(() => undefined);
    let result: Awaited<ReturnType<typeof callback>>;
    try {
      result = await callback(tx.objectStore(storeName));
    } catch (err) {
      // A callback that threw part-way must not leave the requests it made to commit.
      try {
        tx.abort();
      } catch {
        // already finished
      }
      const cause = finished ? await finished.then(() => undefined, (e: unknown) => e) : undefined;
      throw cause ?? requestError ?? err ?? new DOMException('the transaction was aborted', 'AbortError');
    }
    if (finished) {
      await finished.catch((e: unknown) => {
        throw e ?? new DOMException('the transaction was aborted', 'AbortError');
      });
    }
    return result;
  };

  return {
    use,
    ready: async () => {
      await getDB();
    },
    created: () => created,
    close: () => {
      closed = true;
      dbp?.then(
        (db) => db.close(),
        () => undefined,
      );
      dbp = undefined;
    },
  };
}

function asBytes(value: unknown): Uint8Array | undefined {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return undefined;
}

function isStoreChange(value: unknown): value is StoreChange {
  if (typeof value !== 'object' || value === null) return false;
  const c = value as Record<string, unknown>;
  return typeof c.kind === 'string' && Array.isArray(c.ids);
}

/** The Cache Storage cache holding the marker that this origin has held documents (see IdbStore.noticeReset). */
export const RESET_MARKER_CACHE = 'chunklm-store-marker';

/** Waits before the retries of an open that failed for a reason that can pass (see IdbStore.open). */
const OPEN_RETRY_DELAYS_MS = [250, 1000, 2500];
const TRANSIENT_OPEN_ERRORS = new Set(['UnknownError', 'AbortError', 'InvalidStateError']);

export class IdbStore implements PersistentStore {
  readonly name: string;
  private readonly chunks: OwnStore;
  private readonly manifests: OwnStore;
  private readonly channel: BroadcastChannel | undefined;
  private readonly listeners = new Set<(change: StoreChange) => void>();
  private corrupt = 0;

  private storeNotice: string | undefined;
  private readonly baseName: string;
  private marked = false;

  /** Set when the browser discarded documents stored here before (see noticeReset). */
  get notice(): string | undefined {
    return this.storeNotice;
  }

  private constructor(name: string) {
    const schema = idbSchema(name);
    this.baseName = name;
    this.name = `indexeddb:${name}`;
    // A lost chunk is only a miss (recomputed), so chunk writes keep the browser's cheaper default.
    this.chunks = ownStore(schema.chunks.db, schema.chunks.store, 'relaxed');
    // The manifest is what makes a document visible: it must survive a power failure once written.
    this.manifests = ownStore(schema.manifests.db, schema.manifests.store, 'strict');
    if (typeof BroadcastChannel !== 'undefined') {
      this.channel = new BroadcastChannel(schema.channel);
      this.channel.onmessage = (e: MessageEvent<unknown>) => {
        if (!isStoreChange(e.data)) return;
        for (const listener of this.listeners) listener(e.data);
      };
    }
  }

  /** Opens (creating on first use) the library called `name`; throws StorageError 'store-unavailable'. */
  static async open(name = 'chunklm', opts: { retryDelaysMs?: readonly number[] } = {}): Promise<IdbStore> {
    // Right after a crash the browser can still be recovering the backing store, and an open fails
    // with UnknownError (or is aborted) for a moment: such failures are retried before giving up.
    // Refusals that will not change (private mode, an opaque origin, a newer schema) are not.
    const delays = opts.retryDelaysMs ?? OPEN_RETRY_DELAYS_MS;
    for (let attempt = 0; ; attempt++) {
      const store = new IdbStore(name);
      try {
        await Promise.all([store.chunks.ready(), store.manifests.ready()]);
        await store.noticeReset();
        return store;
      } catch (err) {
        store.close();
        const error = toStorageError(err, `open '${name}'`);
        const dom = String(error.fields.domException ?? '');
        if (attempt >= delays.length || !TRANSIENT_OPEN_ERRORS.has(dom)) {
          if (attempt > 0) error.message += ` (after ${attempt + 1} attempts)`;
          throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, delays[attempt]));
      }
    }
  }

  /**
   * Tells a first visit from a store the browser discarded: a marker outside IndexedDB (Cache
   * Storage), written with the first document stored, records that this origin has held documents. A documents database created now while
   * the marker is there means the browser dropped the old one (Chromium recreates an IndexedDB it
   * finds damaged, often after a crash); `notice` then says so, and the documents list is empty
   * because of it, not because of anything chunklm did. Clearing site data clears both, so that
   * reads as a first visit. Where Cache Storage is absent or refuses, only this notice is lost.
   */
  private async noticeReset(): Promise<void> {
    if (typeof caches === 'undefined') return;
    try {
      const cache = await caches.open(RESET_MARKER_CACHE);
      const key = this.markerKey();
      const marker = await cache.match(key);
      const created = this.manifests.created();
      if (created && marker) {
        const since = Number((await marker.json().catch(() => ({})))?.createdAt);
        this.storeNotice =
          `the browser discarded the documents stored in this site's IndexedDB '${this.baseName}'` +
          `${Number.isFinite(since) ? ` (kept since ${new Date(since).toISOString()})` : ''}: it created the database anew, as browsers do when they find it damaged (often after a crash); add the documents again`;
      }
      // A fresh database holds nothing yet: the marker is written again with the first document.
      if (created && marker) await cache.delete(key);
    } catch {
      // The marker is only for this notice.
    }
  }

  /** The Cache Storage key of this store's marker (a path, resolved against the page's origin). */
  private markerKey(): string {
    return `/chunklm/indexeddb/${encodeURIComponent(this.baseName)}`;
  }

  /** Records, once per store, that this origin holds documents (see noticeReset). */
  private markHeld(): void {
    if (this.marked || typeof caches === 'undefined') return;
    this.marked = true;
    const key = this.markerKey();
    void caches
      .open(RESET_MARKER_CACHE)
      .then(async (cache) => {
        if (!(await cache.match(key))) await cache.put(key, new Response(JSON.stringify({ createdAt: Date.now() }), { headers: { 'content-type': 'application/json' } }));
      })
      .catch(() => undefined);
  }

  /** Stored manifests that listManifests() skipped for not having the manifest's shape, at its last call. */
  get corruptManifests(): number {
    return this.corrupt;
  }

  async getChunk(id: string): Promise<Uint8Array | undefined> {
    return (await this.getChunks([id]))[0];
  }

  async getChunks(ids: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    if (ids.length === 0) return [];
    try {
      return (await getMany<unknown>([...ids], this.chunks.use)).map(asBytes);
    } catch {
      // One unreadable record fails (and aborts) the whole getMany; read each on its own so that
      // only the records that are really gone become misses.
      return Promise.all(
        ids.map(async (id) => {
          try {
            return asBytes(await get<unknown>(id, this.chunks.use));
          } catch (err) {
            if (isUnreadable(err)) return undefined;
            throw toStorageError(err, `read chunk ${id}`);
          }
        }),
      );
    }
  }

  async putChunks(entries: readonly (readonly [string, Uint8Array])[]): Promise<void> {
    if (entries.length === 0) return;
    let bytes = 0;
    // slice(): a stored view keeps its whole underlying buffer, not only its bytes.
    const records = entries.map(([id, record]): [string, Uint8Array] => {
      bytes += record.byteLength;
      return [id, record.slice()];
    });
    try {
      await setMany(records, this.chunks.use);
    } catch (err) {
      throw toStorageError(err, `store ${records.length} chunk record(s) (${bytes} bytes)`, bytes);
    }
  }

  async deleteChunks(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    try {
      await delMany([...ids], this.chunks.use);
    } catch (err) {
      throw toStorageError(err, `delete ${ids.length} chunks`);
    }
  }

  async chunkIds(): Promise<string[]> {
    try {
      // keys(): the values are the records themselves, megabytes each.
      const all = await keys<IDBValidKey>(this.chunks.use);
      return all.filter((k): k is string => typeof k === 'string');
    } catch (err) {
      throw toStorageError(err, 'list chunks');
    }
  }

  async getManifest(id: string): Promise<DocumentManifest | undefined> {
    let value: unknown;
    try {
      value = await get<unknown>(id, this.manifests.use);
    } catch (err) {
      if (isUnreadable(err)) return undefined;
      throw toStorageError(err, `read document ${id}`);
    }
    return isDocumentManifest(value) ? value : undefined;
  }

  async listManifests(): Promise<DocumentManifest[]> {
    let all: unknown[];
    try {
      all = await values<unknown>(this.manifests.use);
    } catch (err) {
      throw toStorageError(err, 'list documents');
    }
    const manifests = all.filter(isDocumentManifest);
    this.corrupt = all.length - manifests.length;
    return manifests;
  }

  async putManifest(m: DocumentManifest): Promise<void> {
    try {
      await set(m.id, m, this.manifests.use);
    } catch (err) {
      throw toStorageError(err, `store document ${m.id}`);
    }
    this.markHeld();
  }

  async deleteManifests(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    try {
      await delMany([...ids], this.manifests.use);
    } catch (err) {
      throw toStorageError(err, `delete ${ids.length} documents`);
    }
  }

  async estimate(): Promise<StorageEstimate | undefined> {
    const storage = typeof navigator === 'undefined' ? undefined : navigator.storage;
    if (!storage?.estimate) return undefined;
    let e: { usage?: number; quota?: number };
    try {
      e = await storage.estimate();
    } catch {
      return undefined;
    }
    let persisted: boolean | undefined;
    try {
      persisted = storage.persisted ? await storage.persisted() : undefined;
    } catch {
      persisted = undefined;
    }
    return { usage: e.usage ?? 0, quota: e.quota ?? 0, persisted };
  }

  async persist(): Promise<boolean> {
    const storage = typeof navigator === 'undefined' ? undefined : navigator.storage;
    if (!storage?.persist) return false;
    try {
      return await storage.persist();
    } catch {
      return false;
    }
  }

  /**
   * Listens for changes announced by other IdbStore instances of the same name (other tabs,
   * workers, or another instance in this one). A BroadcastChannel never delivers a message to the
   * channel object that posted it, so this instance's own announce() does not come back here.
   */
  onChange(listener: (change: StoreChange) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  announce(change: StoreChange): void {
    this.channel?.postMessage({ kind: change.kind, ids: [...change.ids] });
  }

  close(): void {
    this.listeners.clear();
    this.channel?.close();
    this.chunks.close();
    this.manifests.close();
  }
}
