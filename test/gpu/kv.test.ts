import { describe, expect, it } from 'vitest';
import { KVCacheError } from '../../src/errors.ts';
import { KV_SLOT_SKIP, kvWriteDispatch } from '../../src/gpu/ops/kv.ts';
import { PagedKvCache } from '../../src/kv/paged-cache.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { randomF32, readF32, run, testContext, uploadWords } from '../helpers/gpu.ts';

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
  });
});
