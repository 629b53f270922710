import { describe, expect, it } from 'vitest';
import { GGUFError, GPUError, UnsupportedModelError } from '../../src/errors.ts';
import { GGMLType, dequantize, f32ToF16, quantize } from '../../src/gguf/quant.ts';
import { packWeight, packedLayout, unpackWeight, uploadVector, uploadWeight, WEIGHT_TYPES } from '../../src/gpu/weights.ts';
import { randomF32, readWords, testContext } from '../helpers/gpu.ts';

const { F32, F16, BF16, Q8_0, Q4_0, Q4_1 } = GGMLType;

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

  it.each(WEIGHT_TYPES)('type %i unpacks to exactly what the GGUF bytes decode to', (type) => {
    const [rows, cols] = [5, 96]; // 15 blocks: an odd scale count
    const gguf = quantize(type, randomF32(rows * cols, type + 3, -5, 5));
    const words = packWeight(type, gguf, rows, cols);
    expect(words.length).toBe(packedLayout(type, rows, cols).words);
    expect(unpackWeight(type, words, rows, cols, packedLayout(type, rows, cols).scaleOffset)).toEqual(dequantize(type, gguf, rows * cols));
  });

  it('rejects types, shapes and byte counts it cannot lay out', () => {
    expect(() => packWeight(Q4_1 as never, new Uint8Array(40), 1, 32)).toThrow(UnsupportedModelError);
    expect(() => packWeight(Q8_0, new Uint8Array(1000), 2, 48)).toThrow(/multiple of 32/);
    expect(() => packWeight(F16, new Uint8Array(1000), 2, 7)).toThrow(/odd column count/);
    expect(() => packWeight(Q4_0, new Uint8Array(35), 2, 32)).toThrow(GGUFError);
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

  it('names the tensor when a single row does not fit, or the type is unsupported', async () => {
    const ctx = await testContext();
    expect(() => uploadWeight(ctx, 'token_embd.weight', F32, new Uint8Array(4096), 2, 512, { maxBindingBytes: 1024 })).toThrow(GPUError);
    expect(() => uploadWeight(ctx, 'output.weight', BF16, new Uint8Array(64), 2, 16)).toThrow(/output\.weight.*BF16/);
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
