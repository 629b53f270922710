// Page bookkeeping of the paged KV cache, on the CPU: a reference-counted page allocator and
// per-sequence page tables. Nothing here touches the GPU, so it is unit-tested on its own.
//
// A sequence's KV is a list of page-table entries (page, startPosition, nTokens, slotOffset): the
// entry covers slots slotOffset .. slotOffset+nTokens-1 of `page`, holding the tokens at absolute
// positions startPosition .. startPosition+nTokens-1. Keys are stored before RoPE and attention
// rotates each by its position, so nothing ties a page to a position: the chunk cache maps shared
// pages into a sequence at ANY start position (not a multiple of 16, and a chunk may be entered
// part-way through its first page, as when AttnLink recomputes a chunk's first tokens privately).
// Entries are therefore not page-aligned in position, not sorted, and may leave gaps; attention
// reads every entry and masks by position.
import { KVCacheError } from '../errors.ts';
import { KV_PAGE_SIZE } from '../gpu/ops/kv.ts';

export { KV_PAGE_SIZE };

/** u32 words per page-table entry on the GPU: (page, start_pos, n_tokens, slot_offset), one vec4<u32>. */
export const PAGE_TABLE_ENTRY_WORDS = 4;

export interface PageTableEntry {
  readonly page: number;
  /** Absolute position of the entry's first token; the others follow one by one. */
  readonly startPosition: number;
  /** 1..16 tokens. */
  readonly nTokens: number;
  /** First slot inside the page (slotOffset + nTokens <= 16). */
  readonly slotOffset: number;
}

/** A run of filled slots of a page that another sequence (or the chunk store) holds. */
export interface PageSpan {
  page: number;
  nTokens: number;
  /** First slot inside the page; 0 when omitted. */
  slotOffset?: number;
}

/** Hands out page ids 0..nPages-1 with reference counts, so pages can be shared between sequences. */
export class PageAllocator {
  private readonly refs: Uint32Array;
  private readonly free: number[] = [];

  constructor(readonly nPages: number) {
    if (!Number.isInteger(nPages) || nPages <= 0) {
      throw new KVCacheError('bad-page-count', `a KV cache needs a positive whole number of pages, got ${nPages}`, { nPages });
    }
    this.refs = new Uint32Array(nPages);
    // Popped from the end, so pages come out in increasing order from a fresh allocator.
    for (let p = nPages - 1; p >= 0; p--) this.free.push(p);
  }

  get freePages(): number {
    return this.free.length;
  }

  get usedPages(): number {
    return this.nPages - this.free.length;
  }

  refCount(page: number): number {
    this.check(page);
    return this.refs[page];
  }

  /** One new page with reference count 1. */
  alloc(): number {
    return this.allocMany(1)[0];
  }

  /** n new pages, all or none: throws KVCacheError 'kv-cache-full' without allocating when fewer are free. */
  allocMany(n: number): number[] {
    if (n > this.free.length) throw cacheFull(n, this.free.length, this.nPages);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const p = this.free.pop()!;
      this.refs[p] = 1;
      out.push(p);
    }
    return out;
  }

  /** Adds a reference to a live page (another sequence or the chunk store now holds it). */
  retain(page: number): void {
    this.check(page);
    if (this.refs[page] === 0) {
      throw new KVCacheError('page-not-allocated', `KV page ${page} is free and cannot be retained; it was released too many times or never allocated`, { page });
    }
    this.refs[page]++;
  }

  /** Drops a reference; the page returns to the free list at zero. */
  release(page: number): void {
    this.check(page);
    if (this.refs[page] === 0) {
      throw new KVCacheError('page-not-allocated', `KV page ${page} is already free; it was released more times than it was retained`, { page });
    }
    if (--this.refs[page] === 0) this.free.push(page);
  }

  private check(page: number): void {
    if (!Number.isInteger(page) || page < 0 || page >= this.nPages) {
      throw new KVCacheError('bad-page', `KV page ${page} does not exist (the cache has pages 0..${this.nPages - 1})`, { page });
    }
  }
}

function cacheFull(needed: number, free: number, total: number): KVCacheError {
  return new KVCacheError(
    'kv-cache-full',
    `the KV cache is full: ${needed} more page(s) of ${KV_PAGE_SIZE} tokens are needed but only ${free} of ${total} are free; ` +
      'release finished sequences or unpinned chunks, shorten the prompt, or load the model with a larger KV token budget',
    { needed, free, total },
  );
}

/**
 * One sequence's page table. Tokens it computes go into its private pages: the free slots of the
 * last page it allocated first, then new pages. Pages mapped from elsewhere (mapShared) are only
 * read, never written, so sharing them is safe.
 */
export class Sequence {
  private readonly list: PageTableEntry[] = [];
  /** Every page this sequence holds a reference to, once per reference. */
  private readonly held: number[] = [];
  /** The private page new tokens go into, and how many of its slots are used. */
  private tailPage = -1;
  private tailFill = KV_PAGE_SIZE;
  private released = false;

  constructor(readonly allocator: PageAllocator) {}

  get entries(): readonly PageTableEntry[] {
    return this.list;
  }

  /** Tokens visible to attention, over every entry. */
  get nTokens(): number {
    let n = 0;
    for (const e of this.list) n += e.nTokens;
    return n;
  }

  /** One past the largest position held (0 when empty): where appended tokens go by default. */
  get nextPosition(): number {
    let n = 0;
    for (const e of this.list) n = Math.max(n, e.startPosition + e.nTokens);
    return n;
  }

  /** Pages needed to append n tokens (0 while they fit in the free slots of the private tail page). */
  pagesNeeded(n: number): number {
    const room = KV_PAGE_SIZE - this.tailFill;
    return n <= room ? 0 : Math.ceil((n - room) / KV_PAGE_SIZE);
  }

  /**
   * Reserves one private slot per new token at the given absolute positions and returns the slot
   * indices (page*16 + offset) for kv_write. Runs of consecutive positions share an entry. Throws
   * KVCacheError 'kv-cache-full' before changing anything when the pages are not there.
   */
  appendSlots(positions: ArrayLike<number>): Uint32Array {
    this.checkLive();
    for (let i = 0; i < positions.length; i++) {
      const pos = positions[i];
      if (!Number.isInteger(pos) || pos < 0 || pos >= 0xffffffff) {
        throw new KVCacheError('bad-position', `token position ${pos} is not a whole number in [0, 2^32-1)`, { position: pos });
      }
    }
    const pages = this.allocator.allocMany(this.pagesNeeded(positions.length));
    let next = 0;
    const slots = new Uint32Array(positions.length);
    for (let i = 0; i < positions.length; i++) {
      if (this.tailFill === KV_PAGE_SIZE) {
        this.tailPage = pages[next++];
        this.tailFill = 0;
        this.held.push(this.tailPage);
      }
      const pos = positions[i];
      const last = this.list[this.list.length - 1];
      if (
        last &&
        last.page === this.tailPage &&
        last.slotOffset + last.nTokens === this.tailFill &&
        last.startPosition + last.nTokens === pos
      ) {
        this.list[this.list.length - 1] = { ...last, nTokens: last.nTokens + 1 };
      } else {
        this.list.push({ page: this.tailPage, startPosition: pos, nTokens: 1, slotOffset: this.tailFill });
      }
      slots[i] = this.tailPage * KV_PAGE_SIZE + this.tailFill;
      this.tailFill++;
    }
    return slots;
  }

  /** Appends n tokens at positions nextPosition.. and returns their positions and slots. */
  append(n: number): { positions: Uint32Array; slots: Uint32Array } {
    const start = this.nextPosition;
    const positions = new Uint32Array(n);
    for (let i = 0; i < n; i++) positions[i] = start + i;
    return { positions, slots: this.appendSlots(positions) };
  }

  /**
   * Maps pages held elsewhere (a cached chunk) into this sequence, by reference: the spans' tokens
   * take positions startPosition, startPosition+1, ... in span order. Each page gains a reference.
   */
  mapShared(spans: readonly PageSpan[], startPosition: number): void {
    this.checkLive();
    let pos = startPosition;
    const added: PageTableEntry[] = [];
    for (const s of spans) {
      const slotOffset = s.slotOffset ?? 0;
      if (!Number.isInteger(s.nTokens) || s.nTokens < 1 || slotOffset < 0 || slotOffset + s.nTokens > KV_PAGE_SIZE) {
        throw new KVCacheError(
          'bad-span',
          `a shared span must cover 1..${KV_PAGE_SIZE} slots inside one page; got slots ${slotOffset}..${slotOffset + s.nTokens - 1} of page ${s.page}`,
          { page: s.page, slotOffset, nTokens: s.nTokens },
        );
      }
      if (this.allocator.refCount(s.page) === 0) {
        throw new KVCacheError('page-not-allocated', `shared KV page ${s.page} is free; the chunk that owned it was released`, { page: s.page });
      }
      added.push({ page: s.page, startPosition: pos, nTokens: s.nTokens, slotOffset });
      pos += s.nTokens;
    }
    for (const e of added) {
      this.allocator.retain(e.page);
      this.held.push(e.page);
      this.list.push(e);
    }
  }

  /** The spans of this sequence's entries, in order: what the chunk store keeps for a prefilled chunk. */
  spans(): PageSpan[] {
    return this.list.map((e) => ({ page: e.page, nTokens: e.nTokens, slotOffset: e.slotOffset }));
  }

  /**
   * A new sequence seeing the same tokens at the same positions, by reference. It writes its own
   * tokens into new pages; this one keeps writing into the free slots of its tail page, which the
   * fork's entries do not cover.
   */
  fork(): Sequence {
    this.checkLive();
    const f = new Sequence(this.allocator);
    for (const e of this.list) {
      this.allocator.retain(e.page);
      f.held.push(e.page);
      f.list.push(e);
    }
    return f;
  }

  /**
   * The page table as GPU words: entry i is (page, start_pos, n_tokens, slot_offset) at words 4i..4i+3.
   * Writes into `out` when given (it must hold 4 words per entry).
   */
  pageTableWords(out?: Uint32Array): Uint32Array {
    const words = out ?? new Uint32Array(this.list.length * PAGE_TABLE_ENTRY_WORDS);
    if (words.length < this.list.length * PAGE_TABLE_ENTRY_WORDS) {
      throw new KVCacheError('page-table-full', `the page table buffer holds ${words.length / PAGE_TABLE_ENTRY_WORDS} entries but the sequence has ${this.list.length}`, {
        capacity: words.length / PAGE_TABLE_ENTRY_WORDS,
        entries: this.list.length,
      });
    }
    this.list.forEach((e, i) => {
      words[i * 4] = e.page;
      words[i * 4 + 1] = e.startPosition;
      words[i * 4 + 2] = e.nTokens;
      words[i * 4 + 3] = e.slotOffset;
    });
    return words;
  }

  /** Drops every page reference; the sequence cannot be used afterwards. */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const p of this.held) this.allocator.release(p);
    this.held.length = 0;
    this.list.length = 0;
    this.tailPage = -1;
    this.tailFill = KV_PAGE_SIZE;
  }

  private checkLive(): void {
    if (this.released) throw new KVCacheError('sequence-released', 'this KV sequence was released; start a new one');
  }
}
