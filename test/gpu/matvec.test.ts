import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { GGMLType, ggmlTypeName } from '../../src/gguf/quant.ts';
import { linearBytes, matvecOp, matvecWorkgroupSize } from '../../src/gpu/ops/matvec.ts';
import { matmulRef } from '../../src/gpu/ref/matmul.ts';
import { dotErrorRatio, dotTolerance, quantizedMatrix, randomMatrix } from '../../src/gpu/ref/matvec.ts';
import { uploadWeight, type WeightType } from '../../src/gpu/weights.ts';
import { UnsupportedModelError } from '../../src/errors.ts';
import { outputBuffer, randomF32, readF32, run, testContext, uploadWords } from '../helpers/gpu.ts';


const { F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K } = GGMLType;

// type, rows, cols, tokens: awkward sizes (rows not a multiple of the 4 rows per workgroup,
// columns not a multiple of the workgroup's stride) and every workgroup size (64, 128, 256
// invocations for < 512, < 1024, >= 1024 units of 4 or 8 columns).
const cases: [WeightType, number, number, number][] = [
  [F32, 37, 68, 1],
  [F32, 3, 4100, 2],
  [F16, 67, 172, 1],
  [F16, 5, 2060, 3],
  [Q8_0, 70, 96, 1],
  [Q8_0, 6, 4128, 2],
  [Q4_0, 133, 160, 1],
  [Q4_0, 4, 8224, 3],
];

// The other block types and BF16, as random blocks (every quant bit pattern, random scales):
// rows not a multiple of 4, several super-blocks per row, tokens > 1, all three workgroup sizes.
const blockCases: [WeightType, number, number, number][] = [
  [BF16, 37, 132, 1],
  [BF16, 6, 2056, 2],
  [Q4_1, 35, 160, 2],
  [Q5_0, 70, 96, 1],
  [Q5_0, 5, 4128, 2],
  [Q5_1, 23, 288, 3],
  [Q4_K, 37, 512, 1],
  [Q4_K, 5, 8192, 2],
  [Q5_K, 22, 768, 2],
  [Q6_K, 39, 512, 1],
  [Q6_K, 3, 4352, 3],
];

describe.each(['default', 'plain'] as const)('matvec kernel (%s context)', (variant) => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await testContext(variant);
  });

  it.each(cases)('type %i rows=%i cols=%i T=%i matches the reference', async (type, rows, cols, T) => {
    const { bytes, w } = quantizedMatrix(type, randomF32(rows * cols, rows * 7 + cols));
    const x = randomF32(T * cols, 99 + cols);
    const wt = uploadWeight(ctx, 'w', type, bytes, rows, cols);
    const yb = outputBuffer(ctx, T * rows);
    const op = matvecOp(ctx, wt, uploadWords(ctx, x), yb, { tokens: T });
    await run(ctx, op.dispatches);
    const got = await readF32(ctx, yb, T * rows);
    const ratio = dotErrorRatio(got, matmulRef(w, rows, cols, x, T), w, rows, cols, x, T);
    expect(ratio, `${ggmlTypeName(type)} error ratio`).toBeLessThan(dotTolerance(cols));
  });

  it.each(blockCases)('type %i rows=%i cols=%i T=%i (random blocks) matches the reference', async (type, rows, cols, T) => {
    const { bytes, w } = randomMatrix(type, rows * cols, rows * 7 + cols + type);
    const x = randomF32(T * cols, 98 + cols);
    const wt = uploadWeight(ctx, 'w', type, bytes, rows, cols);
    const yb = outputBuffer(ctx, T * rows);
    const op = matvecOp(ctx, wt, uploadWords(ctx, x), yb, { tokens: T });
    await run(ctx, op.dispatches);
    const got = await readF32(ctx, yb, T * rows);
    const ratio = dotErrorRatio(got, matmulRef(w, rows, cols, x, T), w, rows, cols, x, T);
    expect(ratio, `${ggmlTypeName(type)} error ratio`).toBeLessThan(dotTolerance(cols));
  });

  // type, rows, cols: a quantizer's blocks (Q8_0) and random ones of a 5-bit and a 6-bit type.
  it.each([
    [Q8_0, 22, 64],
    [Q5_1, 22, 96],
    [Q6_K, 9, 256],
  ] as [WeightType, number, number][])('type %i adds the bias, accumulates into y, honours yStride/yOffset and follows setTokens', async (type, rows, cols) => {
    const [stride, offset] = [rows + 8, 5];
    const { bytes, w } = type === Q8_0 ? quantizedMatrix(Q8_0, randomF32(rows * cols, 5)) : randomMatrix(type, rows * cols, 5);
    const wt = uploadWeight(ctx, 'w', type, bytes, rows, cols);
    const bias = randomF32(rows, 6);
    const x = randomF32(3 * cols, 7);
    const y0 = randomF32(offset + 3 * stride, 8); // every word outside the outputs must survive
    const yb = uploadWords(ctx, y0);
    const op = matvecOp(ctx, wt, uploadWords(ctx, x), yb, { bias: uploadWords(ctx, bias), accumulate: true, yStride: stride, yOffset: offset });
    op.setTokens(3);
    await run(ctx, op.dispatches);
    const got = await readF32(ctx, yb, y0.length);
    const want = y0.slice();
    const bound = new Float32Array(y0.length); // allowed error: dotTolerance times the sum of |products|, |bias| and |y0|
    for (let t = 0; t < 3; t++) {
      const xt = x.subarray(t * cols, (t + 1) * cols);
      const o = offset + t * stride;
      want.set(matmulRef(w, rows, cols, xt, 1, { bias, y0: y0.subarray(o, o + rows) }), o);
      for (let r = 0; r < rows; r++) {
        let mag = Math.abs(bias[r]) + Math.abs(y0[o + r]);
        for (let c = 0; c < cols; c++) mag += Math.abs(w[r * cols + c] * xt[c]);
        bound[o + r] = dotTolerance(cols) * mag;
      }
    }
    for (let i = 0; i < want.length; i++) {
      const inside = i >= offset && (i - offset) % stride < rows && i < offset + 3 * stride;
      if (inside) expect(Math.abs(got[i] - want[i]), `y[${i}]`).toBeLessThanOrEqual(bound[i]);
      else expect(got[i], `untouched y[${i}]`).toBe(y0[i]);
    }
  });

  // type, rows, cols, maxBindingBytes, rows of each part. Packed bytes per row: Q4_0 18 per 32
  // columns, Q5_0 22, Q4_K 144 per 256, Q5_K 176, Q6_K 210 (parts of 3 super-blocks end on half
  // a word of d); a part holds floor((limit - 20) / rowBytes) rows.
  it.each([
    [Q4_0, 61, 96, 1100, [20, 20, 20, 1]],
    [Q5_0, 29, 96, 500, [7, 7, 7, 7, 1]],
    [Q4_K, 13, 512, 1000, [3, 3, 3, 3, 1]],
    [Q5_K, 7, 256, 600, [3, 3, 1]],
    [Q6_K, 9, 256, 700, [3, 3, 3]],
  ] as [WeightType, number, number, number, number[]][])('type %i runs each part of a matrix split by rows into its own rows', async (type, rows, cols, limit, partRows) => {
    const { bytes, w } = type === Q4_0 ? quantizedMatrix(Q4_0, randomF32(rows * cols, 9)) : randomMatrix(type, rows * cols, 9);
    const wt = uploadWeight(ctx, 'split', type, bytes, rows, cols, { maxBindingBytes: limit });
    expect(wt.parts.map((p) => p.rows)).toEqual(partRows);
    const x = randomF32(2 * cols, 10);
    const yb = outputBuffer(ctx, 2 * rows);
    const op = matvecOp(ctx, wt, uploadWords(ctx, x), yb, { tokens: 2 });
    expect(op.dispatches.length).toBe(partRows.length);
    await run(ctx, op.dispatches);
    const got = await readF32(ctx, yb, 2 * rows);
    expect(dotErrorRatio(got, matmulRef(w, rows, cols, x, 2), w, rows, cols, x, 2)).toBeLessThan(dotTolerance(cols));
  });
});

describe('matvec op', () => {
  it('sizes workgroups so that both case lists cover 64, 128 and 256 invocations', () => {
    expect(cases.map(([type, , cols]) => matvecWorkgroupSize(type, cols))).toEqual([64, 256, 64, 128, 64, 128, 64, 256]);
    expect(blockCases.map(([type, , cols]) => matvecWorkgroupSize(type, cols))).toEqual([64, 128, 64, 64, 128, 64, 64, 256, 64, 64, 128]);
  });

  it('rejects column counts that are not a multiple of 4', async () => {
    const ctx = await testContext();
    const wt = uploadWeight(ctx, 'odd', F32, new Uint8Array(3 * 6 * 4), 3, 6);
    expect(() => matvecOp(ctx, wt, outputBuffer(ctx, 6), outputBuffer(ctx, 3))).toThrow(UnsupportedModelError);
  });

  it('counts the bytes one application moves', () => {
    const w = { byteLength: 1000, rows: 10, cols: 20 };
    expect(linearBytes(w, 2)).toBe(1000 + 2 * 20 * 4 + 2 * 10 * 4);
    expect(linearBytes(w, 1, { accumulate: true, bias: {} as GPUBuffer })).toBe(1000 + 80 + 80 + 40);
  });
});
