import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { GGMLType, ggmlTypeName } from '../../src/gguf/quant.ts';
import { embeddingBytes, embeddingOp } from '../../src/gpu/ops/embedding.ts';
import { embeddingRef } from '../../src/gpu/ref/embedding.ts';
import { quantizedMatrix, randomMatrix } from '../../src/gpu/ref/matvec.ts';
import { uploadWeight, type WeightType } from '../../src/gpu/weights.ts';
import { GUARD_WORD, outputBuffer, randomF32, readF32, readU32, run, testContext, uploadWords } from '../helpers/gpu.ts';

const { F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K } = GGMLType;

describe('embedding kernel', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await testContext();
  });

  // type, vocab rows, cols (F32 odd, F16 even; quantized multiples of 32, above one workgroup's 256)
  const cases: [WeightType, number, number][] = [
    [F32, 50, 37],
    [F16, 33, 70],
    [Q8_0, 40, 288],
    [Q4_0, 29, 96],
  ];
  it.each(cases)('type %i rows=%i cols=%i copies the dequantized rows exactly', async (type, rows, cols) => {
    const { bytes, w } = quantizedMatrix(type, randomF32(rows * cols, rows + cols, -3, 3));
    const table = uploadWeight(ctx, 'embd', type, bytes, rows, cols);
    const ids = new Uint32Array([0, rows - 1, 7, 7, 3, 12, 1]);
    const out = outputBuffer(ctx, ids.length * cols);
    const op = embeddingOp(ctx, table, uploadWords(ctx, ids), out, { tokens: ids.length });
    await run(ctx, op.dispatches);
    const got = await readF32(ctx, out, ids.length * cols);
    expect(got, ggmlTypeName(type)).toEqual(embeddingRef(w, cols, ids));
  });

  // The other block types and BF16 as random blocks (K-quants: two super-blocks a row).
  const blockCases: [WeightType, number, number][] = [
    [BF16, 31, 70],
    [Q4_1, 30, 96],
    [Q5_0, 29, 288],
    [Q5_1, 28, 64],
    [Q4_K, 27, 512],
    [Q5_K, 26, 512],
    [Q6_K, 25, 512],
  ];
  it.each(blockCases)('type %i rows=%i cols=%i (random blocks) copies the dequantized rows exactly', async (type, rows, cols) => {
    const { bytes, w } = randomMatrix(type, rows * cols, rows + cols);
    const table = uploadWeight(ctx, 'embd', type, bytes, rows, cols);
    const ids = new Uint32Array([0, rows - 1, 7, 7, 3, 12, 1, 24]);
    const out = outputBuffer(ctx, ids.length * cols);
    const op = embeddingOp(ctx, table, uploadWords(ctx, ids), out, { tokens: ids.length });
    await run(ctx, op.dispatches);
    const got = await readF32(ctx, out, ids.length * cols);
    expect(got, ggmlTypeName(type)).toEqual(embeddingRef(w, cols, ids));
  });

  // type, cols, maxBindingBytes: 27 of the 70 rows a part (Q4_0: 36 bytes a row; Q6_K: 210, so
  // parts of 27 super-blocks end on half a word of d).
  it.each([
    [Q4_0, 64, 1000],
    [Q6_K, 256, 5700],
  ] as [WeightType, number, number][])('type %i serves each id from the part holding its row, with strides, offsets and setTokens', async (type, cols, limit) => {
    const [rows, stride, outOffset, idsOffset] = [70, cols + 6, 3, 2];
    const { bytes, w } = type === Q4_0 ? quantizedMatrix(Q4_0, randomF32(rows * cols, 77)) : randomMatrix(type, rows * cols, 77);
    const table = uploadWeight(ctx, 'embd', type, bytes, rows, cols, { maxBindingBytes: limit });
    expect(table.parts.map((p) => p.rows)).toEqual([27, 27, 16]);
    const ids = new Uint32Array([99, 99, 69, 0, 26, 27, 53, 54, 40]);
    const T = ids.length - idsOffset;
    const outLen = outOffset + T * stride;
    const out = outputBuffer(ctx, outLen);
    const op = embeddingOp(ctx, table, uploadWords(ctx, ids), out, { outStride: stride, outOffset, idsOffset });
    op.setTokens(T);
    await run(ctx, op.dispatches);
    const got = new Uint32Array((await readF32(ctx, out, outLen)).buffer);
    // Rows at their strided places; the gaps between them and the words before keep their guard words.
    const rowsWant = new Uint32Array(embeddingRef(w, cols, ids.subarray(idsOffset)).buffer);
    const want = new Uint32Array(outLen).fill(GUARD_WORD);
    for (let t = 0; t < T; t++) want.set(rowsWant.subarray(t * cols, (t + 1) * cols), outOffset + t * stride);
    expect(got).toEqual(want);
  });

  it('leaves the output of an id beyond the table untouched and reads nothing out of bounds', async () => {
    const [rows, cols] = [8, 32];
    const { bytes, w } = quantizedMatrix(Q8_0, randomF32(rows * cols, 5));
    const table = uploadWeight(ctx, 'embd', Q8_0, bytes, rows, cols);
    const ids = new Uint32Array([2, 8, 0xffffffff, 5]);
    const out = outputBuffer(ctx, ids.length * cols);
    await run(ctx, embeddingOp(ctx, table, uploadWords(ctx, ids), out, { tokens: 4 }).dispatches);
    const got = await readU32(ctx, out, ids.length * cols);
    const f = new Float32Array(got.buffer);
    expect(f.subarray(0, cols)).toEqual(w.subarray(2 * cols, 3 * cols));
    expect([...got.subarray(cols, 3 * cols)].every((v) => v === GUARD_WORD)).toBe(true);
    expect(f.subarray(3 * cols)).toEqual(w.subarray(5 * cols, 6 * cols));
  });

  it('counts the bytes one lookup moves', () => {
    expect(embeddingBytes({ byteLength: 1800, rows: 10, cols: 100 }, 3)).toBe(3 * (180 + 4 + 400));
  });
});
