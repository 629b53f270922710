import { describe, expect, it } from 'vitest';
import { KVCacheError } from '../../src/errors.ts';
import { KV_PAGE_SIZE, PageAllocator, Sequence } from '../../src/kv/pages.ts';

function positionsOf(seq: Sequence): number[] {
  return seq.entries.flatMap((e) => Array.from({ length: e.nTokens }, (_, j) => e.startPosition + j)).sort((a, b) => a - b);
}

describe('PageAllocator', () => {
  it('hands out pages in order, counts references and recycles freed pages', () => {
    const a = new PageAllocator(4);
    expect(a.allocMany(3)).toEqual([0, 1, 2]);
    expect(a.freePages).toBe(1);
    a.retain(1);
    expect(a.refCount(1)).toBe(2);
    a.release(1);
    expect(a.refCount(1)).toBe(1);
    expect(a.freePages).toBe(1);
    a.release(1);
    expect(a.refCount(1)).toBe(0);
    expect(a.freePages).toBe(2);
    expect(a.alloc()).toBe(1);
  });

  it('fails a request it cannot fully serve without allocating anything', () => {
    const a = new PageAllocator(3);
    a.alloc();
    let err: unknown;
    try {
      a.allocMany(3);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KVCacheError);
    expect((err as KVCacheError).code).toBe('kv-cache-full');
    expect((err as KVCacheError).fields).toMatchObject({ needed: 3, free: 2, total: 3 });
    expect(a.freePages).toBe(2);
  });

  it('rejects double frees, retains of free pages and unknown pages', () => {
    const a = new PageAllocator(2);
    const p = a.alloc();
    a.release(p);
    expect(() => a.release(p)).toThrow(/already free/);
    expect(() => a.retain(p)).toThrow(KVCacheError);
    expect(() => a.refCount(2)).toThrow(/does not exist/);
    expect(() => new PageAllocator(0)).toThrow(KVCacheError);
  });
});

describe('Sequence', () => {
  it('fills the private tail page before allocating, one entry per run of positions', () => {
    const a = new PageAllocator(8);
    const s = new Sequence(a);
    const first = s.append(10);
    expect(Array.from(first.positions)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Array.from(first.slots)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const second = s.append(9);
    // 6 slots left in page 0, then page 1.
    expect(Array.from(second.slots)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18]);
    expect(s.entries).toEqual([
      { page: 0, startPosition: 0, nTokens: 16, slotOffset: 0 },
      { page: 1, startPosition: 16, nTokens: 3, slotOffset: 0 },
    ]);
    expect(s.nTokens).toBe(19);
    expect(s.nextPosition).toBe(19);
    expect(a.usedPages).toBe(2);
  });

  it('starts a new entry (same page) when positions jump, leaving a gap', () => {
    const s = new Sequence(new PageAllocator(4));
    s.append(3);
    const slots = s.appendSlots([10, 11, 20]);
    expect(Array.from(slots)).toEqual([3, 4, 5]);
    expect(s.entries).toEqual([
      { page: 0, startPosition: 0, nTokens: 3, slotOffset: 0 },
      { page: 0, startPosition: 10, nTokens: 2, slotOffset: 3 },
      { page: 0, startPosition: 20, nTokens: 1, slotOffset: 5 },
    ]);
    expect(s.nextPosition).toBe(21);
  });

  it('maps a chunk\'s pages at an unaligned position by reference, entering part-way through a page', () => {
    const a = new PageAllocator(10);
    const chunk = new Sequence(a);
    chunk.append(37); // pages 0, 1, 2 (5 tokens in page 2)
    const seq = new Sequence(a);
    seq.append(5); // page 3, positions 0..4
    seq.appendSlots([5, 6, 7]); // the chunk's first 3 tokens recomputed privately
    const spans = chunk.spans();
    spans[0] = { ...spans[0], slotOffset: 3, nTokens: 13 };
    seq.mapShared(spans, 8);
    expect(seq.entries.slice(1)).toEqual([
      { page: 0, startPosition: 8, nTokens: 13, slotOffset: 3 },
      { page: 1, startPosition: 21, nTokens: 16, slotOffset: 0 },
      { page: 2, startPosition: 37, nTokens: 5, slotOffset: 0 },
    ]);
    expect([0, 1, 2].map((p) => a.refCount(p))).toEqual([2, 2, 2]);
    // New tokens never land in shared pages: they go to the private tail page 3.
    const q = seq.append(12);
    expect(Array.from(q.positions)).toEqual(Array.from({ length: 12 }, (_, i) => 42 + i));
    expect(Array.from(q.slots.slice(0, 8))).toEqual([56, 57, 58, 59, 60, 61, 62, 63]);
    expect(Array.from(q.slots.slice(8))).toEqual([64, 65, 66, 67]); // page 4
    expect(positionsOf(seq)).toEqual(Array.from({ length: 54 }, (_, i) => i));
    chunk.release();
    expect([0, 1, 2].map((p) => a.refCount(p))).toEqual([1, 1, 1]);
    seq.release();
    expect(a.freePages).toBe(10);
    expect(() => seq.append(1)).toThrow(/released/);
  });

  it('throws kv-cache-full before changing the page table', () => {
    const a = new PageAllocator(2);
    const s = new Sequence(a);
    s.append(20);
    const before = s.entries.slice();
    expect(() => s.append(13)).toThrow(expect.objectContaining({ code: 'kv-cache-full' }));
    expect(s.entries).toEqual(before);
    expect(s.append(12).slots.length).toBe(12); // exactly the room left
    expect(a.freePages).toBe(0);
  });

  it('fork shares every entry and writes its own tokens to new pages', () => {
    const a = new PageAllocator(4);
    const s = new Sequence(a);
    s.append(4);
    const f = s.fork();
    expect(f.entries).toEqual(s.entries);
    expect(a.refCount(0)).toBe(2);
    expect(Array.from(f.append(1).slots)).toEqual([KV_PAGE_SIZE]);
    expect(Array.from(s.append(1).slots)).toEqual([4]);
    s.release();
    f.release();
    expect(a.freePages).toBe(4);
  });

  it('packs the page table as (page, start, n, slot offset) words and rejects bad input', () => {
    const a = new PageAllocator(4);
    const s = new Sequence(a);
    s.appendSlots([7, 8, 100]);
    expect(Array.from(s.pageTableWords())).toEqual([0, 7, 2, 0, 0, 100, 1, 2]);
    expect(() => s.pageTableWords(new Uint32Array(4))).toThrow(expect.objectContaining({ code: 'page-table-full' }));
    expect(() => s.appendSlots([-1])).toThrow(KVCacheError);
    expect(() => s.mapShared([{ page: 1, nTokens: 3 }], 0)).toThrow(/free/);
    expect(() => s.mapShared([{ page: 0, nTokens: 10, slotOffset: 10 }], 0)).toThrow(/inside one page/);
  });
});
