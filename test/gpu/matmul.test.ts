import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { GGMLType, ggmlTypeName } from '../../src/gguf/quant.ts';
import { linearOp, matmulOp } from '../../src/gpu/ops/matmul.ts';
import { matmulRef } from '../../src/gpu/ref/matmul.ts';
import { dotErrorRatio, dotTolerance, quantizedMatrix, randomMatrix } from '../../src/gpu/ref/matvec.ts';
import { uploadWeight, type WeightType } from '../../src/gpu/weights.ts';
import { outputBuffer, randomF32, readF32, run, testContext, uploadWords } from '../helpers/gpu.ts';

const { F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K } = GGMLType;

// type, rows, cols, tokens: rows and tokens not multiples of the tiles, F32/F16 columns not
// multiples of the 32-column K step. Every type runs the 16 × 64 tile (T <= 16); the 64 × 64
// tile (the same code with 4 tokens per invocation) runs F32 and Q4_0, keeping SwiftShader's
// pipeline compiles (about a second each) few.
const cases: [WeightType, number, number, number][] = [
  [F32, 67, 45, 1],
  [F32, 70, 33, 70],
  [F16, 50, 74, 5],
  [Q8_0, 70, 96, 16],
  [Q4_0, 65, 160, 3],
  [Q4_0, 130, 64, 17],
  [Q4_0, 9, 64, 65],
];

// The other block types and BF16 as random blocks: the 16 × 64 tile for each, the 64 × 64 tile
// for a K-quant; several super-blocks (and so K steps in several sub-blocks) per row.
const blockCases: [WeightType, number, number, number][] = [
  [BF16, 67, 46, 3],
  [Q4_1, 70, 96, 2],
  [Q5_0, 65, 160, 5],
  [Q5_1, 33, 64, 16],
  [Q4_K, 66, 512, 3],
  [Q5_K, 70, 256, 7],
  [Q6_K, 65, 512, 2],
  [Q6_K, 9, 256, 33],
];

describe('matmul kernel', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await testContext();
  });

  it.each(cases)('type %i rows=%i cols=%i T=%i matches the reference', async (type, rows, cols, T) => {
    const { bytes, w } = quantizedMatrix(type, randomF32(rows * cols, rows * 5 + cols));
    const x = randomF32(T * cols, 3 + T);
    const wt = uploadWeight(ctx, 'w', type, bytes, rows, cols);
    const yb = outputBuffer(ctx, T * rows);
    const op = matmulOp(ctx, wt, uploadWords(ctx, x), yb, { tokens: T, maxTokens: T });
    await run(ctx, op.dispatches);
    const got = await readF32(ctx, yb, T * rows);
    const ratio = dotErrorRatio(got, matmulRef(w, rows, cols, x, T), w, rows, cols, x, T);
    expect(ratio, `${ggmlTypeName(type)} error ratio`).toBeLessThan(dotTolerance(cols));
  });

  it.each(blockCases)('type %i rows=%i cols=%i T=%i (random blocks) matches the reference', async (type, rows, cols, T) => {
    const { bytes, w } = randomMatrix(type, rows * cols, rows * 5 + cols + type);
    const x = randomF32(T * cols, 4 + T);
    const wt = uploadWeight(ctx, 'w', type, bytes, rows, cols);
    const yb = outputBuffer(ctx, T * rows);
    const op = matmulOp(ctx, wt, uploadWords(ctx, x), yb, { tokens: T, maxTokens: T });
    await run(ctx, op.dispatches);
    const got = await readF32(ctx, yb, T * rows);
    const ratio = dotErrorRatio(got, matmulRef(w, rows, cols, x, T), w, rows, cols, x, T);
    expect(ratio, `${ggmlTypeName(type)} error ratio`).toBeLessThan(dotTolerance(cols));
  });

  // type, rows, cols, maxBindingBytes, rows of each part: Q4_0 takes 36 bytes a row of 64, Q6_K 210 a row of 256.
  it.each([
    [Q4_0, 75, 64, 1000, [27, 27, 21]],
    [Q6_K, 75, 256, 6000, [28, 28, 19]],
  ] as [WeightType, number, number, number, number[]][])('type %i adds the bias and accumulates into strided outputs, over a matrix split by rows', async (type, rows, cols, limit, partRows) => {
    const [T, stride, offset] = [20, 80, 3];
    const { bytes, w } = type === Q4_0 ? quantizedMatrix(Q4_0, randomF32(rows * cols, 21)) : randomMatrix(type, rows * cols, 21);
    const wt = uploadWeight(ctx, 'split', type, bytes, rows, cols, { maxBindingBytes: limit });
    expect(wt.parts.map((p) => p.rows)).toEqual(partRows);
    const bias = randomF32(rows, 22);
    const x = randomF32(T * cols, 23);
    const y0 = randomF32(offset + T * stride, 24);
    const yb = uploadWords(ctx, y0);
    const op = matmulOp(ctx, wt, uploadWords(ctx, x), yb, { bias: uploadWords(ctx, bias), accumulate: true, yStride: stride, yOffset: offset });
    op.setTokens(T);
    await run(ctx, op.dispatches);
    const got = await readF32(ctx, yb, y0.length);
    for (let t = 0; t < T; t++) {
      const base = offset + t * stride;
      const xt = x.subarray(t * cols, (t + 1) * cols);
      const want = matmulRef(w, rows, cols, xt, 1, { bias, y0: y0.subarray(base, base + rows) });
      for (let r = 0; r < rows; r++) {
        // dotTolerance times the sum of |products|, |bias| and |y0|
        let mag = Math.abs(bias[r]) + Math.abs(y0[base + r]);
        for (let c = 0; c < cols; c++) mag += Math.abs(w[r * cols + c] * xt[c]);
        expect(Math.abs(got[base + r] - want[r]), `y[${t}, ${r}]`).toBeLessThanOrEqual(dotTolerance(cols) * mag);
      }
      for (let r = rows; r < stride && base + r < y0.length; r++) expect(got[base + r]).toBe(y0[base + r]);
    }
    for (let i = 0; i < offset; i++) expect(got[i]).toBe(y0[i]);
  });
});

describe.each(['default', 'plain'] as const)('linearOp (%s context)', (variant) => {
  it('uses matvec for single tokens and matmul for batches, from one recording', async () => {
    const ctx = await testContext(variant);
    const [rows, cols] = [45, 128];
    const { bytes, w } = quantizedMatrix(Q4_0, randomF32(rows * cols, 31));
    const wt = uploadWeight(ctx, 'w', Q4_0, bytes, rows, cols);
    const x = randomF32(9 * cols, 32);
    const xb = uploadWords(ctx, x);
    const yb = outputBuffer(ctx, 9 * rows);
    const op = linearOp(ctx, wt, xb, yb, { matvecMaxTokens: 2, maxTokens: 9 });
    const active = () => op.dispatches.filter((d) => d.workgroups.every((n) => n > 0)).map((d) => d.label.split(':')[0]);
    for (const T of [1, 2, 9, 1]) {
      op.setTokens(T);
      expect(active()).toEqual([T <= 2 ? 'matvec' : 'matmul']);
      await run(ctx, op.dispatches);
      const got = (await readF32(ctx, yb, 9 * rows)).subarray(0, T * rows);
      expect(dotErrorRatio(got, matmulRef(w, rows, cols, x, T), w, rows, cols, x, T)).toBeLessThan(dotTolerance(cols));
    }
  });

  it('falls back to matmul when the column count is not a multiple of 4', async () => {
    const ctx = await testContext(variant);
    const [rows, cols] = [10, 30];
    const { bytes, w } = quantizedMatrix(F16, randomF32(rows * cols, 41));
    const wt = uploadWeight(ctx, 'w', F16, bytes, rows, cols);
    const x = randomF32(cols, 42);
    const yb = outputBuffer(ctx, rows);
    const op = linearOp(ctx, wt, uploadWords(ctx, x), yb, { maxTokens: 1 });
    expect(op.dispatches.every((d) => d.label.startsWith('matmul'))).toBe(true);
    await run(ctx, op.dispatches);
    const got = await readF32(ctx, yb, rows);
    expect(dotErrorRatio(got, matmulRef(w, rows, cols, x, 1), w, rows, cols, x)).toBeLessThan(dotTolerance(cols));
  });
});
