import { describe, expect, it } from 'vitest';
import { attentionDispatches, chooseAttentionSplits, type AttentionShape } from '../../src/gpu/ops/attention.ts';
import { kvWriteDispatch, type KvDtype } from '../../src/gpu/ops/kv.ts';
import { buildRopeTable, ropeDispatch, uploadRopeTable, type RopeMode } from '../../src/gpu/ops/rope.ts';
import { attentionPagedRef, attentionRef, type RefPageEntry } from '../../src/gpu/ref/attention.ts';
import { packF16Words, roundF16Array } from '../../src/gpu/ref/f16.ts';
import { ropeRef } from '../../src/gpu/ref/rope.ts';
import { PageAllocator, Sequence } from '../../src/kv/pages.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { compare, outputBuffer, randomF32, readF32, run, testContext, uploadWords } from '../helpers/gpu.ts';

interface Case {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  ropeDim: number;
  mode: RopeMode;
  /** Sliding window (0 or absent: causal only). */
  window?: number;
}

const MAX_POS = 512;

/**
 * A page table with everything the chunk cache produces: a private prefix, a chunk's first tokens
 * recomputed privately, a shared chunk entered part-way through its first page at an odd position,
 * partially filled pages, a gap in positions, and the new tokens (nNew) at the end.
 */
function scenario(nNew: number, chunkLen = 37) {
  const alloc = new PageAllocator(64);
  const chunk = new Sequence(alloc);
  chunk.append(chunkLen);
  const seq = new Sequence(alloc);
  seq.append(5);
  seq.appendSlots([5, 6, 7]);
  const spans = chunk.spans();
  spans[0] = { ...spans[0], slotOffset: 3, nTokens: spans[0].nTokens - 3 };
  seq.mapShared(spans, 8);
  const gapEnd = seq.nextPosition + 9;
  const positions = new Uint32Array(nNew).map((_, i) => gapEnd + i);
  const slots = seq.appendSlots(positions);
  return { alloc, seq, positions, slots, nPages: alloc.nPages };
}

async function runAttention(
  ctx: GpuContext,
  c: Case,
  kind: 'prefill' | 'decode',
  q: Float32Array,
  positions: Uint32Array,
  kPool: Float32Array,
  vPool: Float32Array,
  entries: readonly RefPageEntry[],
  splits?: number,
  kvDtype: KvDtype = 'f32',
) {
  const T = positions.length;
  const table = buildRopeTable(MAX_POS, c.ropeDim, 10000);
  const shape: AttentionShape = { ...c, maxPos: MAX_POS, kvDtype };
  // An f16 pool holds the halves of the values (packed two per word); the reference rounds alike.
  const pool = (a: Float32Array) => uploadWords(ctx, kvDtype === 'f16' ? packF16Words(a) : a);
  const words = new Uint32Array(Math.max(1, entries.length) * 4);
  entries.forEach((e, i) => words.set([e.page, e.startPosition, e.nTokens, e.slotOffset], i * 4));
  const out = outputBuffer(ctx, T * c.nHeads * c.headDim);
  const step = attentionDispatches(
    ctx,
    {
      q: uploadWords(ctx, q),
      kPool: pool(kPool),
      vPool: pool(vPool),
      pageTable: uploadWords(ctx, words),
      positions: uploadWords(ctx, positions),
      ropeTable: uploadRopeTable(ctx, table),
      out,
    },
    shape,
    { kind, maxTokens: T + 3, maxSplits: kind === 'decode' ? 8 : 1 },
  );
  step.setStep(T, entries.length, splits);
  await run(ctx, [...step.dispatches]);
  const got = await readF32(ctx, out, T * c.nHeads * c.headDim);
  const want = attentionPagedRef(q, positions, kPool, vPool, entries, { ...c, kvDtype }, table);
  return { got, want, step };
}

describe('attention reference', () => {
  it('over pre-RoPE pages equals rotate-then-store attention in position order', () => {
    const c: Case = { nHeads: 4, nKvHeads: 2, headDim: 16, ropeDim: 12, mode: 'neox' };
    const kvDim = c.nKvHeads * c.headDim;
    const { seq, positions, nPages } = scenario(6);
    const table = buildRopeTable(MAX_POS, c.ropeDim, 10000);
    const kPool = randomF32(nPages * 16 * kvDim, 5);
    const vPool = randomF32(nPages * 16 * kvDim, 6);
    const q = randomF32(positions.length * c.nHeads * c.headDim, 7);
    const paged = attentionPagedRef(q, positions, kPool, vPool, seq.entries, c, table);
    // The same keys laid out contiguously by position and rotated once, as a rotate-then-store cache would.
    const order = seq.entries.flatMap((e) => Array.from({ length: e.nTokens }, (_, j) => [e.startPosition + j, e.page * 16 + e.slotOffset + j]));
    order.sort((a, b) => a[0] - b[0]);
    const kRaw = new Float32Array(order.length * kvDim);
    const v = new Float32Array(order.length * kvDim);
    order.forEach(([, slot], i) => {
      kRaw.set(kPool.subarray(slot * kvDim, (slot + 1) * kvDim), i * kvDim);
      v.set(vPool.subarray(slot * kvDim, (slot + 1) * kvDim), i * kvDim);
    });
    const kPos = order.map((o) => o[0]);
    const kRot = ropeRef(kRaw, kPos, c.nKvHeads, c.headDim, c.ropeDim, c.mode, table);
    const plain = attentionRef(q, positions, kRot, v, kPos, c);
    expect(compare(paged, plain).maxAbs).toBeLessThan(1e-6);
    // And the causal mask matters: the first new token must not see the later ones.
    const full = attentionRef(q, positions.map(() => 10000), kRot, v, kPos, c);
    expect(compare(paged, full).maxAbs).toBeGreaterThan(1e-3);
  });

  it('with f16 pools equals the f32 reference on K/V rounded to f16, a small step away from the unrounded one', () => {
    const c: Case = { nHeads: 4, nKvHeads: 2, headDim: 16, ropeDim: 16, mode: 'norm' };
    const kvDim = c.nKvHeads * c.headDim;
    const { seq, positions, nPages } = scenario(4);
    const table = buildRopeTable(MAX_POS, c.ropeDim, 10000);
    const kPool = randomF32(nPages * 16 * kvDim, 8, -2, 2);
    const vPool = randomF32(nPages * 16 * kvDim, 9);
    const q = randomF32(positions.length * c.nHeads * c.headDim, 10, -2, 2);
    const half = attentionPagedRef(q, positions, kPool, vPool, seq.entries, { ...c, kvDtype: 'f16' }, table);
    const rounded = attentionPagedRef(q, positions, roundF16Array(kPool), roundF16Array(vPool), seq.entries, c, table);
    expect(Array.from(half)).toEqual(Array.from(rounded));
    const exact = attentionPagedRef(q, positions, kPool, vPool, seq.entries, c, table);
    const d = compare(half, exact).maxAbs;
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThan(2e-3); // halves carry 11 significant bits
  });
});

describe('attention kernel', () => {
  const cases: [string, Case, number][] = [
    ['stories260K shape (hd 8, GQA 2)', { nHeads: 8, nKvHeads: 4, headDim: 8, ropeDim: 8, mode: 'norm' }, 21],
    ['hd 64, GQA 4, neox', { nHeads: 8, nKvHeads: 2, headDim: 64, ropeDim: 64, mode: 'neox' }, 13],
    ['hd 128, GQA 1', { nHeads: 3, nKvHeads: 3, headDim: 128, ropeDim: 128, mode: 'norm' }, 19],
    ['hd 64, GQA 8, partial neox rotation', { nHeads: 8, nKvHeads: 1, headDim: 64, ropeDim: 32, mode: 'neox' }, 7],
    ['hd 32, GQA 7 (the qwen2-0.5B grouping)', { nHeads: 14, nKvHeads: 2, headDim: 32, ropeDim: 32, mode: 'neox' }, 5],
  ];

  it.each(cases)('prefill, %s: matches the reference over a mixed page table', async (_name, c, T) => {
    const ctx = await testContext();
    const kvDim = c.nKvHeads * c.headDim;
    const { seq, positions, nPages } = scenario(T);
    const kPool = randomF32(nPages * 16 * kvDim, 10 + T, -2, 2);
    const vPool = randomF32(nPages * 16 * kvDim, 20 + T);
    const q = randomF32(T * c.nHeads * c.headDim, 30 + T, -2, 2);
    const { got, want } = await runAttention(ctx, c, 'prefill', q, positions, kPool, vPool, seq.entries);
    expect(compare(got, want).maxAbs).toBeLessThan(2e-5);
  });

  it.each(cases)('decode, %s: every split count matches the reference', async (_name, c) => {
    const ctx = await testContext();
    const kvDim = c.nKvHeads * c.headDim;
    const { seq, positions, nPages } = scenario(2, 70);
    const kPool = randomF32(nPages * 16 * kvDim, 40, -2, 2);
    const vPool = randomF32(nPages * 16 * kvDim, 41);
    const q = randomF32(positions.length * c.nHeads * c.headDim, 42, -2, 2);
    for (const splits of [1, 2, 3, 7]) {
      for (const T of [1, 2]) {
        const pos = positions.subarray(positions.length - T);
        const qT = q.subarray(0, T * c.nHeads * c.headDim);
        const { got, want, step } = await runAttention(ctx, c, 'decode', qT, pos, kPool, vPool, seq.entries, splits);
        expect(step.splits).toBe(splits);
        expect(compare(got, want).maxAbs, `splits=${splits} T=${T}`).toBeLessThan(2e-5);
      }
    }
  });

  it('a fragmented page table (entries of 1-3 keys, out of order) gathers keys into tiles and matches the reference', async () => {
    const ctx = await testContext();
    const c: Case = { nHeads: 8, nKvHeads: 2, headDim: 64, ropeDim: 64, mode: 'norm' };
    const kvDim = c.nKvHeads * c.headDim;
    // 120 positions cut into short runs over 12 pages, slots scattered, entries shuffled.
    const entries: RefPageEntry[] = [];
    let pos = 0;
    let r = 7;
    const rand = () => ((r = (r * 1103515245 + 12345) >>> 0) / 2 ** 32);
    while (pos < 120) {
      const n = Math.min(1 + Math.floor(rand() * 3), 120 - pos);
      entries.push({ page: Math.floor(rand() * 12), startPosition: pos, nTokens: n, slotOffset: Math.floor(rand() * (17 - n)) });
      pos += n;
    }
    for (let i = entries.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [entries[i], entries[j]] = [entries[j], entries[i]];
    }
    const kPool = randomF32(12 * 16 * kvDim, 60, -2, 2);
    const vPool = randomF32(12 * 16 * kvDim, 61);
    const positions = new Uint32Array([5, 40, 77, 119]);
    const q = randomF32(positions.length * c.nHeads * c.headDim, 62, -2, 2);
    const pre = await runAttention(ctx, c, 'prefill', q, positions, kPool, vPool, entries);
    expect(compare(pre.got, pre.want).maxAbs).toBeLessThan(2e-5);
    for (const splits of [1, 3, 8]) {
      const last = positions.subarray(3);
      const dec = await runAttention(ctx, c, 'decode', q.subarray(0, c.nHeads * c.headDim), last, kPool, vPool, entries, splits);
      expect(compare(dec.got, dec.want).maxAbs, `splits=${splits}`).toBeLessThan(2e-5);
    }
    // Splits follow the keys (120 keys: 8 pages' worth), not the ~60 entries.
    const step = attentionDispatches(ctx, dummyBuffers(ctx), { ...c, maxPos: MAX_POS }, { kind: 'decode', maxTokens: 1 });
    step.setStep(1, entries.length, undefined, 120);
    const byKeys = step.splits;
    step.setStep(1, entries.length);
    expect(byKeys).toBeLessThan(step.splits);
  });

  it('writes kv, rotates q and attends end to end, with the queries masked by position', async () => {
    const ctx = await testContext();
    const c: Case = { nHeads: 4, nKvHeads: 2, headDim: 64, ropeDim: 64, mode: 'norm' };
    const kvDim = c.nKvHeads * c.headDim;
    const T = 11;
    const { seq, positions, slots, nPages } = scenario(T);
    const table = buildRopeTable(MAX_POS, c.ropeDim, 10000);
    const kPool = randomF32(nPages * 16 * kvDim, 50);
    const vPool = randomF32(nPages * 16 * kvDim, 51);
    const kNew = randomF32(T * kvDim, 52);
    const vNew = randomF32(T * kvDim, 53);
    const q = randomF32(T * c.nHeads * c.headDim, 54);
    const kb = uploadWords(ctx, kPool);
    const vb = uploadWords(ctx, vPool);
    const qb = uploadWords(ctx, q);
    const pb = uploadWords(ctx, positions);
    const tb = uploadRopeTable(ctx, table);
    const out = outputBuffer(ctx, T * c.nHeads * c.headDim);
    const shape = { ...c, maxPos: MAX_POS };
    const step = attentionDispatches(
      ctx,
      { q: qb, kPool: kb, vPool: vb, pageTable: uploadWords(ctx, seq.pageTableWords()), positions: pb, ropeTable: tb, out },
      shape,
      { kind: 'prefill', maxTokens: 16 },
    );
    step.setStep(T, seq.entries.length);
    await run(ctx, [
      kvWriteDispatch(ctx, { kPool: kb, vPool: vb, kNew: uploadWords(ctx, kNew), vNew: uploadWords(ctx, vNew), slots: uploadWords(ctx, slots) }, kvDim, T),
      ropeDispatch(ctx, qb, pb, tb, shape, T),
      ...step.dispatches,
    ]);
    const got = await readF32(ctx, out, T * c.nHeads * c.headDim);
    const kAll = kPool.slice();
    const vAll = vPool.slice();
    slots.forEach((s, t) => {
      kAll.set(kNew.subarray(t * kvDim, (t + 1) * kvDim), s * kvDim);
      vAll.set(vNew.subarray(t * kvDim, (t + 1) * kvDim), s * kvDim);
    });
    const qRot = ropeRef(q, positions, c.nHeads, c.headDim, c.ropeDim, c.mode, table);
    const want = attentionPagedRef(qRot, positions, kAll, vAll, seq.entries, c, table);
    expect(compare(got, want).maxAbs).toBeLessThan(2e-5);
  });

  it('gives 0 for rows that see no key and follows setStep without new bind groups', async () => {
    const ctx = await testContext();
    const c: Case = { nHeads: 2, nKvHeads: 1, headDim: 8, ropeDim: 8, mode: 'norm' };
    const entries: RefPageEntry[] = [{ page: 0, startPosition: 100, nTokens: 16, slotOffset: 0 }];
    const kPool = randomF32(16 * 8, 1);
    const vPool = randomF32(16 * 8, 2);
    const positions = new Uint32Array([3, 107]);
    const q = randomF32(2 * 16, 3);
    const { got, want } = await runAttention(ctx, c, 'prefill', q, positions, kPool, vPool, entries);
    expect(Array.from(got.subarray(0, 16))).toEqual(new Array(16).fill(0));
    expect(compare(got, want).maxAbs).toBeLessThan(1e-5);
    expect(Math.max(...got.subarray(16).map(Math.abs))).toBeGreaterThan(0);
  });

  it('prefills a chunk alone from position 0 (every key is a new token), T spanning many blocks', async () => {
    const ctx = await testContext();
    const c: Case = { nHeads: 8, nKvHeads: 4, headDim: 8, ropeDim: 8, mode: 'norm' };
    const kvDim = c.nKvHeads * c.headDim;
    const seq = new Sequence(new PageAllocator(8));
    const T = 70;
    const { positions } = seq.append(T);
    const kPool = randomF32(8 * 16 * kvDim, 60);
    const vPool = randomF32(8 * 16 * kvDim, 61);
    const q = randomF32(T * c.nHeads * c.headDim, 62);
    const { got, want } = await runAttention(ctx, c, 'prefill', q, positions, kPool, vPool, seq.entries);
    expect(compare(got, want).maxAbs).toBeLessThan(2e-5);
    // Token 0 sees only itself: its output is its own value row.
    for (let h = 0; h < c.nHeads; h++) {
      const g = Math.floor(h / 2);
      for (let d = 0; d < 8; d++) expect(got[h * 8 + d]).toBeCloseTo(vPool[g * 8 + d], 6);
    }
  });

  it('rejects shapes it cannot run', async () => {
    const ctx = await testContext();
    const b = uploadWords(ctx, new Uint32Array(4));
    const bufs = { q: b, kPool: b, vPool: b, pageTable: b, positions: b, ropeTable: b, out: outputBuffer(ctx, 4) };
    const base: AttentionShape = { nHeads: 4, nKvHeads: 2, headDim: 64, ropeDim: 64, mode: 'norm', maxPos: 16 };
    expect(() => attentionDispatches(ctx, bufs, { ...base, nKvHeads: 3 }, { kind: 'prefill', maxTokens: 1 })).toThrow(/grouped/);
    expect(() => attentionDispatches(ctx, bufs, { ...base, headDim: 272, ropeDim: 272 }, { kind: 'prefill', maxTokens: 1 })).toThrow(/up to 256/);
    expect(() => attentionDispatches(ctx, bufs, { ...base, window: -1 }, { kind: 'prefill', maxTokens: 1 })).toThrow(/window/);
    expect(() => attentionDispatches(ctx, bufs, { ...base, ropeDim: 66 }, { kind: 'prefill', maxTokens: 1 })).toThrow(/at most the head dimension/);
    const step = attentionDispatches(ctx, bufs, base, { kind: 'decode', maxTokens: 2 });
    expect(() => step.setStep(3, 1)).toThrow(expect.objectContaining({ code: 'batch-too-large' }));
  });

  it('chooses more splits for longer caches, bounded by the GPU fill target and maxSplits', () => {
    expect(chooseAttentionSplits(2, 8, 32)).toBe(1);
    expect(chooseAttentionSplits(64, 8, 32)).toBe(16);
    expect(chooseAttentionSplits(4096, 8, 32)).toBe(32);
    expect(chooseAttentionSplits(4096, 64, 32)).toBe(4);
  });
});

// f16 pools: the kernel widens each half to f32 as it loads it and computes as the f32 form does, so
// it must match the reference on f16-rounded K/V to the f32 tolerance (2e-5), not to f16 precision.
describe('attention kernel, f16 KV pools', () => {
  const cases: [string, Case, number][] = [
    ['stories260K shape (hd 8, GQA 2, interleaved pairs)', { nHeads: 8, nKvHeads: 4, headDim: 8, ropeDim: 8, mode: 'norm' }, 9],
    ['hd 32, GQA 7, neox (qwen2-0.5B)', { nHeads: 14, nKvHeads: 2, headDim: 32, ropeDim: 32, mode: 'neox' }, 5],
    ['hd 20, GQA 2, neox over 10 dims (pairs straddle words)', { nHeads: 4, nKvHeads: 2, headDim: 20, ropeDim: 10, mode: 'neox' }, 11],
    ['hd 12, GQA 1, interleaved over 6 dims', { nHeads: 2, nKvHeads: 2, headDim: 12, ropeDim: 6, mode: 'norm' }, 7],
  ];

  it.each(cases)('prefill, %s: matches the reference over a mixed page table', async (_name, c, T) => {
    const ctx = await testContext();
    const kvDim = c.nKvHeads * c.headDim;
    const { seq, positions, nPages } = scenario(T);
    const kPool = randomF32(nPages * 16 * kvDim, 110 + T, -2, 2);
    const vPool = randomF32(nPages * 16 * kvDim, 120 + T);
    const q = randomF32(T * c.nHeads * c.headDim, 130 + T, -2, 2);
    const { got, want } = await runAttention(ctx, c, 'prefill', q, positions, kPool, vPool, seq.entries, undefined, 'f16');
    expect(compare(got, want).maxAbs).toBeLessThan(2e-5);
  });

  it.each(cases)('decode, %s: every split count matches the reference', async (_name, c) => {
    const ctx = await testContext();
    const kvDim = c.nKvHeads * c.headDim;
    const { seq, positions, nPages } = scenario(2, 70);
    const kPool = randomF32(nPages * 16 * kvDim, 140, -2, 2);
    const vPool = randomF32(nPages * 16 * kvDim, 141);
    const q = randomF32(positions.length * c.nHeads * c.headDim, 142, -2, 2);
    for (const splits of [1, 3, 7]) {
      for (const T of [1, 2]) {
        const pos = positions.subarray(positions.length - T);
        const qT = q.subarray(0, T * c.nHeads * c.headDim);
        const { got, want, step } = await runAttention(ctx, c, 'decode', qT, pos, kPool, vPool, seq.entries, splits, 'f16');
        expect(step.splits).toBe(splits);
        expect(compare(got, want).maxAbs, `splits=${splits} T=${T}`).toBeLessThan(2e-5);
      }
    }
  });

  it('a fragmented page table (entries of 1-3 keys at odd slot offsets, out of order) matches the reference', async () => {
    const ctx = await testContext();
    const c: Case = { nHeads: 4, nKvHeads: 2, headDim: 32, ropeDim: 24, mode: 'neox' };
    const kvDim = c.nKvHeads * c.headDim;
    const entries: RefPageEntry[] = [];
    let pos = 0;
    let r = 11;
    const rand = () => ((r = (r * 1103515245 + 12345) >>> 0) / 2 ** 32);
    while (pos < 90) {
      const n = Math.min(1 + Math.floor(rand() * 3), 90 - pos);
      entries.push({ page: Math.floor(rand() * 9), startPosition: pos, nTokens: n, slotOffset: Math.floor(rand() * (17 - n)) });
      pos += n;
    }
    for (let i = entries.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [entries[i], entries[j]] = [entries[j], entries[i]];
    }
    const kPool = randomF32(9 * 16 * kvDim, 160, -2, 2);
    const vPool = randomF32(9 * 16 * kvDim, 161);
    const positions = new Uint32Array([3, 50, 89]);
    const q = randomF32(positions.length * c.nHeads * c.headDim, 162, -2, 2);
    const pre = await runAttention(ctx, c, 'prefill', q, positions, kPool, vPool, entries, undefined, 'f16');
    expect(compare(pre.got, pre.want).maxAbs).toBeLessThan(2e-5);
    for (const splits of [1, 3, 8]) {
      const dec = await runAttention(ctx, c, 'decode', q.subarray(0, c.nHeads * c.headDim), positions.subarray(2), kPool, vPool, entries, splits, 'f16');
      expect(compare(dec.got, dec.want).maxAbs, `splits=${splits}`).toBeLessThan(2e-5);
    }
  });

  it('kv_write stores halves that attention reads back: end to end against the f16 reference', async () => {
    const ctx = await testContext();
    const c: Case = { nHeads: 4, nKvHeads: 2, headDim: 16, ropeDim: 16, mode: 'neox' };
    const kvDim = c.nKvHeads * c.headDim;
    const T = 9;
    const { seq, positions, slots, nPages } = scenario(T);
    const table = buildRopeTable(MAX_POS, c.ropeDim, 10000);
    const kPool = randomF32(nPages * 16 * kvDim, 150);
    const vPool = randomF32(nPages * 16 * kvDim, 151);
    const kNew = randomF32(T * kvDim, 152, -3, 3);
    const vNew = randomF32(T * kvDim, 153);
    const q = randomF32(T * c.nHeads * c.headDim, 154);
    const kb = uploadWords(ctx, packF16Words(kPool));
    const vb = uploadWords(ctx, packF16Words(vPool));
    const qb = uploadWords(ctx, q);
    const pb = uploadWords(ctx, positions);
    const tb = uploadRopeTable(ctx, table);
    const out = outputBuffer(ctx, T * c.nHeads * c.headDim);
    const shape: AttentionShape = { ...c, maxPos: MAX_POS, kvDtype: 'f16' };
    const step = attentionDispatches(
      ctx,
      { q: qb, kPool: kb, vPool: vb, pageTable: uploadWords(ctx, seq.pageTableWords()), positions: pb, ropeTable: tb, out },
      shape,
      { kind: 'prefill', maxTokens: 16 },
    );
    step.setStep(T, seq.entries.length);
    const write = kvWriteDispatch(ctx, { kPool: kb, vPool: vb, kNew: uploadWords(ctx, kNew), vNew: uploadWords(ctx, vNew), slots: uploadWords(ctx, slots) }, kvDim, T, {
      kvDtype: 'f16',
    });
    await run(ctx, [write, ropeDispatch(ctx, qb, pb, tb, shape, T), ...step.dispatches]);
    const got = await readF32(ctx, out, T * c.nHeads * c.headDim);
    const kAll = kPool.slice();
    const vAll = vPool.slice();
    slots.forEach((s, t) => {
      kAll.set(kNew.subarray(t * kvDim, (t + 1) * kvDim), s * kvDim);
      vAll.set(vNew.subarray(t * kvDim, (t + 1) * kvDim), s * kvDim);
    });
    const qRot = ropeRef(q, positions, c.nHeads, c.headDim, c.ropeDim, c.mode, table);
    const want = attentionPagedRef(qRot, positions, kAll, vAll, seq.entries, { ...c, kvDtype: 'f16' }, table);
    expect(compare(got, want).maxAbs).toBeLessThan(2e-5);
  });
});

// Sliding-window layers (gemma3): a query at q sees keys at q - window < p <= q, in both forms, over
// the same mixed page tables, and heads of 256 (Gemma 3's) take smaller key tiles.
describe('attention kernel, sliding window', () => {
  it('the reference masks exactly the keys at q - p >= window', () => {
    const c: Case = { nHeads: 4, nKvHeads: 2, headDim: 16, ropeDim: 16, mode: 'neox' };
    const kvDim = c.nKvHeads * c.headDim;
    const kPos = Array.from({ length: 40 }, (_, i) => i);
    const k = randomF32(40 * kvDim, 200);
    const v = randomF32(40 * kvDim, 201);
    const qPos = new Uint32Array([0, 7, 8, 39]);
    const q = randomF32(4 * c.nHeads * c.headDim, 202);
    const windowed = attentionRef(q, qPos, k, v, kPos, { ...c, window: 8 });
    for (let t = 0; t < 4; t++) {
      // Only the keys q-7..q, attended to with no window, give the same row.
      const keep = kPos.filter((p) => p <= qPos[t] && p > qPos[t] - 8);
      const kk = new Float32Array(keep.length * kvDim);
      const vv = new Float32Array(keep.length * kvDim);
      keep.forEach((p, i) => {
        kk.set(k.subarray(p * kvDim, (p + 1) * kvDim), i * kvDim);
        vv.set(v.subarray(p * kvDim, (p + 1) * kvDim), i * kvDim);
      });
      const row = c.nHeads * c.headDim;
      const alone = attentionRef(q.subarray(t * row, (t + 1) * row), [qPos[t]], kk, vv, keep, c);
      expect(compare(windowed.subarray(t * row, (t + 1) * row), alone).maxAbs).toBeLessThan(1e-7);
    }
    // Window 1: each query sees only its own position.
    const self = attentionRef(q, qPos, k, v, kPos, { ...c, window: 1 });
    for (let t = 0; t < 4; t++) {
      for (let h = 0; h < c.nHeads; h++) {
        const g = Math.floor(h / 2);
        for (let d = 0; d < c.headDim; d++) expect(self[(t * c.nHeads + h) * c.headDim + d]).toBeCloseTo(v[qPos[t] * kvDim + g * c.headDim + d], 6);
      }
    }
    expect(compare(windowed, attentionRef(q, qPos, k, v, kPos, c)).maxAbs).toBeGreaterThan(1e-3);
  });

  const cases: [string, Case][] = [
    ['hd 64, GQA 4, window 5', { nHeads: 8, nKvHeads: 2, headDim: 64, ropeDim: 64, mode: 'neox', window: 5 }],
    ['hd 32, GQA 2, window 1 (self only)', { nHeads: 4, nKvHeads: 2, headDim: 32, ropeDim: 32, mode: 'norm', window: 1 }],
    ['hd 16, GQA 1, window 23 (straddles pages and the gap)', { nHeads: 2, nKvHeads: 2, headDim: 16, ropeDim: 16, mode: 'neox', window: 23 }],
    ['hd 64, GQA 2, window past every key (no effect)', { nHeads: 4, nKvHeads: 2, headDim: 64, ropeDim: 64, mode: 'neox', window: 4096 }],
    ['hd 256, GQA 4 (Gemma 3), window 9', { nHeads: 4, nKvHeads: 1, headDim: 256, ropeDim: 256, mode: 'neox', window: 9 }],
  ];

  it.each(cases)('prefill, %s: matches the reference over a mixed page table', async (_name, c) => {
    const ctx = await testContext();
    const kvDim = c.nKvHeads * c.headDim;
    const T = 13;
    const { seq, positions, nPages } = scenario(T);
    const kPool = randomF32(nPages * 16 * kvDim, 210, -2, 2);
    const vPool = randomF32(nPages * 16 * kvDim, 211);
    const q = randomF32(T * c.nHeads * c.headDim, 212, -2, 2);
    const { got, want } = await runAttention(ctx, c, 'prefill', q, positions, kPool, vPool, seq.entries);
    expect(compare(got, want).maxAbs).toBeLessThan(2e-5);
    // The window is not a no-op (except the one past every key): it changes the rows.
    const unwindowed = attentionPagedRef(q, positions, kPool, vPool, seq.entries, { ...c, window: 0 }, buildRopeTable(MAX_POS, c.ropeDim, 10000));
    if (c.window! < 100) expect(compare(got, unwindowed).maxAbs).toBeGreaterThan(1e-3);
    else expect(compare(got, unwindowed).maxAbs).toBeLessThan(2e-5);
  });

  it.each(cases)('decode, %s: every split count matches the reference, f32 and f16 pools', async (_name, c) => {
    const ctx = await testContext();
    const kvDim = c.nKvHeads * c.headDim;
    const { seq, positions, nPages } = scenario(2, 70);
    const kPool = randomF32(nPages * 16 * kvDim, 220, -2, 2);
    const vPool = randomF32(nPages * 16 * kvDim, 221);
    const q = randomF32(c.nHeads * c.headDim, 222, -2, 2);
    const last = positions.subarray(positions.length - 1);
    for (const kvDtype of ['f32', 'f16'] as const) {
      for (const splits of [1, 3, 7]) {
        const { got, want, step } = await runAttention(ctx, c, 'decode', q, last, kPool, vPool, seq.entries, splits, kvDtype);
        expect(step.splits).toBe(splits);
        expect(compare(got, want).maxAbs, `${kvDtype} splits=${splits}`).toBeLessThan(2e-5);
      }
    }
  });

  it('heads of 256 take tiles of fewer keys so the workgroup fits its memory limit', async () => {
    const ctx = await testContext();
    const shape: AttentionShape = { nHeads: 4, nKvHeads: 1, headDim: 256, ropeDim: 256, mode: 'neox', maxPos: MAX_POS };
    for (const kind of ['prefill', 'decode'] as const) {
      const step = attentionDispatches(ctx, dummyBuffers(ctx), shape, { kind, maxTokens: 4 });
      expect(step.config.workgroupBytes).toBeLessThanOrEqual(ctx.limits.maxComputeWorkgroupStorageSize);
      expect(step.config.bk * step.config.dsplit).toBeLessThanOrEqual(step.config.wg);
    }
    const small = attentionDispatches(ctx, dummyBuffers(ctx), { ...shape, headDim: 64, ropeDim: 64 }, { kind: 'prefill', maxTokens: 4 });
    expect(small.config.bk).toBe(16);
  });
});

function dummyBuffers(ctx: GpuContext) {
  const b = () => outputBuffer(ctx, 4096);
  return { q: b(), kPool: b(), vPool: b(), pageTable: b(), positions: b(), ropeTable: b(), out: b() };
}
