import { describe, expect, it } from 'vitest';
import { addDispatch, copyDispatch } from '../../src/gpu/ops/elementwise.ts';
import { addRef } from '../../src/gpu/ref/elementwise.ts';
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
});
