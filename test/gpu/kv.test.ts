import { describe, expect, it } from 'vitest';
import { KVCacheError } from '../../src/errors.ts';
import { KV_SLOT_SKIP, kvWriteDispatch } from '../../src/gpu/ops/kv.ts';
import { f16BitsToF32, f32ToF16Bits, packF16Words, roundF16 } from '../../src/gpu/ref/f16.ts';
import { PagedKvCache } from '../../src/kv/paged-cache.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { randomF32, readF32, readU32, run, testContext, uploadWords } from '../helpers/gpu.ts';

/** The first n words of a buffer without guard words (a page-table buffer made by the cache). */
async function readRaw(ctx: GpuContext, buf: GPUBuffer, n: number): Promise<Uint32Array> {
  const staging = ctx.device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = ctx.device.createCommandEncoder();
  enc.copyBufferToBuffer(buf, 0, staging, 0, n * 4);
  ctx.device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Uint32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  staging.destroy();
  return out;
}

describe('f16 reference rounding', () => {
  it('rounds to nearest, ties to even, keeps subnormals, overflows to infinity, and round-trips every half', () => {
    expect(roundF16(1 + 2 ** -11)).toBe(1); // tie, down to even
    expect(roundF16(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9); // tie, up to even
    expect(roundF16(1 + 2 ** -11 + 2 ** -20)).toBe(1 + 2 ** -10);
    expect(roundF16(2 ** -25)).toBe(0); // tie between 0 and the smallest subnormal
    expect(roundF16(3 * 2 ** -25)).toBe(2 ** -23);
    expect(roundF16(65519)).toBe(65504);
    expect(roundF16(65520)).toBe(Infinity);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    for (let h = 0; h < 0x10000; h++) {
      const x = f16BitsToF32(h);
      if (!Number.isNaN(x) && f32ToF16Bits(x) !== h) throw new Error(`half 0x${h.toString(16)} does not round-trip`);
    }
  });
});

describe('kv_write kernel', () => {
  it('copies each new row to its slot, skips KV_SLOT_SKIP and touches nothing else', async () => {
    const ctx = await testContext();
    const kvDim = 12;
    const nSlots = 3 * 16;
    const T = 7;
    const kNew = randomF32(T * kvDim, 1);
    const vNew = randomF32(T * kvDim, 2);
    const slots = new Uint32Array([5, 6, 17, 47, KV_SLOT_SKIP, 0, 30]);
    const kInit = randomF32(nSlots * kvDim, 3);
    const vInit = randomF32(nSlots * kvDim, 4);
    const kPool = uploadWords(ctx, kInit);
    const vPool = uploadWords(ctx, vInit);
    const d = kvWriteDispatch(ctx, { kPool, vPool, kNew: uploadWords(ctx, kNew), vNew: uploadWords(ctx, vNew), slots: uploadWords(ctx, slots) }, kvDim, 1);
    d.setTokens(T);
    await run(ctx, [d]);
    const kWant = kInit.slice();
    const vWant = vInit.slice();
    slots.forEach((s, t) => {
      if (s === KV_SLOT_SKIP) return;
      kWant.set(kNew.subarray(t * kvDim, (t + 1) * kvDim), s * kvDim);
      vWant.set(vNew.subarray(t * kvDim, (t + 1) * kvDim), s * kvDim);
    });
    expect(await readF32(ctx, kPool, nSlots * kvDim)).toEqual(kWant);
    expect(await readF32(ctx, vPool, nSlots * kvDim)).toEqual(vWant);
  });

  it('f16 pools: packs exactly the halves of each new row into its slot (odd token counts, scattered pages)', async () => {
    const ctx = await testContext();
    const kvDim = 20; // 10 words a row: rows of a page do not start on 16-byte boundaries
    const nPages = 6;
    const nSlots = nPages * 16;
    const rowWords = kvDim / 2;
    // Rounding cases first: ties to even both ways, the f16 subnormal range, the largest half, -0.
    const special = [1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), 2 ** -20, -3 * 2 ** -25, 2 ** -14, 6e-8, 65504, 65519, -0, 0, 1 / 3];
    for (const T of [1, 7, 13]) {
      const kNew = randomF32(T * kvDim, 100 + T, -4, 4);
      const vNew = randomF32(T * kvDim, 200 + T, -70000 / 65536, 1);
      kNew.set(special);
      // A slot in every page, out of order, some rows skipped.
      const slots = new Uint32Array(T).map((_, t) => (t % 5 === 4 ? KV_SLOT_SKIP : ((t * 7 + 3) % nPages) * 16 + ((t * 11) % 16)));
      const kInit = new Uint32Array(nSlots * rowWords).map((_, i) => (i * 2654435761) >>> 0);
      const vInit = kInit.map((w) => w ^ 0x5a5a5a5a);
      const kPool = uploadWords(ctx, kInit);
      const vPool = uploadWords(ctx, vInit);
      const bufs = { kPool, vPool, kNew: uploadWords(ctx, kNew), vNew: uploadWords(ctx, vNew), slots: uploadWords(ctx, slots) };
      await run(ctx, [kvWriteDispatch(ctx, bufs, kvDim, T, { kvDtype: 'f16' })]);
      const kWant = kInit.slice();
      const vWant = vInit.slice();
      slots.forEach((s, t) => {
        if (s === KV_SLOT_SKIP) return;
        kWant.set(packF16Words(kNew.subarray(t * kvDim, (t + 1) * kvDim)), s * rowWords);
        vWant.set(packF16Words(vNew.subarray(t * kvDim, (t + 1) * kvDim)), s * rowWords);
      });
      // readU32 also checks the guard words after each pool.
      const kGot = await readU32(ctx, kPool, nSlots * rowWords);
      const vGot = await readU32(ctx, vPool, nSlots * rowWords);
      expect(Array.from(kGot), `T=${T}`).toEqual(Array.from(kWant));
      expect(Array.from(vGot), `T=${T}`).toEqual(Array.from(vWant));
    }
  });

  it('rejects a row width that is not a multiple of 4', async () => {
    const ctx = await testContext();
    const b = uploadWords(ctx, new Uint32Array(4));
    expect(() => kvWriteDispatch(ctx, { kPool: b, vPool: b, kNew: b, vNew: b, slots: b }, 6, 1)).toThrow(/multiple of 4/);
  });
});

describe('PagedKvCache', () => {
  it('sizes per-layer pools from the token budget and uploads page tables', async () => {
    const ctx = await testContext();
    const cache = new PagedKvCache(ctx, { nLayers: 2, nKvHeads: 4, headDim: 8 }, 100);
    expect(cache.nPages).toBe(7);
    expect(cache.capacityTokens).toBe(112);
    expect(cache.layers).toHaveLength(2);
    expect(cache.layers[1].k.size).toBe(7 * 16 * 32 * 4);
    const seq = cache.newSequence();
    seq.append(20);
    seq.appendSlots([40, 41]);
    const pt = cache.createPageTableBuffer(4);
    expect(cache.writePageTable(seq, pt)).toBe(3);
    expect(Array.from(await readRaw(ctx, pt, 12))).toEqual([0, 0, 16, 0, 1, 16, 4, 0, 1, 40, 2, 4]);
    expect(() => cache.writePageTable(seq, cache.createPageTableBuffer(2))).toThrow(expect.objectContaining({ code: 'page-table-full' }));
    expect(() => seq.append(16 * 7)).toThrow(expect.objectContaining({ code: 'kv-cache-full' }));
    cache.destroy();
  });

  it('f16 pools: half the bytes per row and page, same page bookkeeping; an odd kvDim is refused', async () => {
    const ctx = await testContext();
    const f32 = new PagedKvCache(ctx, { nLayers: 1, nKvHeads: 2, headDim: 6 }, 40);
    const f16 = new PagedKvCache(ctx, { nLayers: 2, nKvHeads: 2, headDim: 6 }, 40, { dtype: 'f16' });
    expect(f32.dtype).toBe('f32');
    expect([f32.rowBytes, f32.pageBytes]).toEqual([12 * 4, 16 * 12 * 4]);
    expect(f16.dtype).toBe('f16');
    expect([f16.rowBytes, f16.pageBytes]).toEqual([12 * 2, 16 * 12 * 2]);
    expect(f16.nPages).toBe(3);
    expect(f16.layers[1].v.size).toBe(3 * 16 * 12 * 2);
    f32.destroy();
    f16.destroy();
    expect(() => new PagedKvCache(ctx, { nLayers: 1, nKvHeads: 3, headDim: 5 }, 16, { dtype: 'f16' })).toThrow(
      expect.objectContaining({ name: 'KVCacheError', code: 'bad-kv-shape' }),
    );
    new PagedKvCache(ctx, { nLayers: 1, nKvHeads: 3, headDim: 5 }, 16).destroy(); // f32 takes any width
  });

  it('refuses a pool larger than the device can bind, naming the budget that fits', async () => {
    const ctx = await testContext();
    const max = Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
    const tokens = Math.ceil(max / (8 * 128 * 4)) + 16;
    let err: unknown;
    try {
      new PagedKvCache(ctx, { nLayers: 1, nKvHeads: 8, headDim: 128 }, tokens);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KVCacheError);
    expect((err as KVCacheError).code).toBe('kv-pool-too-large');
    expect((err as KVCacheError).fields.maxTokens).toBeLessThan(tokens);
    // The check counts real bytes: f16 pools fit twice the tokens.
    const huge = 3 * tokens;
    const maxTokens = (dtype: 'f32' | 'f16') => {
      try {
        new PagedKvCache(ctx, { nLayers: 1, nKvHeads: 8, headDim: 128 }, huge, { dtype });
      } catch (e) {
        return (e as KVCacheError).fields.maxTokens;
      }
      throw new Error(`a budget of ${huge} tokens should not fit`);
    };
    const f32Tokens = Number(maxTokens('f32'));
    expect(Number(maxTokens('f16')) - 2 * f32Tokens).toBeOneOf([0, 16]); // whole pages of either size
  });
});
