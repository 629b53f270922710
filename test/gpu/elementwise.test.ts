import { describe, expect, it } from 'vitest';
import { addDispatch, copyDispatch, geluMulDispatch, scaleDispatch, softcapDispatch } from '../../src/gpu/ops/elementwise.ts';
import { addRef, geluMulRef, geluTanh, scaleRef, softcapRef } from '../../src/gpu/ref/elementwise.ts';
import { compare, randomF32, readF32, readU32, run, testContext, uploadWords } from '../helpers/gpu.ts';

describe('elementwise kernels', () => {
  it.each([1, 255, 257, 1000, 70001])('add matches the reference for n=%i', async (n) => {
    const ctx = await testContext();
    const x = randomF32(n, 1 + n);
    const y = randomF32(n, 2 + n);
    const xb = uploadWords(ctx, x);
    const yb = uploadWords(ctx, y);
    await run(ctx, [addDispatch(ctx, xb, yb, n)]);
    const got = await readF32(ctx, xb, n);
    expect(compare(got, addRef(x, y)).maxAbs).toBe(0);
  });

  it('copy moves every word and nothing past the end', async () => {
    const ctx = await testContext();
    const n = 4 * 12345;
    const src = new Uint32Array(n).map((_, i) => (i * 2654435761) >>> 0);
    const sb = uploadWords(ctx, src);
    const db = uploadWords(ctx, new Uint32Array(n));
    await run(ctx, [copyDispatch(ctx, db, sb, n * 4)]);
    expect(await readU32(ctx, db, n)).toEqual(src);
  });

  it.each([1, 257, 33333])('scale multiplies n=%i values and stops at n', async (n) => {
    const ctx = await testContext();
    const x = randomF32(n + 5, 3 + n, -4, 4);
    const xb = uploadWords(ctx, x);
    await run(ctx, [scaleDispatch(ctx, xb, n, Math.fround(Math.sqrt(1152)))]);
    const got = await readF32(ctx, xb, n + 5);
    expect(compare(got.subarray(0, n), scaleRef(x.subarray(0, n), Math.fround(Math.sqrt(1152)))).rel).toBeLessThan(1e-7);
    expect(Array.from(got.subarray(n))).toEqual(Array.from(x.subarray(n)));
  });

  it.each([7, 256, 20001])('gelu_mul gates n=%i values with GELU-tanh, large arguments included', async (n) => {
    const ctx = await testContext();
    const gate = randomF32(n, 5 + n, -12, 12);
    gate[0] = 200; // tanh saturates: gelu(a) = a
    if (n > 1) gate[1] = -200; // gelu(a) = 0
    const up = randomF32(n, 6 + n, -2, 2);
    const gb = uploadWords(ctx, gate);
    await run(ctx, [geluMulDispatch(ctx, gb, uploadWords(ctx, up), n)]);
    const got = await readF32(ctx, gb, n);
    const want = geluMulRef(gate, up);
    expect(got.every(Number.isFinite)).toBe(true);
    expect(compare(got, want).maxAbs).toBeLessThan(2e-5 * 24);
    expect(got[0]).toBeCloseTo(200 * up[0], 3);
  });

  it('the GELU-tanh reference has the known values', () => {
    expect(geluTanh(0)).toBe(0);
    expect(geluTanh(1)).toBeCloseTo(0.8411920, 6);
    expect(geluTanh(-1)).toBeCloseTo(-0.1588080, 6);
    expect(geluTanh(3)).toBeCloseTo(2.9963627, 6);
  });

  it('softcap bounds logits to ±cap and is the identity near 0', async () => {
    const ctx = await testContext();
    const n = 3000;
    const x = randomF32(n, 9, -200, 200);
    x[0] = 0.01;
    const xb = uploadWords(ctx, x);
    await run(ctx, [softcapDispatch(ctx, xb, n, 30)]);
    const got = await readF32(ctx, xb, n);
    expect(compare(got, softcapRef(x, 30)).maxAbs).toBeLessThan(1e-4);
    expect(Math.max(...got.map(Math.abs))).toBeLessThanOrEqual(30);
    expect(got[0]).toBeCloseTo(0.01, 4); // WGSL tanh carries an absolute error near 1e-7
  });
});
