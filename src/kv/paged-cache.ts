// The paged KV cache on the GPU: per layer one K pool and one V pool, each [nPages, 16, kvDim] of
// f32 values or f16 halves (kvDim = nKvHeads*headDim; keys before RoPE), sized from a token budget.
// Page bookkeeping (allocator, sequences, page tables) lives in ./pages.ts; see there for what an
// entry means.
import { KVCacheError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { kvDtypeBytes, type KvDtype } from '../gpu/ops/kv.ts';
import { KV_PAGE_SIZE, PAGE_TABLE_ENTRY_WORDS, PageAllocator, Sequence } from './pages.ts';

export { KV_PAGE_SIZE, PAGE_TABLE_ENTRY_WORDS, PageAllocator, Sequence } from './pages.ts';
export type { PageSpan, PageTableEntry } from './pages.ts';
export type { KvDtype } from '../gpu/ops/kv.ts';

export interface KvCacheShape {
  nLayers: number;
  nKvHeads: number;
  headDim: number;
}

export interface KvCacheOptions {
  /** Element type of the pools (default 'f32'); 'f16' packs two halves per u32 and needs an even kvDim. */
  dtype?: KvDtype;
}

export interface KvLayerPools {
  /** [nPages*16, kvDim] of the cache's dtype, keys before RoPE. */
  readonly k: GPUBuffer;
  /** [nPages*16, kvDim] of the cache's dtype. */
  readonly v: GPUBuffer;
}

const POOL_USAGE = 0x80 | 0x8 | 0x4; // STORAGE | COPY_DST | COPY_SRC (copy-out for the chunk store)

export class PagedKvCache {
  readonly allocator: PageAllocator;
  readonly layers: readonly KvLayerPools[];
  readonly dtype: KvDtype;
  /** Bytes of one token's row in one pool (K or V) of one layer: kvDim * 4 (f32) or kvDim * 2 (f16). */
  readonly rowBytes: number;
  /** Bytes of one page in one pool (K or V) of one layer. */
  readonly pageBytes: number;

  /** Pages for a budget of `tokens` slots. */
  static pagesFor(tokens: number): number {
    return Math.max(1, Math.ceil(tokens / KV_PAGE_SIZE));
  }

  /** Bytes of one layer's K (or V) pool for a budget of `tokenBudget` slots: what each pool buffer takes. */
  static poolBytes(shape: Pick<KvCacheShape, 'nKvHeads' | 'headDim'>, tokenBudget: number, dtype: KvDtype): number {
    return PagedKvCache.pagesFor(tokenBudget) * KV_PAGE_SIZE * shape.nKvHeads * shape.headDim * kvDtypeBytes(dtype);
  }

  /** Bytes of a page-table buffer of `maxEntries` entries (see createPageTableBuffer). */
  static pageTableBytes(maxEntries: number): number {
    return maxEntries * PAGE_TABLE_ENTRY_WORDS * 4;
  }

  /**
   * Allocates the pools for `tokenBudget` token slots (rounded up to whole pages) shared by every
   * sequence. Throws KVCacheError 'kv-pool-too-large' when one layer's pool exceeds what the device
   * can bind, naming the largest budget that fits, and 'bad-kv-shape' for an odd kvDim with f16.
   */
  constructor(
    readonly ctx: GpuContext,
    readonly shape: KvCacheShape,
    tokenBudget: number,
    opts: KvCacheOptions = {},
  ) {
    const kvDim = shape.nKvHeads * shape.headDim;
    this.dtype = opts.dtype ?? 'f32';
    if (this.dtype === 'f16' && kvDim % 2 !== 0) {
      throw new KVCacheError('bad-kv-shape', `f16 KV pools pack two halves per word, so kvDim (nKvHeads*headDim = ${kvDim}) must be even; use dtype 'f32'`, {
        kvDim,
        dtype: this.dtype,
      });
    }
    const nPages = PagedKvCache.pagesFor(tokenBudget);
    this.rowBytes = kvDim * kvDtypeBytes(this.dtype);
    this.pageBytes = KV_PAGE_SIZE * this.rowBytes;
    const poolBytes = PagedKvCache.poolBytes(shape, tokenBudget, this.dtype);
    const max = Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
    if (poolBytes > max) {
      const maxTokens = Math.floor(max / this.pageBytes) * KV_PAGE_SIZE;
      throw new KVCacheError(
        'kv-pool-too-large',
        `a KV budget of ${tokenBudget} tokens needs ${poolBytes} bytes per layer pool but this device binds at most ${max}; use a budget of at most ${maxTokens} tokens`,
        { tokenBudget, poolBytes, max, maxTokens },
      );
    }
    this.allocator = new PageAllocator(nPages);
    const layers: KvLayerPools[] = [];
    for (let l = 0; l < shape.nLayers; l++) {
      layers.push({ k: ctx.createBuffer(`kv-k-${l}`, poolBytes, POOL_USAGE), v: ctx.createBuffer(`kv-v-${l}`, poolBytes, POOL_USAGE) });
    }
    this.layers = layers;
  }

  get nPages(): number {
    return this.allocator.nPages;
  }

  /** Token slots in the whole cache. */
  get capacityTokens(): number {
    return this.allocator.nPages * KV_PAGE_SIZE;
  }

  newSequence(): Sequence {
    return new Sequence(this.allocator);
  }

  /** A page-table buffer of `maxEntries` vec4<u32> entries for one sequence's attention dispatches. */
  createPageTableBuffer(maxEntries: number, label = 'page-table'): GPUBuffer {
    return this.ctx.createBuffer(label, PagedKvCache.pageTableBytes(maxEntries), 0x80 | 0x8 | 0x4); // STORAGE | COPY_DST | COPY_SRC
  }

  /**
   * Uploads a sequence's page table into `buffer` and returns the entry count (the value for the
   * attention dispatches' setters). Throws KVCacheError 'page-table-full' when it does not fit.
   */
  writePageTable(seq: Sequence, buffer: GPUBuffer): number {
    const capacity = Math.floor(buffer.size / (PAGE_TABLE_ENTRY_WORDS * 4));
    if (seq.entries.length > capacity) {
      throw new KVCacheError(
        'page-table-full',
        `the sequence has ${seq.entries.length} page-table entries but its buffer holds ${capacity}; create it with more entries`,
        { entries: seq.entries.length, capacity },
      );
    }
    const words = seq.pageTableWords();
    if (words.length > 0) this.ctx.device.queue.writeBuffer(buffer, 0, words);
    return seq.entries.length;
  }

  destroy(): void {
    for (const l of this.layers) {
      l.k.destroy();
      l.v.destroy();
    }
  }
}
