import { describe, expect, it } from 'vitest';
import { GGUFError, GPUError, UnsupportedModelError } from '../../src/errors.ts';
import { GGMLType, dequantize, f32ToF16, quantize } from '../../src/gguf/quant.ts';
import { randomBlockBytes } from '../../src/gpu/ref/matvec.ts';
import { packWeight, packedLayout, unpackWeight, uploadVector, uploadWeight, weightBlockSize, WEIGHT_TYPES } from '../../src/gpu/weights.ts';
import { randomF32, readWords, testContext } from '../helpers/gpu.ts';

const { F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q2_K, Q3_K } = GGMLType;

/** Words of `words` as bytes [from, to). */
function wordBytes(words: Uint32Array, from: number, to: number): number[] {
  return [...new Uint8Array(words.buffer, words.byteOffset + from, to - from)];
}

describe('packWeight', () => {
  it('puts Q8_0 quants first, four per word, then f16 scale pairs from scaleOffset', () => {
    // 3 rows × 32 columns: 3 blocks, so the last scale word holds one scale and a zero.
    const values = new Float32Array(96).map((_, i) => ((i % 32) - 16) * (1 + Math.floor(i / 32)));
    const gguf = quantize(Q8_0, values);
    const words = packWeight(Q8_0, gguf, 3, 32);
    const { scaleOffset } = packedLayout(Q8_0, 3, 32);
    expect(scaleOffset).toBe(24);
    expect(words.length).toBe(24 + 2);
    const bytes = new Uint8Array(words.buffer);
    for (let b = 0; b < 3; b++) {
      expect([...bytes.subarray(b * 32, b * 32 + 32)]).toEqual([...gguf.subarray(b * 34 + 2, b * 34 + 34)]);
      expect(new Uint16Array(words.buffer, scaleOffset * 4, 4)[b]).toBe(gguf[b * 34] | (gguf[b * 34 + 1] << 8));
    }
    expect(words[25] >>> 16).toBe(0);
  });

  it('puts Q4_0 blocks as 16 nibble bytes (element j low, j+16 high), then the scales', () => {
    const values = new Float32Array(64).map((_, i) => (i % 16) - 8 + (i % 32 >= 16 ? 0.25 : 0));
    const gguf = quantize(Q4_0, values);
    const words = packWeight(Q4_0, gguf, 1, 64);
    expect(packedLayout(Q4_0, 1, 64)).toEqual({ words: 9, scaleOffset: 8 });
    const bytes = new Uint8Array(words.buffer);
    expect([...bytes.subarray(16, 32)]).toEqual([...gguf.subarray(20, 36)]);
    expect(words[8]).toBe((gguf[0] | (gguf[1] << 8) | (gguf[18] << 16) | (gguf[19] << 24)) >>> 0);
  });

  it('keeps F32 as is and F16 as half pairs (element 2i in the low half)', () => {
    const v = new Float32Array([1.5, -2, 3.25, 65504]);
    expect(new Float32Array(packWeight(F32, quantize(F32, v), 2, 2).buffer)).toEqual(v);
    const h = packWeight(F16, quantize(F16, v), 2, 2);
    expect([...h]).toEqual([(f32ToF16(1.5) | (f32ToF16(-2) << 16)) >>> 0, (f32ToF16(3.25) | (f32ToF16(65504) << 16)) >>> 0]);
  });

  it('keeps BF16 as pairs (element 2i in the low half)', () => {
    const gguf = quantize(BF16, new Float32Array([1.5, -2, 3.25, 1e30]));
    expect(wordBytes(packWeight(BF16, gguf, 1, 4), 0, 8)).toEqual([...gguf]);
  });

  it('puts Q4_1 and Q5_1 quants first, then (Q5_1) the qh words, then d|m words', () => {
    const q41 = randomBlockBytes(Q4_1, 64, 1); // 2 blocks of 20 bytes: f16 d, f16 m, qs[16]
    const w41 = packWeight(Q4_1, q41, 1, 64);
    expect(packedLayout(Q4_1, 1, 64)).toEqual({ words: 10, scaleOffset: 8 });
    expect(wordBytes(w41, 16, 32)).toEqual([...q41.subarray(24, 40)]);
    expect(wordBytes(w41, 36, 40)).toEqual([...q41.subarray(20, 24)]);
    const q51 = randomBlockBytes(Q5_1, 32, 2); // f16 d, f16 m, qh[4], qs[16]
    const w51 = packWeight(Q5_1, q51, 1, 32);
    expect(w51.length).toBe(6);
    expect(wordBytes(w51, 0, 24)).toEqual([...q51.subarray(8, 24), ...q51.subarray(4, 8), ...q51.subarray(0, 4)]);
  });

  it('puts Q5_0 quants first, then one qh word per block, then f16 scale pairs', () => {
    const gguf = randomBlockBytes(Q5_0, 96, 3); // 3 blocks of 22 bytes: f16 d, qh[4], qs[16]
    const words = packWeight(Q5_0, gguf, 1, 96);
    expect(packedLayout(Q5_0, 1, 96)).toEqual({ words: 17, scaleOffset: 12 });
    for (let b = 0; b < 3; b++) {
      expect(wordBytes(words, 16 * b, 16 * b + 16)).toEqual([...gguf.subarray(22 * b + 6, 22 * b + 22)]);
      expect(wordBytes(words, 48 + 4 * b, 52 + 4 * b)).toEqual([...gguf.subarray(22 * b + 2, 22 * b + 6)]);
      expect(wordBytes(words, 60 + 2 * b, 62 + 2 * b)).toEqual([...gguf.subarray(22 * b, 22 * b + 2)]);
    }
    expect(words[16] >>> 16).toBe(0);
  });

  it('puts K-quant quants first, then Q5_K/Q6_K high bits, then the 16-byte headers or Q6_K scales and d', () => {
    const q4k = randomBlockBytes(Q4_K, 512, 4); // 2 super-blocks: f16 d, f16 dmin, scales[12], qs[128]
    const w4k = packWeight(Q4_K, q4k, 1, 512);
    expect(packedLayout(Q4_K, 1, 512)).toEqual({ words: 72, scaleOffset: 64 });
    expect(wordBytes(w4k, 128, 256)).toEqual([...q4k.subarray(144 + 16, 288)]);
    expect(wordBytes(w4k, 256, 288)).toEqual([...q4k.subarray(0, 16), ...q4k.subarray(144, 160)]);

    const q5k = randomBlockBytes(Q5_K, 512, 5); // f16 d, f16 dmin, scales[12], qh[32], qs[128]
    const w5k = packWeight(Q5_K, q5k, 1, 512);
    expect(packedLayout(Q5_K, 1, 512)).toEqual({ words: 88, scaleOffset: 64 });
    expect(wordBytes(w5k, 0, 128)).toEqual([...q5k.subarray(48, 176)]);
    expect(wordBytes(w5k, 256, 320)).toEqual([...q5k.subarray(16, 48), ...q5k.subarray(176 + 16, 176 + 48)]);
    expect(wordBytes(w5k, 320, 352)).toEqual([...q5k.subarray(0, 16), ...q5k.subarray(176, 192)]);

    const q6k = randomBlockBytes(Q6_K, 768, 6); // 3 super-blocks: ql[128], qh[64], int8 scales[16], f16 d
    const w6k = packWeight(Q6_K, q6k, 1, 768);
    expect(packedLayout(Q6_K, 1, 768)).toEqual({ words: 158, scaleOffset: 96 }); // 630 bytes: the last d pair half empty
    for (let b = 0; b < 3; b++) {
      const g = 210 * b;
      expect(wordBytes(w6k, 128 * b, 128 * b + 128)).toEqual([...q6k.subarray(g, g + 128)]);
      expect(wordBytes(w6k, 384 + 64 * b, 448 + 64 * b)).toEqual([...q6k.subarray(g + 128, g + 192)]);
      expect(wordBytes(w6k, 576 + 16 * b, 592 + 16 * b)).toEqual([...q6k.subarray(g + 192, g + 208)]);
      expect(wordBytes(w6k, 624 + 2 * b, 626 + 2 * b)).toEqual([...q6k.subarray(g + 208, g + 210)]);
    }
    expect(w6k[157] >>> 16).toBe(0);
  });

  it.each(WEIGHT_TYPES)('type %i unpacks to exactly what the GGUF bytes decode to', (type) => {
    // An odd block count (so the last scale pair is half used): 5 rows of 3 blocks, or of 1 super-block.
    const [rows, cols] = [5, weightBlockSize(type) === 256 ? 256 : 96];
    const quantizable = type === F32 || type === F16 || type === BF16 || type === Q8_0 || type === Q4_0;
    const gguf = quantizable ? quantize(type, randomF32(rows * cols, type + 3, -5, 5)) : randomBlockBytes(type, rows * cols, type + 3);
    const words = packWeight(type, gguf, rows, cols);
    expect(words.length).toBe(packedLayout(type, rows, cols).words);
    const got = unpackWeight(type, words, rows, cols, packedLayout(type, rows, cols).scaleOffset);
    const want = dequantize(type, gguf, rows * cols);
    expect(new Uint32Array(got.buffer)).toEqual(new Uint32Array(want.buffer)); // bit patterns: -0 and NaN too
  });

  it('rejects types, shapes and byte counts it cannot lay out', () => {
    expect(() => packWeight(Q2_K as never, new Uint8Array(84), 1, 256)).toThrow(UnsupportedModelError);
    expect(() => packWeight(Q8_0, new Uint8Array(1000), 2, 48)).toThrow(/multiple of 32/);
    expect(() => packWeight(Q4_K, new Uint8Array(4000), 2, 896)).toThrow(/Q4_K with 896 columns, not a multiple of 256/);
    expect(() => packWeight(Q6_K, new Uint8Array(4000), 1, 128)).toThrow(UnsupportedModelError);
    expect(() => packWeight(Q5_1, new Uint8Array(1000), 1, 40)).toThrow(/multiple of 32/);
    expect(() => packWeight(F16, new Uint8Array(1000), 2, 7)).toThrow(/odd column count/);
    expect(() => packWeight(BF16, new Uint8Array(1000), 2, 7)).toThrow(/BF16 with an odd column count/);
    expect(() => packWeight(Q4_0, new Uint8Array(35), 2, 32)).toThrow(GGUFError);
    expect(() => packWeight(Q6_K, new Uint8Array(419), 2, 256)).toThrow(GGUFError);
  });
});

describe('uploadWeight', () => {
  it('splits by rows under the binding limit; each part holds its rows packed with its own scales', async () => {
    const ctx = await testContext();
    const [rows, cols] = [23, 64];
    const gguf = quantize(Q8_0, randomF32(rows * cols, 1));
    // 68 bytes per row: 400 bytes hold 5 rows.
    const w = uploadWeight(ctx, 'blk.0.ffn_up.weight', Q8_0, gguf, rows, cols, { maxBindingBytes: 400 });
    expect(w.parts.map((p) => [p.rowStart, p.rows])).toEqual([
      [0, 5],
      [5, 5],
      [10, 5],
      [15, 5],
      [20, 3],
    ]);
    expect(w.byteLength).toBe(w.parts.reduce((s, p) => s + p.byteLength, 0));
    for (const p of w.parts) {
      expect(p.buffer.size).toBeLessThanOrEqual(400);
      const want = packWeight(Q8_0, gguf.subarray(p.rowStart * 68, (p.rowStart + p.rows) * 68), p.rows, cols);
      expect(p.scaleOffset).toBe(p.rows * 16);
      expect((await readWords(ctx, p.buffer, want.length)).subarray(0, want.length)).toEqual(want);
    }
    const whole = uploadWeight(ctx, 'w', Q8_0, gguf, rows, cols);
    expect(whole.parts.length).toBe(1);
    expect(whole.byteLength).toBe(packedLayout(Q8_0, rows, cols).words * 4);
  });

  it('splits K-quants by rows, each part with its own regions', async () => {
    const ctx = await testContext();
    const [rows, cols] = [7, 512];
    const gguf = randomBlockBytes(Q6_K, rows * cols, 8);
    // 420 bytes per row: 1000 bytes hold 2 rows.
    const w = uploadWeight(ctx, 'blk.0.ffn_down.weight', Q6_K, gguf, rows, cols, { maxBindingBytes: 1000 });
    expect(w.parts.map((p) => p.rows)).toEqual([2, 2, 2, 1]);
    for (const p of w.parts) {
      const want = packWeight(Q6_K, gguf.subarray(p.rowStart * 420, (p.rowStart + p.rows) * 420), p.rows, cols);
      expect(p.scaleOffset).toBe(p.rows * 64);
      expect(p.byteLength).toBe(want.byteLength);
      expect((await readWords(ctx, p.buffer, want.length)).subarray(0, want.length)).toEqual(want);
    }
  });

  it('names the tensor when a single row does not fit, or the type is unsupported', async () => {
    const ctx = await testContext();
    expect(() => uploadWeight(ctx, 'token_embd.weight', F32, new Uint8Array(4096), 2, 512, { maxBindingBytes: 1024 })).toThrow(GPUError);
    expect(() => uploadWeight(ctx, 'output.weight', Q3_K, new Uint8Array(220), 2, 256)).toThrow(/output\.weight.*Q3_K/);
  });

  it('uploads F32, F16 and BF16 vectors as f32', async () => {
    const ctx = await testContext();
    const v = randomF32(37, 2);
    for (const type of [F32, F16, BF16]) {
      const buf = uploadVector(ctx, 'norm', type, quantize(type, v), 37);
      const got = new Float32Array((await readWords(ctx, buf, 37)).buffer, 0, 37);
      expect(got).toEqual(dequantize(type, quantize(type, v), 37));
    }
    expect(() => uploadVector(ctx, 'norm', Q8_0, new Uint8Array(34), 32)).toThrow(UnsupportedModelError);
  });
});
