// Documents as named things: each is read once (split into chunks whose KV is computed and
// persisted), listed, pinned, removed, exported and imported. The library keeps the manifests
// and the storage budget; chunk residency belongs to the ChunkCache.
//
// Write order makes a document all-or-nothing under a crash: its chunk records go first (few
// large transactions), its manifest last (a durable write). A chunk no manifest names is
// collected when the library opens.
import { InvalidRequestError, StorageError, throwIfAborted } from '../errors.ts';
import type { ChunkCache, ChunkRequest } from '../kv/chunk-cache.ts';
import { decodeKvPack, encodeKvPack } from '../kv/kvpack.ts';
import { DOCUMENT_MANIFEST_VERSION, type DocumentManifest, type ManifestChunk, type PersistentStore, type StoreChange } from '../kv/store.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import { readDocument, sameSettings, settingsRecord, textHash, type ReadChunk, type ResolvedChunkSettings } from './doc-layout.ts';
import type { DocumentAddOptions, DocumentInfo, DocumentInput, DocumentStats } from './types.ts';

/** What the library needs from the loaded model. */
export interface LibraryModel {
  fingerprint: string;
  tokenizer: Tokenizer;
  cache: ChunkCache;
  settings: ResolvedChunkSettings;
}

/** A stored document ready to link under the loaded model. */
export interface ResolvedDocument {
  manifest: DocumentManifest;
  chunks: (ReadChunk & { text: string })[];
  /** Its manifest already lists these chunks for this model and settings. */
  current: boolean;
}

/** A document being read: what add() knows before its chunks are computed. */
interface PendingDocument {
  input: DocumentInput;
  id: string;
  title: string;
  hash: string;
  settings: Record<string, string | number | boolean>;
  previous: DocumentManifest | undefined;
  chunks: ReadChunk[];
}

export interface DocumentLibraryOptions {
  /** Bytes of chunk records the store may hold (default: half of what navigator.storage.estimate() reports, else unlimited). */
  budgetBytes?: number;
}

/** Records are written in transactions of about this many bytes (few large records beat many small ones). */
const WRITE_BATCH_BYTES = 8 * 1024 * 1024;
const MAX_WARNINGS = 20;
/**
 * While a document is being read, a pending manifest under its own key names the chunks already
 * written, so another tab opening the store meanwhile does not collect them as orphans. One older
 * than the grace period belongs to a writer that died: it is dropped and its chunks collected.
 */
export const PENDING_MANIFEST_PREFIX = '\u0001pending/';
const PENDING_GRACE_MS = 10 * 60 * 1000;

function isPending(m: DocumentManifest): boolean {
  return m.id.startsWith(PENDING_MANIFEST_PREFIX);
}
const ID_PATTERN = /^[\w.:/@+-][\w .:/@+#?&=%~-]{0,255}$/;

export class DocumentLibrary {
  private opened: Promise<void> | undefined;
  private budget: number;
  private collected = 0;
  private storeEvictions = 0;
  private readonly warnings: string[] = [];
  private readonly listeners = new Set<(c: StoreChange) => void>();

  constructor(
    readonly store: PersistentStore,
    private readonly opts: DocumentLibraryOptions = {},
  ) {
    this.budget = opts.budgetBytes ?? Number.POSITIVE_INFINITY;
    store.onChange?.((c) => {
      for (const l of this.listeners) l(c);
    });
  }

  /** Collects chunks no manifest names, asks for persistent storage and reads the budget; once. */
  open(): Promise<void> {
    this.opened ??= (async () => {
      if (this.store.notice) this.warn(this.store.notice);
      const [ids, all] = await Promise.all([this.store.chunkIds(), this.store.listManifests()]);
      const stale = all.filter((m) => isPending(m) && Date.now() - m.createdAt > PENDING_GRACE_MS);
      if (stale.length > 0) await this.store.deleteManifests(stale.map((m) => m.id));
      const manifests = all.filter((m) => !stale.includes(m));
      const named = new Set(manifests.flatMap((m) => m.chunks.map((c) => c.id)));
      const orphans = ids.filter((id) => !named.has(id));
      if (orphans.length > 0) await this.store.deleteChunks(orphans);
      this.collected += orphans.length;
      await this.store.persist?.().catch(() => false);
      if (this.opts.budgetBytes === undefined) {
        const est = await this.store.estimate?.().catch(() => undefined);
        if (est && est.quota > 0) this.budget = Math.floor(est.quota / 2);
      }
    })();
    return this.opened;
  }

  /** Listens to changes made by other tabs (BroadcastChannel); returns the unsubscribe. */
  onChange(listener: (c: StoreChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get budgetBytes(): number {
    return this.budget;
  }

  setBudget(bytes: number): void {
    if (!(bytes > 0)) throw new InvalidRequestError('bad-budget', `the storage budget must be a positive number of bytes, got ${bytes}`);
    this.budget = bytes;
  }

  /**
   * Reads a document: tokenizes, splits, computes only the chunks not stored yet, writes them,
   * then its manifest. An id that exists is replaced (its chunks no other document names go).
   */
  async add(input: DocumentInput, model: LibraryModel, opts: DocumentAddOptions = {}): Promise<DocumentInfo> {
    await this.open();
    if (typeof input?.text !== 'string') throw new InvalidRequestError('bad-document', 'a document needs its text as a string');
    const hash = await textHash(input.text);
    const id = input.id ?? hash.slice(0, 16);
    checkId(id);
    const title = input.title ?? firstLine(input.text) ?? id;
    const settings = settingsRecord(model.settings);
    opts.onProgress?.({ phase: 'tokenize', done: 0, total: 0 });
    const previous = await this.store.getManifest(id);
    const chunks = await readDocument(input.text, model.tokenizer, model.fingerprint, model.settings);
    const pendingId = `${PENDING_MANIFEST_PREFIX}${hash.slice(0, 16)}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    await this.store.putManifest({
      version: DOCUMENT_MANIFEST_VERSION,
      id: pendingId,
      title: `(reading ${id})`,
      text: '',
      textHash: hash,
      modelFingerprint: model.fingerprint,
      settings,
      chunks: chunks.map((c) => ({ id: c.id, tokens: [], start: c.start, end: c.end, bytes: 0 })),
      tokens: 0,
      bytes: 0,
      createdAt: Date.now(),
      lastUsedAt: Date.now(),
      pinned: false,
    });
    try {
      return await this.addChunks({ input, id, title, hash, settings, previous, chunks }, model, opts);
    } finally {
      await this.store.deleteManifests([pendingId]).catch(() => undefined);
    }
  }

  /** The rest of add: chunks not stored yet are computed and written, then the manifest. */
  private async addChunks(doc: PendingDocument, model: LibraryModel, opts: DocumentAddOptions): Promise<DocumentInfo> {
    const { input, id, title, hash, settings, previous, chunks } = doc;
    const total = chunks.length;
    opts.onProgress?.({ phase: 'compute', done: 0, total });
    const stored = new Set(await this.store.chunkIds());
    const warnings: string[] = [];
    const bytes = new Map<string, number>();
    for (const c of previous?.chunks ?? []) if (stored.has(c.id) && c.bytes > 0) bytes.set(c.id, c.bytes);
    let batch: [string, Uint8Array][] = [];
    let batchBytes = 0;
    let computed = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      opts.onProgress?.({ phase: 'store', done: computed, total });
      const failed = await this.write(batch, model);
      if (failed) warnings.push(failed.message);
      else for (const [cid, b] of batch) bytes.set(cid, b.byteLength);
      batch = [];
      batchBytes = 0;
    };
    let done = 0;
    for (const c of chunks) {
      throwIfAborted(opts.signal);
      if (!stored.has(c.id) && !bytes.has(c.id) && !batch.some(([b]) => b === c.id)) {
        const lease = await model.cache.acquire([{ id: c.id, tokens: c.tokens, context: c.context }], { signal: opts.signal });
        try {
          let record = lease.fresh[0]?.[1] ?? model.cache.memoryRecord(c.id);
          if (!record) record = await model.cache.encode(lease.kvs[0]);
          if (lease.sources[0] === 'computed') computed++;
          batch.push([c.id, record]);
          batchBytes += record.byteLength;
        } finally {
          lease.release();
        }
        if (batchBytes >= WRITE_BATCH_BYTES) await flush();
      } else if (stored.has(c.id) && !bytes.has(c.id)) {
        bytes.set(c.id, -1); // stored by another document: size read below
      }
      opts.onProgress?.({ phase: 'compute', done: ++done, total });
    }
    await flush();
    throwIfAborted(opts.signal);
    const sizes = await this.sizesOf([...bytes].filter(([, b]) => b < 0).map(([cid]) => cid));
    for (const [cid, n] of sizes) bytes.set(cid, n);
    const now = Date.now();
    const manifest: DocumentManifest = {
      version: DOCUMENT_MANIFEST_VERSION,
      id,
      title,
      text: input.text,
      textHash: hash,
      modelFingerprint: model.fingerprint,
      settings,
      chunks: chunks.map((c) => ({ id: c.id, tokens: c.tokens, context: c.context, start: c.start, end: c.end, bytes: Math.max(0, bytes.get(c.id) ?? 0) })),
      tokens: chunks.reduce((n, c) => n + c.tokens.length, 0),
      bytes: 0,
      createdAt: previous?.createdAt ?? now,
      lastUsedAt: now,
      pinned: input.pin ?? previous?.pinned ?? false,
    };
    manifest.bytes = uniqueBytes(manifest);
    await this.putManifest(manifest);
    if (previous) await this.dropUnnamed(previous.chunks.map((c) => c.id), model);
    this.store.announce?.({ kind: previous ? 'updated' : 'added', ids: [id] });
    await this.enforceBudget();
    opts.onProgress?.({ phase: 'done', done: total, total });
    const info = this.info((await this.store.getManifest(id)) ?? manifest, model);
    return { ...info, computedChunks: computed, ...(warnings.length > 0 ? { warnings } : {}) };
  }

  async list(model?: LibraryModel): Promise<DocumentInfo[]> {
    await this.open();
    const all = await this.documents();
    return all.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id)).map((m) => this.info(m, model));
  }

  async get(id: string, model?: LibraryModel): Promise<DocumentInfo | undefined> {
    await this.open();
    if (id.startsWith(PENDING_MANIFEST_PREFIX)) return undefined;
    const m = await this.store.getManifest(id);
    return m && this.info(m, model);
  }

  /** Removes a document and the chunks no other document names. Returns whether it existed. */
  async remove(id: string, model?: LibraryModel): Promise<boolean> {
    await this.open();
    const m = await this.store.getManifest(id);
    if (!m) return false;
    await this.store.deleteManifests([id]);
    await this.dropUnnamed(
      m.chunks.map((c) => c.id),
      model,
    );
    this.store.announce?.({ kind: 'removed', ids: [id] });
    return true;
  }

  async clear(model?: LibraryModel): Promise<void> {
    await this.open();
    const all = await this.store.listManifests();
    await this.store.deleteManifests(all.map((m) => m.id));
    const ids = await this.store.chunkIds();
    await this.store.deleteChunks(ids);
    model?.cache.forget(ids);
    this.store.announce?.({ kind: 'cleared', ids: all.map((m) => m.id) });
  }

  async setPinned(id: string, pinned: boolean, model?: LibraryModel): Promise<DocumentInfo> {
    const m = await this.requireManifest(id);
    m.pinned = pinned;
    await this.putManifest(m);
    this.store.announce?.({ kind: 'updated', ids: [id] });
    return this.info(m, model);
  }

  /**
   * The documents' chunks for the loaded model, in document order. A document read for another
   * model or other settings is read again (its chunks are computed when linked, and its manifest
   * is rewritten by `afterUse`).
   */
  async resolve(ids: readonly string[] | 'all', model: LibraryModel): Promise<ResolvedDocument[]> {
    await this.open();
    let manifests: DocumentManifest[];
    if (ids === 'all') manifests = (await this.documents()).sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
    else {
      if (!Array.isArray(ids) || ids.some((d) => typeof d !== 'string')) {
        throw new InvalidRequestError('bad-documents', "documents must be an array of document ids or 'all'");
      }
      manifests = [];
      for (const id of ids) {
        const m = await this.store.getManifest(id);
        if (!m) throw new InvalidRequestError('unknown-document', `there is no document '${id}'; add it first (documents.add) or list them (documents.list)`, { id });
        manifests.push(m);
      }
    }
    const settings = settingsRecord(model.settings);
    const out: ResolvedDocument[] = [];
    for (const m of manifests) {
      const current = m.modelFingerprint === model.fingerprint && sameSettings(m.settings, settings);
      const chunks: ReadChunk[] = current
        ? m.chunks.map((c, index) => ({ id: c.id, tokens: c.tokens, context: c.context ?? [], start: c.start, end: c.end, index }))
        : await readDocument(m.text, model.tokenizer, model.fingerprint, model.settings);
      out.push({ manifest: m, current, chunks: chunks.map((c) => ({ ...c, text: m.text.slice(c.start, c.end) })) });
    }
    return out;
  }

  /**
   * After a request used these documents: writes the records computed for them (a chunk that was
   * evicted or corrupt is stored again), rewrites manifests read for another model, marks them
   * used, and keeps the store within its budget. Returns warnings instead of throwing.
   */
  async afterUse(docs: readonly ResolvedDocument[], fresh: readonly (readonly [string, Uint8Array])[], model: LibraryModel): Promise<string[]> {
    const warnings: string[] = [];
    const ours = new Set(docs.flatMap((d) => d.chunks.map((c) => c.id)));
    const records = fresh.filter(([id]) => ours.has(id));
    const written = new Set<string>();
    if (records.length > 0) {
      const failed = await this.write(records, model);
      if (failed) warnings.push(failed.message);
      else for (const [id] of records) written.add(id);
    }
    const size = new Map(records.map(([id, b]) => [id, b.byteLength]));
    const now = Date.now();
    for (const d of docs) {
      // Re-read: another tab may have removed or replaced it meanwhile.
      const m = await this.store.getManifest(d.manifest.id);
      if (!m || m.textHash !== d.manifest.textHash) continue;
      let chunks: ManifestChunk[] = m.chunks;
      if (!d.current) {
        chunks = d.chunks.map((c) => ({ id: c.id, tokens: c.tokens, context: c.context, start: c.start, end: c.end, bytes: written.has(c.id) ? size.get(c.id)! : 0 }));
        m.modelFingerprint = model.fingerprint;
        m.settings = settingsRecord(model.settings);
        m.tokens = chunks.reduce((n, c) => n + c.tokens.length, 0);
      } else chunks = chunks.map((c) => (written.has(c.id) ? { ...c, bytes: size.get(c.id)! } : c));
      m.chunks = chunks;
      m.bytes = uniqueBytes(m);
      m.lastUsedAt = now;
      try {
        await this.putManifest(m);
      } catch (err) {
        warnings.push(`document '${m.id}' could not be marked used: ${(err as Error).message}`);
      }
    }
    if (!docs.every((d) => d.current)) this.store.announce?.({ kind: 'updated', ids: docs.map((d) => d.manifest.id) });
    // Only written records can take the store over its budget.
    if (written.size > 0) {
      try {
        await this.enforceBudget();
      } catch (err) {
        warnings.push(`storage eviction failed: ${(err as Error).message}`);
      }
    }
    for (const w of warnings) this.warn(w);
    return warnings;
  }

  async stats(model?: LibraryModel): Promise<DocumentStats> {
    await this.open();
    const manifests = await this.documents();
    const cache = model?.cache.stats();
    const est = await this.store.estimate?.().catch(() => undefined);
    const unique = storedSizes(manifests);
    const chunkIds = new Set(manifests.flatMap((m) => m.chunks.map((c) => c.id)));
    return {
      documents: manifests.length,
      chunks: chunkIds.size,
      tokens: manifests.reduce((n, m) => n + m.tokens, 0),
      tiers: {
        gpu: { chunks: cache?.gpu.chunks ?? 0, tokens: cache?.gpu.tokens ?? 0, pinned: cache?.gpu.pinned ?? 0, bytes: 0 },
        memory: { chunks: cache?.memory.chunks ?? 0, bytes: cache?.memory.bytes ?? 0, budgetBytes: cache?.memory.budgetBytes ?? 0 },
        store: {
          name: this.store.name,
          chunks: unique.size,
          bytes: total(unique),
          budgetBytes: this.budget,
          ...(est ? { quotaBytes: est.quota, usageBytes: est.usage, ...(est.persisted !== undefined ? { persisted: est.persisted } : {}) } : {}),
        },
      },
      hits: cache?.hits ?? { gpu: 0, memory: 0, store: 0 },
      misses: cache?.misses ?? 0,
      corrupt: cache?.corrupt ?? 0,
      evictions: { gpu: cache?.evictions.gpu ?? 0, memory: cache?.evictions.memory ?? 0, store: this.storeEvictions },
      collected: this.collected,
      io: cache?.io ?? { readBytes: 0, readMs: 0, writeBytes: 0, writeMs: 0 },
      warnings: [...this.warnings],
    };
  }

  /** The document's manifest and its stored chunk records in one `.kvpack` file. */
  async exportPack(id: string, model: LibraryModel): Promise<Uint8Array> {
    const m = await this.requireManifest(id);
    const ids = [...new Set(m.chunks.map((c) => c.id))];
    const got = await this.store.getChunks(ids);
    const records = new Map<string, Uint8Array>();
    const missing: ChunkRequest[] = [];
    ids.forEach((cid, i) => {
      const b = got[i] ?? model.cache.memoryRecord(cid);
      if (b) records.set(cid, b);
      else {
        const c = m.chunks.find((x) => x.id === cid)!;
        missing.push({ id: cid, tokens: c.tokens, context: c.context ?? [] });
      }
    });
    if (missing.length > 0) {
      if (m.modelFingerprint !== model.fingerprint) {
        throw new StorageError('model-mismatch', `document '${id}' was read with another model and some of its chunks are not stored; ask about it once with this model, then export it`);
      }
      // Evicted chunks are computed again so the pack is whole.
      for (const r of missing) {
        const lease = await model.cache.acquire([r]);
        try {
          records.set(r.id, lease.fresh[0]?.[1] ?? model.cache.memoryRecord(r.id) ?? (await model.cache.encode(lease.kvs[0])));
        } finally {
          lease.release();
        }
      }
    }
    return encodeKvPack(m, records);
  }

  /** Adds a document from a `.kvpack`; refuses a pack made for another model. */
  async importPack(bytes: Uint8Array, model: LibraryModel): Promise<DocumentInfo> {
    await this.open();
    const { manifest, records } = decodeKvPack(bytes);
    if (manifest.modelFingerprint !== model.fingerprint) {
      throw new StorageError(
        'model-mismatch',
        `this .kvpack holds chunks made by another model than the one loaded (document '${manifest.id}'); load the model it was packed with, or add the document's text instead`,
        { id: manifest.id },
      );
    }
    checkId(manifest.id);
    const entries = [...records];
    for (let i = 0; i < entries.length; ) {
      const batch: [string, Uint8Array][] = [];
      let n = 0;
      while (i < entries.length && (batch.length === 0 || n < WRITE_BATCH_BYTES)) {
        batch.push(entries[i]);
        n += entries[i++][1].byteLength;
      }
      const failed = await this.write(batch, model);
      if (failed) throw failed;
    }
    const previous = await this.store.getManifest(manifest.id);
    const now = Date.now();
    const m: DocumentManifest = {
      ...manifest,
      chunks: manifest.chunks.map((c) => ({ ...c, bytes: records.get(c.id)?.byteLength ?? 0 })),
      createdAt: previous?.createdAt ?? now,
      lastUsedAt: now,
    };
    m.bytes = uniqueBytes(m);
    await this.putManifest(m);
    if (previous) await this.dropUnnamed(previous.chunks.map((c) => c.id), model);
    this.store.announce?.({ kind: previous ? 'updated' : 'added', ids: [m.id] });
    await this.enforceBudget();
    return this.info(m, model);
  }

  /**
   * Deletes stored chunks, least recently used first (a chunk's time is its most recent
   * document's), until the stored bytes are within the budget; chunks a pinned document names
   * are never deleted. Returns the bytes freed.
   */
  async enforceBudget(extra = 0): Promise<number> {
    const manifests = await this.documents();
    const sizes = storedSizes(manifests);
    const lastUsed = new Map<string, number>();
    const pinned = new Set<string>();
    for (const m of manifests) {
      for (const c of m.chunks) {
        lastUsed.set(c.id, Math.max(lastUsed.get(c.id) ?? 0, m.lastUsedAt));
        if (m.pinned) pinned.add(c.id);
      }
    }
    let used = total(sizes) + extra;
    if (used <= this.budget) return 0;
    const order = [...sizes.keys()].filter((id) => !pinned.has(id)).sort((a, b) => lastUsed.get(a)! - lastUsed.get(b)!);
    const victims: string[] = [];
    let freed = 0;
    for (const id of order) {
      if (used <= this.budget) break;
      victims.push(id);
      used -= sizes.get(id)!;
      freed += sizes.get(id)!;
    }
    if (victims.length === 0) return 0;
    await this.store.deleteChunks(victims);
    this.storeEvictions += victims.length;
    const gone = new Set(victims);
    for (const m of manifests) {
      if (!m.chunks.some((c) => gone.has(c.id) && c.bytes > 0)) continue;
      m.chunks = m.chunks.map((c) => (gone.has(c.id) ? { ...c, bytes: 0 } : c));
      m.bytes = uniqueBytes(m);
      await this.putManifest(m);
    }
    return freed;
  }

  private async write(records: readonly (readonly [string, Uint8Array])[], model: LibraryModel): Promise<StorageError | undefined> {
    const need = records.reduce((n, [, b]) => n + b.byteLength, 0);
    await this.enforceBudget(need);
    let failed = await model.cache.persist(records);
    if (failed?.code === 'quota-exceeded') {
      // The browser refused for room: make room beyond what the budget asked, and retry once.
      // Free as many bytes as the write needs (the browser's own usage figure lags behind deletes).
      const freed = await this.makeRoom(need);
      failed = await model.cache.persist(records);
      if (!failed) this.warn(`the browser refused ${need} bytes of chunk records for lack of room; ${freed} bytes of older chunks were evicted and the write retried`);
    }
    if (failed) {
      const err = new StorageError(failed.code, `${failed.message.replace(/\.$/, '')}; the chunks are computed again when next used`, failed.fields);
      this.warn(err.message);
      return err;
    }
    return undefined;
  }

  private async storedBytes(): Promise<number> {
    return total(storedSizes(await this.documents()));
  }

  /** Sizes of stored records that another manifest already knows. */
  private async sizesOf(ids: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (ids.length === 0) return out;
    const want = new Set(ids);
    for (const m of await this.documents()) for (const c of m.chunks) if (want.has(c.id) && c.bytes > 0) out.set(c.id, c.bytes);
    const unknown = ids.filter((id) => !out.has(id));
    if (unknown.length > 0) {
      const got = await this.store.getChunks(unknown);
      unknown.forEach((id, i) => out.set(id, got[i]?.byteLength ?? 0));
    }
    return out;
  }

  private async dropUnnamed(ids: readonly string[], model?: LibraryModel): Promise<void> {
    const named = new Set((await this.store.listManifests()).flatMap((m) => m.chunks.map((c) => c.id)));
    const drop = [...new Set(ids)].filter((id) => !named.has(id));
    if (drop.length === 0) return;
    await this.store.deleteChunks(drop);
    model?.cache.forget(drop);
  }

  /** Manifests of documents (not the pending ones of reads in progress). */
  private async documents(): Promise<DocumentManifest[]> {
    return (await this.store.listManifests()).filter((m) => !isPending(m));
  }

  /** Evicts at least `need` bytes of chunks (least recently used, never a pinned document's) below what is stored now. */
  private async makeRoom(need: number): Promise<number> {
    const before = this.budget;
    this.budget = Math.max(0, Math.min(this.budget, await this.storedBytes()));
    try {
      return await this.enforceBudget(need);
    } finally {
      this.budget = before;
    }
  }

  /** A refused manifest write evicts room for it and retries once; a second refusal is the caller's typed error. */
  private async putManifest(m: DocumentManifest): Promise<void> {
    try {
      await this.store.putManifest(m);
    } catch (err) {
      if (!(err instanceof StorageError && err.code === 'quota-exceeded')) throw err;
      const need = 2 * JSON.stringify(m).length;
      const freed = await this.makeRoom(need);
      try {
        await this.store.putManifest(m);
        this.warn(`the browser refused document '${m.id}' for lack of room; ${freed} bytes of older chunks were evicted and the write retried`);
      } catch (again) {
        this.warn(`the browser refused document '${m.id}' for lack of room, even after ${freed} bytes of older chunks were evicted`);
        throw again;
      }
    }
  }

  private async requireManifest(id: string): Promise<DocumentManifest> {
    await this.open();
    const m = await this.store.getManifest(id);
    if (!m) throw new InvalidRequestError('unknown-document', `there is no document '${id}'`, { id });
    return m;
  }

  private info(m: DocumentManifest, model?: LibraryModel): DocumentInfo {
    return documentInfo(m, model);
  }

  private warn(message: string): void {
    this.warnings.push(message);
    if (this.warnings.length > MAX_WARNINGS) this.warnings.shift();
  }
}

/** What a manifest says about its document; `currentModel` is whether its chunks were made for `model`. */
export function documentInfo(m: DocumentManifest, model?: LibraryModel): DocumentInfo {
  return {
    id: m.id,
    title: m.title,
    textHash: m.textHash,
    chars: m.text.length,
    tokens: m.tokens,
    chunks: m.chunks.length,
    storedChunks: m.chunks.filter((c) => c.bytes > 0).length,
    bytes: m.bytes,
    pinned: m.pinned,
    createdAt: m.createdAt,
    lastUsedAt: m.lastUsedAt,
    currentModel: model !== undefined && m.modelFingerprint === model.fingerprint && sameSettings(m.settings, settingsRecord(model.settings)),
  };
}

/** Stored record size by chunk id, over the manifests (a chunk two documents share counts once). */
function storedSizes(ms: readonly DocumentManifest[]): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const m of ms) for (const c of m.chunks) if (c.bytes > 0) sizes.set(c.id, c.bytes);
  return sizes;
}

function total(sizes: ReadonlyMap<string, number>): number {
  let n = 0;
  for (const b of sizes.values()) n += b;
  return n;
}

/** Bytes of a document's stored chunk records. */
function uniqueBytes(m: DocumentManifest): number {
  return total(storedSizes([m]));
}

function checkId(id: string): void {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    throw new InvalidRequestError('bad-document-id', `a document id is 1-256 characters of letters, digits and . : / @ + - _ (and spaces, # ? & = % ~ after the first); got '${String(id)}'`, { id: String(id) });
  }
}

function firstLine(text: string): string | undefined {
  const line = text
    .split('\n')
    .map((l) => l.replace(/^#+\s*/, '').trim())
    .find((l) => l.length > 0);
  return line ? (line.length > 80 ? `${line.slice(0, 77)}...` : line) : undefined;
}
