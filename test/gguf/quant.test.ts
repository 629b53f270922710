import { describe, expect, it } from 'vitest';
import { GGUFError } from '../../src/errors.ts';
import {
  GGMLType,
  bf16ToF32,
  dequantize,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  ggmlTypeInfo,
  quantize,
  tensorByteLength,
} from '../../src/gguf/quant.ts';
import { randomF32 } from '../helpers/gpu.ts';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GGUFError);
    return (err as GGUFError).code;
  }
  return undefined;
}

describe('f16 conversion', () => {
  it.each([
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff], // largest finite half
    [65519, 0x7bff], // just below the halfway point to 65536
    [65520, 0x7c00], // halfway: ties to even, which is infinity
    [1e6, 0x7c00],
    [-1e6, 0xfc00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -14 * (1023 / 1024), 0x03ff], // largest subnormal
    [2 ** -14 * (1 - 2 ** -12), 0x0400], // rounds up out of the subnormals
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // halfway to the smallest subnormal: ties to even (zero)
    [3 * 2 ** -25, 0x0002], // halfway between 1 and 2 subnormal steps: to even (2)
    [2 ** -25 * (1 + 2 ** -23), 0x0001], // just above halfway rounds up
    [-(2 ** -26), 0x8000], // underflows to signed zero
    [1e-10, 0x0000],
    [1 + 2 ** -11, 0x3c00], // tie between 0x3c00 and 0x3c01: even
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 0x3c01 and 0x3c02: even
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // above the tie
    [0.1, 0x2e66],
    [3.140625, 0x4248],
  ])('f32ToF16(%s) = %s', (x, bits) => {
    expect(f32ToF16(x)).toBe(bits);
  });

  it('maps NaN to a NaN half and back', () => {
    const h = f32ToF16(NaN);
    expect(h & 0x7c00).toBe(0x7c00);
    expect(h & 0x03ff).not.toBe(0);
    expect(Number.isNaN(f16ToF32(h))).toBe(true);
    expect(Number.isNaN(f16ToF32(0x7e00))).toBe(true);
    expect(Number.isNaN(f16ToF32(0xfc01))).toBe(true);
  });

  it('decodes special halves', () => {
    expect(f16ToF32(0x7c00)).toBe(Infinity);
    expect(f16ToF32(0xfc00)).toBe(-Infinity);
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x3555)).toBeCloseTo(0.33325195, 8);
  });

  it('round-trips every non-NaN half exactly', () => {
    let bad = 0;
    for (let h = 0; h < 0x10000; h++) {
      const x = f16ToF32(h);
      if (Number.isNaN(x)) continue;
      if (f32ToF16(x) !== h) bad++;
    }
    expect(bad).toBe(0);
  });

  it('rounds every midpoint between adjacent halves to the even one', () => {
    const wrong: number[] = [];
    for (let h = 0; h < 0x7bff; h++) {
      const mid = (f16ToF32(h) + f16ToF32(h + 1)) / 2; // exact in float32
      if (f32ToF16(mid) !== (h & 1 ? h + 1 : h)) wrong.push(h);
    }
    expect(wrong).toEqual([]);
  });
});

describe('bf16 conversion', () => {
  it('rounds to nearest even and round-trips', () => {
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(f32ToBf16(-2)).toBe(0xc000);
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie to even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie to even (upwards)
    expect(f32ToBf16(Infinity)).toBe(0x7f80);
    expect(Number.isNaN(bf16ToF32(f32ToBf16(NaN)))).toBe(true);
    for (let h = 0; h < 0x7f80; h += 97) expect(f32ToBf16(bf16ToF32(h))).toBe(h);
  });
});

describe('ggml type table', () => {
  it('knows block sizes of the whole enum', () => {
    expect(ggmlTypeInfo(GGMLType.F32)).toEqual({ name: 'F32', blockSize: 1, typeSize: 4 });
    expect(ggmlTypeInfo(GGMLType.Q8_0)).toEqual({ name: 'Q8_0', blockSize: 32, typeSize: 34 });
    expect(ggmlTypeInfo(GGMLType.Q4_0)).toEqual({ name: 'Q4_0', blockSize: 32, typeSize: 18 });
    expect(ggmlTypeInfo(GGMLType.Q4_K)).toEqual({ name: 'Q4_K', blockSize: 256, typeSize: 144 });
    expect(ggmlTypeInfo(GGMLType.Q6_K)).toEqual({ name: 'Q6_K', blockSize: 256, typeSize: 210 });
    expect(ggmlTypeInfo(GGMLType.IQ4_XS)).toEqual({ name: 'IQ4_XS', blockSize: 256, typeSize: 136 });
    expect(ggmlTypeInfo(GGMLType.BF16)).toEqual({ name: 'BF16', blockSize: 1, typeSize: 2 });
    expect(ggmlTypeInfo(GGMLType.TQ2_0)).toEqual({ name: 'TQ2_0', blockSize: 256, typeSize: 66 });
    for (const id of Object.values(GGMLType)) {
      const { blockSize, typeSize } = ggmlTypeInfo(id);
      expect(blockSize).toBeGreaterThan(0);
      expect(typeSize).toBeGreaterThan(0);
    }
    for (const id of [4, 5, 31, 32, 33, 99, -1]) expect(codeOf(() => ggmlTypeInfo(id))).toBe('bad-type');
  });

  it('computes tensor byte lengths and rejects partial blocks', () => {
    expect(tensorByteLength(GGMLType.F16, 10)).toBe(20);
    expect(tensorByteLength(GGMLType.Q8_0, 64)).toBe(68);
    expect(tensorByteLength(GGMLType.Q4_K, 512)).toBe(288);
    expect(codeOf(() => tensorByteLength(GGMLType.Q4_0, 48))).toBe('bad-shape');
  });
});

describe('Q8_0', () => {
  it('encodes a hand-built block exactly', () => {
    // amax 63.5 gives d = 0.5 exactly, so every x/d is an integer.
    const x = new Float32Array(32).map((_, j) => (j - 16) * 0.5);
    x[31] = 63.5;
    const q = quantize(GGMLType.Q8_0, x);
    expect(q.length).toBe(34);
    expect([q[0], q[1]]).toEqual([0x00, 0x38]); // f16 0.5
    const ints = new Int8Array(q.buffer, 2, 32);
    for (let j = 0; j < 31; j++) expect(ints[j]).toBe(j - 16);
    expect(ints[31]).toBe(127);
    expect(Array.from(dequantize(GGMLType.Q8_0, q, 32))).toEqual(Array.from(x));
  });

  it('rounds halves away from zero like roundf', () => {
    const x = new Float32Array(32);
    x[0] = 127; // d = 1
    x[1] = 2.5;
    x[2] = -2.5;
    x[3] = 0.5;
    x[4] = -0.5;
    const ints = new Int8Array(quantize(GGMLType.Q8_0, x).buffer, 2, 32);
    expect(Array.from(ints.slice(0, 5))).toEqual([127, 3, -3, 1, -1]);
  });

  it('encodes an all-zero block as d = 0', () => {
    const q = quantize(GGMLType.Q8_0, new Float32Array(64));
    expect(Array.from(q)).toEqual(new Array(68).fill(0));
    expect(Array.from(dequantize(GGMLType.Q8_0, q, 64))).toEqual(new Array(64).fill(0));
  });

  it('round-trips random data within half a step plus the f16 scale error', () => {
    const n = 32 * 40;
    const x = randomF32(n, 7, -3, 3);
    const y = dequantize(GGMLType.Q8_0, quantize(GGMLType.Q8_0, x), n);
    for (let b = 0; b < n / 32; b++) {
      const blk = x.subarray(b * 32, b * 32 + 32);
      const d = Math.max(...Array.from(blk, Math.abs)) / 127;
      for (let j = 0; j < 32; j++) expect(Math.abs(y[b * 32 + j] - blk[j])).toBeLessThanOrEqual(d * (0.5 + 127 * 2 ** -11) + 1e-7);
    }
  });
});

describe('Q4_0', () => {
  it('encodes a hand-built block exactly (negative extreme, d = 1)', () => {
    // Largest magnitude is -8, so d = -8 / -8 = 1 and q = x + 8.
    const x = new Float32Array(32).map((_, j) => (j % 16) - 8);
    const q = quantize(GGMLType.Q4_0, x);
    expect(q.length).toBe(18);
    expect([q[0], q[1]]).toEqual([0x00, 0x3c]); // f16 1.0
    for (let j = 0; j < 16; j++) expect(q[2 + j]).toBe(j | (j << 4));
    expect(Array.from(dequantize(GGMLType.Q4_0, q, 32))).toEqual(Array.from(x));
  });

  it('encodes a positive extreme with d = -max/8 and clamps at 15', () => {
    const x = new Float32Array(32);
    x[0] = 8; // d = -1: q = trunc(-x + 8.5)
    x[1] = -8; // -8 / -1 + 8.5 = 16.5 -> 16, clamped to 15
    x[2] = 1.5; // trunc(7) = 7
    x[16] = -7; // trunc(15.5) = 15
    x[17] = 3; // trunc(5.5) = 5
    const q = quantize(GGMLType.Q4_0, x);
    expect([q[0], q[1]]).toEqual([0x00, 0xbc]); // f16 -1.0
    expect(q[2]).toBe(0 | (15 << 4));
    expect(q[3]).toBe(15 | (5 << 4));
    expect(q[4]).toBe(7 | (8 << 4));
    const y = dequantize(GGMLType.Q4_0, q, 32);
    expect([y[0], y[1], y[2], y[16], y[17]]).toEqual([8, -7, 1, -7, 3]);
  });

  it('round-trips random data within one step plus the f16 scale error', () => {
    const n = 32 * 40;
    const x = randomF32(n, 11, -2, 2);
    const y = dequantize(GGMLType.Q4_0, quantize(GGMLType.Q4_0, x), n);
    for (let b = 0; b < n / 32; b++) {
      const blk = x.subarray(b * 32, b * 32 + 32);
      const d = Math.max(...Array.from(blk, Math.abs)) / 8;
      for (let j = 0; j < 32; j++) expect(Math.abs(y[b * 32 + j] - blk[j])).toBeLessThanOrEqual(d * (1 + 8 * 2 ** -11) + 1e-7);
    }
  });
});

describe('plain formats and errors', () => {
  it('round-trips F32 exactly and F16/BF16 by rounding', () => {
    const x = randomF32(100, 3, -100, 100);
    expect(dequantize(GGMLType.F32, quantize(GGMLType.F32, x), 100)).toEqual(x);
    const h = dequantize(GGMLType.F16, quantize(GGMLType.F16, x), 100);
    const b = dequantize(GGMLType.BF16, quantize(GGMLType.BF16, x), 100);
    for (let i = 0; i < 100; i++) {
      expect(h[i]).toBe(f16ToF32(f32ToF16(x[i])));
      expect(Math.abs(h[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -11);
      expect(Math.abs(b[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -8);
    }
  });

  it('decodes from unaligned views', () => {
    const x = randomF32(64, 5);
    const raw = quantize(GGMLType.F32, x);
    const shifted = new Uint8Array(raw.length + 1);
    shifted.set(raw, 1);
    expect(dequantize(GGMLType.F32, shifted.subarray(1), 64)).toEqual(x);
    const q8 = quantize(GGMLType.Q8_0, x);
    const q8s = new Uint8Array(q8.length + 3);
    q8s.set(q8, 3);
    expect(dequantize(GGMLType.Q8_0, q8s.subarray(3), 64)).toEqual(dequantize(GGMLType.Q8_0, q8, 64));
  });

  it('rejects short input, partial blocks and types it cannot compute', () => {
    expect(codeOf(() => dequantize(GGMLType.Q8_0, new Uint8Array(33), 32))).toBe('truncated');
    expect(codeOf(() => quantize(GGMLType.Q4_0, new Float32Array(31)))).toBe('bad-shape');
    expect(codeOf(() => quantize(GGMLType.Q2_K, new Float32Array(256)))).toBe('unsupported-type');
    expect(codeOf(() => dequantize(GGMLType.IQ4_XS, new Uint8Array(136), 256))).toBe('unsupported-type');
  });
});
