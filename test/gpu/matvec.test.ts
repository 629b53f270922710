import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { GGMLType, ggmlTypeName } from '../../src/gguf/quant.ts';
import { linearBytes, matvecOp, matvecWorkgroupSize } from '../../src/gpu/ops/matvec.ts';
import { matmulRef } from '../../src/gpu/ref/matmul.ts';
import { dotErrorRatio, dotTolerance, quantizedMatrix } from '../../src/gpu/ref/matvec.ts';
import { uploadWeight, type WeightType } from '../../src/gpu/weights.ts';
import { UnsupportedModelError } from '../../src/errors.ts';
import { outputBuffer, randomF32, readF32, run, testContext, uploadWords } from '../helpers/gpu.ts';


const { F32, F16, Q8_0, Q4_0 } = GGMLType;

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

  it('adds the bias, accumulates into y, honours yStride/yOffset and follows setTokens', async () => {
    const [rows, cols, stride, offset] = [22, 64, 30, 5];
    const { bytes, w } = quantizedMatrix(Q8_0, randomF32(rows * cols, 5));
    const wt = uploadWeight(ctx, 'w', Q8_0, bytes, rows, cols);
    const bias = randomF32(rows, 6);
    const x = randomF32(3 * cols, 7);
    const y0 = randomF32(offset + 3 * stride, 8); // every word outside the outputs must survive
    const yb = uploadWords(ctx, y0);
    const op = matvecOp(ctx, wt, uploadWords(ctx, x), yb, { bias: uploadWords(ctx, bias), accumulate: true, yStride: stride, yOffset: offset });
    op.setTokens(3);
    await run(ctx, op.dispatches);
    const got = await readF32(ctx, yb, y0.length);
    const want = y0.slice();
    for (let t = 0; t < 3; t++) {
      const before = y0.subarray(offset + t * stride, offset + t * stride + rows);
      want.set(matmulRef(w, rows, cols, x.subarray(t * cols, (t + 1) * cols), 1, { bias, y0: before }), offset + t * stride);
    }
    for (let i = 0; i < want.length; i++) {
      const inside = i >= offset && (i - offset) % stride < rows && i < offset + 3 * stride;
      if (inside) expect(Math.abs(got[i] - want[i]), `y[${i}]`).toBeLessThan(1e-5);
      else expect(got[i], `untouched y[${i}]`).toBe(y0[i]);
    }
  });

  it('runs each part of a matrix split by rows into its own rows', async () => {
    const [rows, cols] = [61, 96];
    const { bytes, w } = quantizedMatrix(Q4_0, randomF32(rows * cols, 9));
    // 18 bytes of quants and scales per 32 columns: 54 per row, so ~20 rows per 1100-byte part.
    const wt = uploadWeight(ctx, 'split', Q4_0, bytes, rows, cols, { maxBindingBytes: 1100 });
    expect(wt.parts.length).toBe(4);
    expect(wt.parts.map((p) => p.rows)).toEqual([20, 20, 20, 1]);
    const x = randomF32(cols, 10);
    const yb = outputBuffer(ctx, rows);
    const op = matvecOp(ctx, wt, uploadWords(ctx, x), yb);
    expect(op.dispatches.length).toBe(4);
    await run(ctx, op.dispatches);
    const got = await readF32(ctx, yb, rows);
    expect(dotErrorRatio(got, matmulRef(w, rows, cols, x, 1), w, rows, cols, x)).toBeLessThan(dotTolerance(cols));
  });
});

describe('matvec op', () => {
  it('sizes workgroups so that the test cases cover 64, 128 and 256 invocations', () => {
    expect(cases.map(([type, , cols]) => matvecWorkgroupSize(type, cols))).toEqual([64, 256, 64, 128, 64, 128, 64, 256]);
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
