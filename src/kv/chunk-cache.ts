// The one owner of chunk KV: which chunks are resident where, what may be evicted, and what is
// persisted. Three tiers, fastest first:
//   gpu     pages in the model's KV pool, mapped by reference into sequences (an LRU; pinned
//           while a request uses them);
//   memory  encoded records in this process (an LRU within a byte budget), so a chunk evicted
//           from the pool comes back without touching storage;
//   store   the persistent tier (IndexedDB in a page, a folder on Node), through ChunkStore.
// A miss everywhere computes the chunk alone (its lead-in context first, whose KV is dropped).
// Prompts kept for exact prefix reuse ('prefix') live here too: they share the pool.
//
// A stored record that fails its checksum, version, shape or model check is a miss: it is
// recomputed, overwritten and counted, and never fails the request.
import { KVCacheError, StorageError } from '../errors.ts';
import { decodeChunkRecord, encodeChunkRecord, type KvDtype, type KvStorageDtype } from './chunk-record.ts';
import type { PageSpan } from './pages.ts';
import type { ChunkStore } from './store.ts';

/**
 * A chunk's KV in pages of the pool, computed alone. Sequences map the pages by reference at any
 * position; nothing writes them again.
 */
export interface ChunkKV {
  readonly tokens: readonly number[];
  readonly spans: readonly PageSpan[];
  /** Gives the pages back to the pool once no sequence maps them. */
  release(): void;
}

/** What the cache needs from the model: compute, read and write chunk KV, and the pool's room. */
export interface ChunkBackend {
  readonly nLayers: number;
  readonly kvDim: number;
  /** How KV rows are held in the pool (and come out of exportChunk). */
  readonly kvDtype: KvDtype;
  /** Computes `tokens` alone, after `context` (whose KV is dropped), into pages of the pool. */
  computeChunk(tokens: readonly number[], signal?: AbortSignal, context?: readonly number[]): Promise<ChunkKV>;
  /** Per layer K rows then V rows, (nTokens, kvDim) in kvDtype. */
  exportChunk(kv: ChunkKV): Promise<Uint8Array>;
  importChunk(tokens: readonly number[], rows: Uint8Array): ChunkKV;
  /** Free pages in the pool now. */
  freePages(): number;
}

export type ChunkSource = 'gpu' | 'memory' | 'store' | 'computed';

export interface ChunkRequest {
  id: string;
  tokens: readonly number[];
  /** Tokens the chunk is computed after (a lead-in); they are part of the id, not of the chunk. */
  context?: readonly number[];
}

/** The chunks of one request, pinned in the pool until released. */
export interface ChunkLease {
  readonly kvs: ChunkKV[];
  readonly sources: ChunkSource[];
  /** Records made by this lease's computed chunks, not yet in the store. */
  readonly fresh: [string, Uint8Array][];
  release(): void;
}

export interface ChunkCacheOptions {
  modelFingerprint: string;
  store?: ChunkStore;
  /** How records are stored in the memory tier and the store (default 'f16'). */
  storageDtype?: KvStorageDtype;
  /** Byte budget of the memory tier (default 128 MiB; 0 turns it off). */
  memoryBudgetBytes?: number;
  /** Prompts kept for exact prefix reuse (default 8). */
  maxHeldPrompts?: number;
}

export interface ChunkCacheStats {
  gpu: { chunks: number; tokens: number; pinned: number };
  memory: { chunks: number; bytes: number; budgetBytes: number };
  hits: Record<'gpu' | 'memory' | 'store', number>;
  /** Chunks that had to be computed. */
  misses: number;
  /** Stored or memory records that failed a check, were dropped and recomputed. */
  corrupt: number;
  evictions: { gpu: number; memory: number };
  heldPrompts: number;
  /** Store traffic of this cache: bytes and milliseconds spent reading and writing records. */
  io: { readBytes: number; readMs: number; writeBytes: number; writeMs: number };
}

interface GpuEntry {
  kv: ChunkKV;
  pins: number;
}

const DEFAULT_MEMORY_BUDGET = 128 * 1024 * 1024;

export class ChunkCache {
  readonly storageDtype: KvStorageDtype;
  readonly memoryBudgetBytes: number;
  /** Least recently used first. */
  private readonly gpu = new Map<string, GpuEntry>();
  private readonly memory = new Map<string, Uint8Array>();
  private memoryBytes = 0;
  private readonly prompts: { kv: ChunkKV; pins: number }[] = [];
  private readonly maxHeldPrompts: number;
  private readonly counters = { hits: { gpu: 0, memory: 0, store: 0 }, misses: 0, corrupt: 0, evictions: { gpu: 0, memory: 0 } };
  private readonly io = { readBytes: 0, readMs: 0, writeBytes: 0, writeMs: 0 };
  readonly store: ChunkStore | undefined;

  constructor(
    private readonly backend: ChunkBackend,
    private readonly opts: ChunkCacheOptions,
  ) {
    this.storageDtype = opts.storageDtype ?? 'f16';
    this.memoryBudgetBytes = opts.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET;
    this.maxHeldPrompts = opts.maxHeldPrompts ?? 8;
    this.store = opts.store;
  }

  /**
   * Brings every requested chunk into the pool and pins it there until the lease is released:
   * from the pool, the memory tier, the store, or computed. Duplicated ids share one entry.
   * When the pool is full, unpinned chunks and held prompts are evicted (least recently used
   * first) and the step is retried.
   */
  async acquire(reqs: readonly ChunkRequest[], opts: { signal?: AbortSignal; onChunk?: (index: number, source: ChunkSource) => void } = {}): Promise<ChunkLease> {
    const kvs: ChunkKV[] = [];
    const sources: ChunkSource[] = [];
    const fresh: [string, Uint8Array][] = [];
    const pinned: string[] = [];
    const release = (): void => {
      for (const id of pinned.splice(0)) this.unpin(id);
    };
    try {
      // Ids stored and not resident are fetched together: one store transaction.
      const wanted = reqs.filter((r) => !this.gpu.has(r.id) && !this.memory.has(r.id)).map((r) => r.id);
      const stored = new Map<string, Uint8Array>();
      if (this.store && wanted.length > 0) {
        const unique = [...new Set(wanted)];
        const got = await this.readStore(unique);
        unique.forEach((id, i) => {
          const b = got[i];
          if (b) stored.set(id, b);
        });
      }
      for (const [i, r] of reqs.entries()) {
        const { kv, source } = await this.bring(r, stored, fresh, opts.signal);
        this.pin(r.id);
        pinned.push(r.id);
        kvs.push(kv);
        sources.push(source);
        opts.onChunk?.(i, source);
      }
    } catch (err) {
      release();
      throw err;
    }
    return { kvs, sources, fresh, release };
  }

  /** Runs `f`; when the pool is full, evicts unpinned entries and retries, until it fits or nothing is left to evict. */
  async withRoom<T>(f: () => Promise<T> | T): Promise<T> {
    for (;;) {
      try {
        return await f();
      } catch (err) {
        if (!(err instanceof KVCacheError && err.code === 'kv-cache-full')) throw err;
        const needed = Number(err.fields.needed ?? 1);
        if (!this.evictPool(Math.max(1, needed - this.backend.freePages()))) throw err;
      }
    }
  }

  /**
   * Makes sure `pages` pages are free in the pool (a generation's decode growth), evicting
   * unpinned chunks and held prompts; returns whether they are.
   */
  reserve(pages: number): boolean {
    const short = pages - this.backend.freePages();
    if (short <= 0) return true;
    this.evictPool(short);
    return this.backend.freePages() >= pages;
  }

  /** Writes records to the store (one transaction); a refusal for room is returned, never thrown. */
  async persist(records: readonly (readonly [string, Uint8Array])[]): Promise<StorageError | undefined> {
    if (!this.store || records.length === 0) return undefined;
    try {
      const t0 = performance.now();
      await this.store.putChunks(records);
      this.io.writeMs += performance.now() - t0;
      this.io.writeBytes += records.reduce((n, [, b]) => n + b.byteLength, 0);
      return undefined;
    } catch (err) {
      if (err instanceof StorageError) return err;
      return new StorageError('store-unavailable', `writing ${records.length} chunk record(s) failed: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  /** A record for a computed chunk's KV (the stored format). */
  async encode(kv: ChunkKV): Promise<Uint8Array> {
    const rows = await this.backend.exportChunk(kv);
    return encodeChunkRecord(this.shape(kv.tokens), rows, this.backend.kvDtype, this.storageDtype);
  }

  /** The encoded record of a chunk when the memory tier has it. */
  memoryRecord(id: string): Uint8Array | undefined {
    return this.memory.get(id);
  }

  /** Drops chunks from the pool and the memory tier (a removed document); pinned ones stay in the pool. */
  forget(ids: Iterable<string>): void {
    for (const id of ids) {
      const e = this.gpu.get(id);
      if (e && e.pins === 0) {
        e.kv.release();
        this.gpu.delete(id);
      }
      this.dropMemory(id);
    }
  }

  /** Prompts kept for 'prefix': the longest one whose tokens start `tokens` (at most tokens.length-1 of them). */
  matchPrompt(tokens: readonly number[]): { kv: ChunkKV; reuse: number; unpin: () => void } | undefined {
    let best: (typeof this.prompts)[number] | undefined;
    let reuse = 0;
    for (const p of this.prompts) {
      let n = 0;
      const max = Math.min(p.kv.tokens.length, tokens.length - 1); // at least one token runs, to sample from
      while (n < max && p.kv.tokens[n] === tokens[n]) n++;
      if (n > reuse) {
        reuse = n;
        best = p;
      }
    }
    if (!best) return undefined;
    const p = best;
    this.prompts.push(...this.prompts.splice(this.prompts.indexOf(p), 1)); // most recently used
    p.pins++;
    return { kv: p.kv, reuse, unpin: () => void p.pins-- };
  }

  /** Keeps a prompt's KV for later 'prefix' requests; a kept prompt it extends adds nothing any more. */
  holdPrompt(kv: ChunkKV): void {
    for (let i = this.prompts.length - 1; i >= 0; i--) {
      const p = this.prompts[i];
      if (p.pins === 0 && p.kv.tokens.length <= kv.tokens.length && p.kv.tokens.every((t, j) => t === kv.tokens[j])) {
        p.kv.release();
        this.prompts.splice(i, 1);
      }
    }
    this.prompts.push({ kv, pins: 0 });
    while (this.prompts.length > this.maxHeldPrompts) {
      const i = this.prompts.findIndex((p) => p.pins === 0);
      if (i < 0) break;
      this.prompts.splice(i, 1)[0].kv.release();
    }
  }

  stats(): ChunkCacheStats {
    let tokens = 0;
    let pinned = 0;
    for (const e of this.gpu.values()) {
      tokens += e.kv.tokens.length;
      if (e.pins > 0) pinned++;
    }
    return {
      gpu: { chunks: this.gpu.size, tokens, pinned },
      memory: { chunks: this.memory.size, bytes: this.memoryBytes, budgetBytes: this.memoryBudgetBytes },
      hits: { ...this.counters.hits },
      misses: this.counters.misses,
      corrupt: this.counters.corrupt,
      evictions: { ...this.counters.evictions },
      heldPrompts: this.prompts.length,
      io: { ...this.io },
    };
  }

  /**
   * Empties a tier: 'gpu' releases every unpinned chunk and held prompt (their pages return to
   * the pool), 'memory' drops the encoded records kept in this process. The store is untouched.
   */
  evictTier(tier: 'gpu' | 'memory'): number {
    if (tier === 'memory') {
      const n = this.memory.size;
      this.counters.evictions.memory += n;
      this.memory.clear();
      this.memoryBytes = 0;
      return n;
    }
    const before = this.counters.evictions.gpu;
    this.evictPool(Number.POSITIVE_INFINITY);
    return this.counters.evictions.gpu - before;
  }

  /** Releases every page this cache holds (model unload). */
  destroy(): void {
    for (const e of this.gpu.values()) e.kv.release();
    this.gpu.clear();
    for (const p of this.prompts.splice(0)) p.kv.release();
    this.memory.clear();
    this.memoryBytes = 0;
  }

  private async bring(r: ChunkRequest, stored: ReadonlyMap<string, Uint8Array>, fresh: [string, Uint8Array][], signal?: AbortSignal): Promise<{ kv: ChunkKV; source: ChunkSource }> {
    const hit = this.gpu.get(r.id);
    if (hit) {
      this.touchGpu(r.id, hit);
      this.counters.hits.gpu++;
      return { kv: hit.kv, source: 'gpu' };
    }
    for (const [source, bytes] of [
      ['memory', this.memory.get(r.id)],
      ['store', stored.get(r.id)],
    ] as const) {
      if (!bytes) continue;
      let rows: Uint8Array;
      try {
        rows = decodeChunkRecord(bytes, this.shape(r.tokens), this.backend.kvDtype);
      } catch (err) {
        if (!(err instanceof KVCacheError)) throw err;
        this.counters.corrupt++;
        if (source === 'memory') this.dropMemory(r.id);
        continue;
      }
      const kv = await this.withRoom(() => this.backend.importChunk(r.tokens, rows));
      this.gpu.set(r.id, { kv, pins: 0 });
      if (source === 'store') this.keepInMemory(r.id, bytes);
      else this.touchMemory(r.id);
      this.counters.hits[source]++;
      return { kv, source };
    }
    this.counters.misses++;
    const kv = await this.withRoom(() => this.backend.computeChunk(r.tokens, signal, r.context));
    this.gpu.set(r.id, { kv, pins: 0 });
    const record = await this.encode(kv);
    this.keepInMemory(r.id, record);
    fresh.push([r.id, record]);
    return { kv, source: 'computed' };
  }

  private async readStore(ids: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    try {
      const t0 = performance.now();
      const got = await this.store!.getChunks(ids);
      this.io.readMs += performance.now() - t0;
      this.io.readBytes += got.reduce((n, b) => n + (b?.byteLength ?? 0), 0);
      return got;
    } catch {
      // A store that cannot be read is a miss for every chunk: the request goes on without it.
      return ids.map(() => undefined);
    }
  }

  private shape(tokens: readonly number[]) {
    return { nLayers: this.backend.nLayers, kvDim: this.backend.kvDim, tokens, modelFingerprint: this.opts.modelFingerprint };
  }

  private pin(id: string): void {
    this.gpu.get(id)!.pins++;
  }

  private unpin(id: string): void {
    const e = this.gpu.get(id);
    if (e && e.pins > 0) e.pins--;
  }

  private touchGpu(id: string, e: GpuEntry): void {
    this.gpu.delete(id);
    this.gpu.set(id, e);
  }

  private touchMemory(id: string): void {
    const b = this.memory.get(id);
    if (!b) return;
    this.memory.delete(id);
    this.memory.set(id, b);
  }

  private keepInMemory(id: string, bytes: Uint8Array): void {
    if (bytes.byteLength > this.memoryBudgetBytes) return;
    this.dropMemory(id);
    this.memory.set(id, bytes);
    this.memoryBytes += bytes.byteLength;
    for (const [old, b] of this.memory) {
      if (this.memoryBytes <= this.memoryBudgetBytes) break;
      this.memory.delete(old);
      this.memoryBytes -= b.byteLength;
      this.counters.evictions.memory++;
    }
  }

  private dropMemory(id: string): void {
    const b = this.memory.get(id);
    if (!b) return;
    this.memory.delete(id);
    this.memoryBytes -= b.byteLength;
  }

  /**
   * Evicts unpinned chunks (least recently used first), then unpinned held prompts, until `pages`
   * more pages are free or nothing is left; returns whether anything was evicted. Pages a
   * sequence still maps stay allocated, so progress is measured, not assumed.
   */
  private evictPool(pages: number): boolean {
    const target = this.backend.freePages() + pages;
    let evicted = false;
    for (const [id, e] of this.gpu) {
      if (this.backend.freePages() >= target) return evicted;
      if (e.pins > 0) continue;
      e.kv.release();
      this.gpu.delete(id);
      this.counters.evictions.gpu++;
      evicted = true;
    }
    for (let i = 0; i < this.prompts.length && this.backend.freePages() < target; ) {
      if (this.prompts[i].pins > 0) {
        i++;
        continue;
      }
      this.prompts.splice(i, 1)[0].kv.release();
      evicted = true;
    }
    return evicted;
  }
}
