import { describe, expect, it } from 'vitest';
import { UnsupportedModelError } from '../../src/errors.ts';
import { GGMLType, ggmlTypeName } from '../../src/gguf/quant.ts';
import { gateUpBytes, gateUpMatvecOp, mlpGateOp, siluMulOp } from '../../src/gpu/ops/mlp.ts';
import { quantizedMatrix, randomMatrix } from '../../src/gpu/ref/matvec.ts';
import { gateUpRef, siluMulRef } from '../../src/gpu/ref/mlp.ts';
import { uploadWeight, type WeightType } from '../../src/gpu/weights.ts';
import { compare, outputBuffer, randomF32, readF32, run, testContext, uploadWords } from '../helpers/gpu.ts';

const { F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K } = GGMLType;

// The gate and up sums carry the matvec's rounding (dotTolerance of their magnitude) into
// silu(g) * u; relative to the largest output, a few units of 1e-6 for these sizes.
const TOLERANCE = 1e-5;

// Gate and up matrices: a quantizer's blocks for F32, F16, Q8_0 and Q4_0, random blocks for the other types.
function pair(type: WeightType, rows: number, cols: number, seed: number) {
  const quantized = type === F32 || type === F16 || type === Q8_0 || type === Q4_0;
  const make = (s: number) => (quantized ? quantizedMatrix(type, randomF32(rows * cols, s)) : randomMatrix(type, rows * cols, s));
  return { g: make(seed), u: make(seed + 1) };
}

describe('silu-mul kernel', () => {
  it.each([1, 300, 70001])('gate = silu(gate) * up for n=%i', async (n) => {
    const ctx = await testContext();
    const g = randomF32(n, n, -10, 10);
    const u = randomF32(n, n + 1, -2, 2);
    const gb = uploadWords(ctx, g);
    await run(ctx, [siluMulOp(ctx, gb, uploadWords(ctx, u), n)]);
    expect(compare(await readF32(ctx, gb, n), siluMulRef(g, u)).rel).toBeLessThan(1e-6);
  });
});

describe.each(['default', 'plain'] as const)('fused gate/up matvec (%s context)', (variant) => {
  const cases: [WeightType, number, number, number][] = [
    [F32, 43, 64, 1],
    [F16, 70, 172, 2],
    [Q8_0, 37, 288, 1],
    [Q4_0, 130, 160, 1],
    [BF16, 23, 68, 1],
    [Q4_1, 21, 96, 2],
    [Q5_0, 19, 160, 1],
    [Q5_1, 18, 64, 1],
    [Q4_K, 17, 512, 1],
    [Q5_K, 15, 256, 2],
    [Q6_K, 13, 768, 1],
  ];
  it.each(cases)('type %i rows=%i cols=%i T=%i matches the reference', async (type, rows, cols, T) => {
    const ctx = await testContext(variant);
    const { g, u } = pair(type, rows, cols, rows + cols);
    const x = randomF32(T * cols, 5);
    const h = outputBuffer(ctx, T * rows);
    const op = gateUpMatvecOp(
      ctx,
      uploadWeight(ctx, 'gate', type, g.bytes, rows, cols),
      uploadWeight(ctx, 'up', type, u.bytes, rows, cols),
      uploadWords(ctx, x),
      h,
      { tokens: T },
    );
    await run(ctx, op.dispatches);
    const err = compare(await readF32(ctx, h, T * rows), gateUpRef(g.w, u.w, rows, cols, x, T)).rel;
    expect(err, ggmlTypeName(type)).toBeLessThan(TOLERANCE);
  });

  // type, rows, cols, maxBindingBytes: three parts each (Q4_0: 36 bytes a row, Q5_K: 176).
  it.each([
    [Q4_0, 50, 64, 700],
    [Q5_K, 11, 256, 900],
  ] as [WeightType, number, number, number][])('type %i covers every part of a row-split pair', async (type, rows, cols, limit) => {
    const ctx = await testContext(variant);
    const { g, u } = pair(type, rows, cols, 9);
    const gate = uploadWeight(ctx, 'gate', type, g.bytes, rows, cols, { maxBindingBytes: limit });
    const up = uploadWeight(ctx, 'up', type, u.bytes, rows, cols, { maxBindingBytes: limit });
    expect(gate.parts.length).toBe(3);
    const x = randomF32(cols, 10);
    const h = outputBuffer(ctx, rows);
    await run(ctx, gateUpMatvecOp(ctx, gate, up, uploadWords(ctx, x), h).dispatches);
    expect(compare(await readF32(ctx, h, rows), gateUpRef(g.w, u.w, rows, cols, x, 1)).rel).toBeLessThan(TOLERANCE);
  });
});

describe('mlpGateOp', () => {
  it('runs the fused matvec for one token and matmul + silu-mul for batches, from one recording', async () => {
    const ctx = await testContext();
    const [rows, cols, maxT] = [70, 96, 16];
    const { g, u } = pair(Q8_0, rows, cols, 3);
    const gate = uploadWeight(ctx, 'gate', Q8_0, g.bytes, rows, cols);
    const up = uploadWeight(ctx, 'up', Q8_0, u.bytes, rows, cols);
    const x = randomF32(maxT * cols, 4);
    const h = outputBuffer(ctx, maxT * rows);
    const op = mlpGateOp(ctx, gate, up, uploadWords(ctx, x), h, outputBuffer(ctx, maxT * rows), { maxTokens: maxT });
    for (const T of [1, maxT, 1]) {
      op.setTokens(T);
      const active = op.dispatches.filter((d) => d.workgroups.every((n) => n > 0)).map((d) => d.label.split(':')[0]);
      expect(active).toEqual(T === 1 ? ['gate-up'] : ['matmul', 'matmul', 'silu-mul']);
      await run(ctx, op.dispatches);
      const got = (await readF32(ctx, h, maxT * rows)).subarray(0, T * rows);
      expect(compare(got, gateUpRef(g.w, u.w, rows, cols, x, T)).rel).toBeLessThan(TOLERANCE);
    }
  });

  it('rejects a gate and up of different shapes or types', async () => {
    const ctx = await testContext();
    const a = uploadWeight(ctx, 'gate', F32, new Uint8Array(8 * 8 * 4), 8, 8);
    const b = uploadWeight(ctx, 'up', F16, new Uint8Array(8 * 8 * 2), 8, 8);
    const x = outputBuffer(ctx, 8);
    expect(() => gateUpMatvecOp(ctx, a, b, x, outputBuffer(ctx, 8))).toThrow(UnsupportedModelError);
  });

  it('counts both weights in the bytes moved', () => {
    const w = { byteLength: 500, rows: 10, cols: 20 } as Parameters<typeof gateUpBytes>[0];
    expect(gateUpBytes(w, w, 1)).toBe(500 + 500 + 20 * 4 + 10 * 4);
  });
});
