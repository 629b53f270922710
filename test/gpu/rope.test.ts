import { describe, expect, it } from 'vitest';
import { buildRopeTable, ropeDispatch, uploadRopeTable, type RopeMode } from '../../src/gpu/ops/rope.ts';
import { ropeRef } from '../../src/gpu/ref/rope.ts';
import { UnsupportedModelError } from '../../src/errors.ts';
import { compare, randomF32, readF32, run, testContext, uploadWords } from '../helpers/gpu.ts';

describe('buildRopeTable', () => {
  it('holds cos/sin of pos * base^(-2i/ropeDim) / freqFactor[i], computed in f64', () => {
    const ff = new Float32Array([1, 2, 4, 8, 1, 1]);
    const t = buildRopeTable(3000, 12, 500000, ff);
    expect(t.length).toBe(3000 * 6 * 2);
    for (const pos of [0, 1, 17, 2999]) {
      for (let i = 0; i < 6; i++) {
        const theta = (pos * Math.pow(500000, (-2 * i) / 12)) / ff[i];
        expect(t[(pos * 6 + i) * 2]).toBe(Math.fround(Math.cos(theta)));
        expect(t[(pos * 6 + i) * 2 + 1]).toBe(Math.fround(Math.sin(theta)));
      }
    }
  });

  it('scales the angles by freqScale and cos/sin by attnFactor, as ggml rope does', () => {
    const ff = new Float32Array([1, 3, 2, 5]);
    const t = buildRopeTable(50, 8, 10000, ff, { freqScale: 0.25, attnFactor: 1.19 });
    for (const pos of [0, 7, 49]) {
      for (let i = 0; i < 4; i++) {
        const theta = (pos * 0.25 * Math.pow(10000, (-2 * i) / 8)) / ff[i];
        expect(t[(pos * 4 + i) * 2]).toBe(Math.fround(Math.cos(theta) * 1.19));
        expect(t[(pos * 4 + i) * 2 + 1]).toBe(Math.fround(Math.sin(theta) * 1.19));
      }
    }
  });

  it('rejects an odd RoPE dimension and a short rope_freqs', () => {
    expect(() => buildRopeTable(4, 7, 10000)).toThrow(UnsupportedModelError);
    expect(() => buildRopeTable(4, 8, 10000, new Float32Array(3))).toThrow(/rope_freqs/);
  });
});

describe('rope kernel', () => {
  const cases: [RopeMode, number, number, number, number][] = [
    // mode, nHeads, headDim, ropeDim, nTokens
    ['norm', 8, 8, 8, 5],
    ['neox', 3, 64, 64, 7],
    ['norm', 2, 128, 128, 3],
    ['neox', 5, 64, 32, 9], // partial rotation: dims 32..63 untouched
    ['norm', 4, 128, 96, 1],
  ];
  it.each(cases)('%s nHeads=%i headDim=%i ropeDim=%i T=%i matches the reference', async (mode, nHeads, headDim, ropeDim, T) => {
    const ctx = await testContext();
    const maxPos = 4096;
    const table = buildRopeTable(maxPos, ropeDim, 10000);
    const tableBuf = uploadRopeTable(ctx, table);
    const x = randomF32(T * nHeads * headDim, 11 + T * headDim);
    const positions = new Uint32Array(T).map((_, i) => (i * 977 + 13) % maxPos);
    const xb = uploadWords(ctx, x);
    const pb = uploadWords(ctx, positions);
    await run(ctx, [ropeDispatch(ctx, xb, pb, tableBuf, { nHeads, headDim, ropeDim, mode, maxPos }, T)]);
    const got = await readF32(ctx, xb, x.length);
    const want = ropeRef(x, positions, nHeads, headDim, ropeDim, mode, table);
    expect(compare(got, want).maxAbs).toBeLessThan(1e-6);
    // The unrotated tail is copied bit for bit.
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < nHeads; h++) {
        for (let d = ropeDim; d < headDim; d++) expect(got[(t * nHeads + h) * headDim + d]).toBe(x[(t * nHeads + h) * headDim + d]);
      }
    }
  });

  it('rotates only the q part of a fused row (stride and offset) and follows setTokens', async () => {
    const ctx = await testContext();
    const [nHeads, headDim, T, stride, offset] = [2, 8, 6, 40, 4];
    const table = buildRopeTable(64, 8, 10000);
    const x = randomF32(T * stride + offset, 99);
    const positions = new Uint32Array([3, 9, 1, 40, 0, 63]);
    const xb = uploadWords(ctx, x);
    const d = ropeDispatch(ctx, xb, uploadWords(ctx, positions), uploadRopeTable(ctx, table), { nHeads, headDim, ropeDim: 8, mode: 'norm', maxPos: 64, stride, offset }, 1);
    d.setTokens(T - 1);
    await run(ctx, [d]);
    const got = await readF32(ctx, xb, x.length);
    const want = x.slice();
    for (let t = 0; t < T - 1; t++) {
      const q = x.slice(offset + t * stride, offset + t * stride + nHeads * headDim);
      want.set(ropeRef(q, [positions[t]], nHeads, headDim, 8, 'norm', table), offset + t * stride);
    }
    expect(compare(got, want).maxAbs).toBeLessThan(1e-6);
    expect(Array.from(got.slice(offset + (T - 1) * stride))).toEqual(Array.from(x.slice(offset + (T - 1) * stride)));
  });
});
