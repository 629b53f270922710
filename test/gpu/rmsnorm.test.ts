import { describe, expect, it } from 'vitest';
import { rmsnormBytes, rmsnormOp } from '../../src/gpu/ops/rmsnorm.ts';
import { rmsnormRef } from '../../src/gpu/ref/rmsnorm.ts';
import { compare, outputBuffer, randomF32, readF32, run, testContext, uploadWords } from '../helpers/gpu.ts';

// Each output is x * scale * w with one rounding per step, and the scale comes from an f32 sum of
// squares in another order than the f64 reference: a few units of rounding of the largest output.
const TOLERANCE = 2e-6;

describe.each(['default', 'plain'] as const)('rmsnorm kernel (%s context)', (variant) => {
  // rows, cols: one workgroup size each (64, 128, 256 invocations), columns not a multiple of it.
  it.each([
    [1, 64],
    [7, 172],
    [3, 1000],
    [2, 2049],
  ])('rows=%i cols=%i out of place matches the reference and leaves x alone', async (rows, cols) => {
    const ctx = await testContext(variant);
    const x = randomF32(rows * cols, cols, -4, 4);
    const w = randomF32(cols, cols + 1, 0.5, 1.5);
    const xb = uploadWords(ctx, x);
    const out = outputBuffer(ctx, rows * cols);
    await run(ctx, [rmsnormOp(ctx, xb, uploadWords(ctx, w), out, cols, 1e-5, { rows })]);
    expect(compare(await readF32(ctx, out, rows * cols), rmsnormRef(x, w, cols, 1e-5)).rel).toBeLessThan(TOLERANCE);
    expect(await readF32(ctx, xb, rows * cols)).toEqual(x);
  });

  it('normalizes in place with strided rows (per-head norm) and follows setRows', async () => {
    const ctx = await testContext(variant);
    const [cols, stride] = [40, 48];
    const x = randomF32(5 * stride, 3, -2, 2);
    const w = randomF32(cols, 4);
    const xb = uploadWords(ctx, x);
    const op = rmsnormOp(ctx, xb, uploadWords(ctx, w), undefined, cols, 1e-6, { xStride: stride });
    op.setRows(5);
    await run(ctx, [op]);
    const got = await readF32(ctx, xb, x.length);
    for (let r = 0; r < 5; r++) {
      const row = x.subarray(r * stride, r * stride + cols);
      expect(compare(got.subarray(r * stride, r * stride + cols), rmsnormRef(row, w, cols, 1e-6)).rel).toBeLessThan(TOLERANCE);
      expect(got.subarray(r * stride + cols, (r + 1) * stride)).toEqual(x.subarray(r * stride + cols, (r + 1) * stride));
    }
  });

  it('adds eps inside the square root: an all-zero row stays finite', async () => {
    const ctx = await testContext(variant);
    const out = outputBuffer(ctx, 64);
    await run(ctx, [rmsnormOp(ctx, uploadWords(ctx, new Float32Array(64)), uploadWords(ctx, randomF32(64, 1, 0.5, 1.5)), out, 64, 1e-5)]);
    expect(await readF32(ctx, out, 64)).toEqual(new Float32Array(64));
  });
});

describe('rmsnormBytes', () => {
  it('counts x, out and w once', () => {
    expect(rmsnormBytes(3, 10)).toBe(3 * 10 * 8 + 40);
  });
});
