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
import { nearestInt } from '../../src/gguf/quant-search.ts';
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

// Hand-built blocks decoded by the layouts as ggml-common.h describes them, written here apart
// from quant.ts's decoders; ggml itself checks both in quant-ggml.test.ts.
describe('Q4_1, Q5_0, Q5_1 layouts', () => {
  const block = (...parts: (number[] | Uint8Array)[]) => Uint8Array.from(parts.flatMap((p) => Array.from(p)));
  const f16 = (x: number) => [f32ToF16(x) & 0xff, f32ToF16(x) >> 8];
  const u32 = (x: number) => [x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24];

  it('Q4_1: x = q·d + m, element j in the low nibble of byte j, j+16 in its high nibble', () => {
    const qs = Array.from({ length: 16 }, (_, j) => j | ((15 - j) << 4));
    const bytes = block(f16(0.5), f16(-1), qs);
    const want = Array.from({ length: 32 }, (_, i) => (i < 16 ? i : 31 - i) * 0.5 - 1);
    expect(Array.from(dequantize(GGMLType.Q4_1, bytes, 32))).toEqual(want);
    // min -1, max 6.5: d = 7.5/15 = 0.5 exactly, so the values quantize back to the same block.
    expect(Array.from(quantize(GGMLType.Q4_1, new Float32Array(want)))).toEqual(Array.from(bytes));
  });

  it('Q5_0: x = (q - 16)·d, bit k of the little-endian qh is bit 4 of element k', () => {
    const qh = 0xa5a50f0f;
    const qs = Array.from({ length: 16 }, (_, j) => (j & 15) | (((j * 3) & 15) << 4));
    const bytes = block(f16(0.5), u32(qh), qs);
    const low = (k: number) => (k < 16 ? qs[k] & 15 : qs[k - 16] >> 4);
    const want = Array.from({ length: 32 }, (_, k) => (low(k) + 16 * ((qh >>> k) & 1) - 16) * 0.5);
    expect(Array.from(dequantize(GGMLType.Q5_0, bytes, 32))).toEqual(want);
  });

  it('Q5_1: x = q·d + m with q of 5 bits', () => {
    const qh = 0x0ff0f00f;
    const qs = Array.from({ length: 16 }, (_, j) => ((j * 5) & 15) | ((j & 15) << 4));
    const bytes = block(f16(0.25), f16(2), u32(qh), qs);
    const low = (k: number) => (k < 16 ? qs[k] & 15 : qs[k - 16] >> 4);
    const want = Array.from({ length: 32 }, (_, k) => (low(k) + 16 * ((qh >>> k) & 1)) * 0.25 + 2);
    expect(Array.from(dequantize(GGMLType.Q5_1, bytes, 32))).toEqual(want);
    // min 2, max 9.75: d = 7.75/31 = 0.25 exactly, so quantizing gives the block back.
    expect(Array.from(quantize(GGMLType.Q5_1, new Float32Array(want)))).toEqual(Array.from(bytes));
  });
});

describe('K-quant layouts', () => {
  // Eight 6-bit scales and mins, high bits set on some of the second four to exercise the packing.
  const sc = [1, 7, 20, 63, 33, 2, 48, 16];
  const mn = [0, 5, 63, 17, 40, 9, 1, 32];
  /** The 12 packed bytes: bytes 0-3 and 4-7 hold scale and min j (6 bits) under the top two bits of scale and min j+4; bytes 8-11 their low nibbles. */
  function packScales(): number[] {
    const out = new Array<number>(12).fill(0);
    for (let j = 0; j < 4; j++) {
      out[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
      out[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
      out[j + 8] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4);
    }
    return out;
  }
  const half = (x: number) => [f32ToF16(x) & 0xff, f32ToF16(x) >> 8];

  it('Q4_K: x = d·sc·q - dmin·m per sub-block of 32; each 32 bytes of qs hold two sub-blocks', () => {
    const q = (i: number) => ((i >> 5) * 7 + (i & 31) * 3) % 16; // quant of element i (sub-block i >> 5)
    const qs = new Array<number>(128);
    for (let i = 0; i < 256; i++) {
      const s = i >> 5;
      const at = 32 * (s >> 1) + (i & 31);
      qs[at] = s & 1 ? (qs[at] ?? 0) | (q(i) << 4) : q(i);
    }
    const bytes = Uint8Array.from([...half(0.5), ...half(0.25), ...packScales(), ...qs]);
    expect(bytes.length).toBe(144);
    const want = Array.from({ length: 256 }, (_, i) => 0.5 * sc[i >> 5] * q(i) - 0.25 * mn[i >> 5]);
    expect(Array.from(dequantize(GGMLType.Q4_K, bytes, 256))).toEqual(want);
  });

  it('Q5_K: as Q4_K with bit 4 of element 32s + l in bit s of qh[l]', () => {
    const q = (i: number) => ((i >> 5) * 7 + (i & 31) * 3) % 32;
    const qh = new Array<number>(32).fill(0);
    const qs = new Array<number>(128).fill(0);
    for (let i = 0; i < 256; i++) {
      const s = i >> 5;
      const l = i & 31;
      qh[l] |= (q(i) >> 4) << s;
      qs[32 * (s >> 1) + l] |= (q(i) & 15) << (4 * (s & 1));
    }
    const bytes = Uint8Array.from([...half(0.5), ...half(0.25), ...packScales(), ...qh, ...qs]);
    expect(bytes.length).toBe(176);
    const want = Array.from({ length: 256 }, (_, i) => 0.5 * sc[i >> 5] * q(i) - 0.25 * mn[i >> 5]);
    expect(Array.from(dequantize(GGMLType.Q5_K, bytes, 256))).toEqual(want);
  });

  it('Q6_K: x = d·sc·(q - 32) per sub-block of 16, with int8 scales and d at the end', () => {
    const scales = [1, -2, 3, -4, 5, -6, 7, -8, 127, -128, 10, -10, 64, -64, 0, 33];
    const q = (i: number) => (i * 5 + (i >> 7)) % 64;
    const ql = new Array<number>(128).fill(0);
    const qh = new Array<number>(64).fill(0);
    for (let i = 0; i < 256; i++) {
      // Half h of 128 values: value l + 32k has its low bits in nibble k >> 1 of ql[64h + l + 32(k & 1)], its high bits at 2k of qh[32h + l].
      const h = i >> 7;
      const k = (i & 127) >> 5;
      const l = i & 31;
      ql[64 * h + l + 32 * (k & 1)] |= (q(i) & 15) << (4 * (k >> 1));
      qh[32 * h + l] |= (q(i) >> 4) << (2 * k);
    }
    const bytes = Uint8Array.from([...ql, ...qh, ...scales.map((s) => s & 0xff), ...half(0.125)]);
    expect(bytes.length).toBe(210);
    const want = Array.from({ length: 256 }, (_, i) => 0.125 * scales[i >> 4] * (q(i) - 32));
    expect(Array.from(dequantize(GGMLType.Q6_K, bytes, 256))).toEqual(want);
  });
});

describe('every block format', () => {
  const FORMATS = [
    ['Q8_0', GGMLType.Q8_0],
    ['Q4_0', GGMLType.Q4_0],
    ['Q4_1', GGMLType.Q4_1],
    ['Q5_0', GGMLType.Q5_0],
    ['Q5_1', GGMLType.Q5_1],
    ['Q4_K', GGMLType.Q4_K],
    ['Q5_K', GGMLType.Q5_K],
    ['Q6_K', GGMLType.Q6_K],
  ] as const;

  it.each(FORMATS)('%s encodes zeros as blocks that decode to zeros', (_, type) => {
    const q = quantize(type, new Float32Array(512));
    expect(Array.from(dequantize(type, q, 512)).every((v) => v === 0)).toBe(true);
    const { typeSize } = ggmlTypeInfo(type);
    // Q4_0 and Q5_0 divide the signed extreme (0) by a negative count: d = -0, and q sits at the middle level.
    let first = new Array<number>(typeSize).fill(0);
    if (type === GGMLType.Q4_0) first = [0x00, 0x80, ...new Array<number>(16).fill(0x88)];
    if (type === GGMLType.Q5_0) first = [0x00, 0x80, 0xff, 0xff, 0xff, 0xff, ...new Array<number>(16).fill(0)];
    expect(Array.from(q.subarray(0, typeSize))).toEqual(first);
  });

  it('Q4_1 and Q5_1 keep a constant block as its f16-rounded min', () => {
    for (const type of [GGMLType.Q4_1, GGMLType.Q5_1]) {
      const y = dequantize(type, quantize(type, new Float32Array(64).fill(0.1)), 64);
      expect(new Set(y)).toEqual(new Set([f16ToF32(f32ToF16(0.1))]));
    }
  });

  // Uniform values on [-2, 2): per value, the error against the largest magnitude of its block
  // (32 values, or the 256 of a K-quant super-block); and the RMS error against the values' RMS.
  const x = randomF32(256 * 64, 21, -2, 2);
  const rmsOf = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((a, e) => a + e * e, 0) / v.length);
  const errors = (type: GGMLType) => {
    const y = dequantize(type, quantize(type, x), x.length);
    const block = ggmlTypeInfo(type).blockSize;
    let maxRel = 0;
    for (let b = 0; b < x.length / block; b++) {
      let amax = 0;
      for (let i = b * block; i < (b + 1) * block; i++) amax = Math.max(amax, Math.abs(x[i]));
      for (let i = b * block; i < (b + 1) * block; i++) maxRel = Math.max(maxRel, Math.abs(y[i] - x[i]) / amax);
    }
    return { maxRel, rms: rmsOf(y.map((v, i) => v - x[i])) / rmsOf(x) };
  };

  it.each([
    // [name, type, largest error / block amax, RMS error / RMS]. The first is one quantization step
    // (a block's range over its levels) plus the f16 rounding of its scales. Rounding uniform values
    // to a step leaves an RMS error of step/√12, which is the values' RMS over the number of steps
    // across their range: 10% above that for the 32-blocks; the K-quants' scale search must beat it.
    ['Q4_1', GGMLType.Q4_1, (2 / 15) * 0.5 + 2 ** -9, 1.1 / 15],
    ['Q5_0', GGMLType.Q5_0, 1 / 16 + 2 ** -9, 1.1 / 32],
    ['Q5_1', GGMLType.Q5_1, (2 / 31) * 0.5 + 2 ** -9, 1.1 / 31],
    ['Q4_K', GGMLType.Q4_K, 2 / 15, 1 / 15],
    ['Q5_K', GGMLType.Q5_K, 2 / 31, 1 / 31],
    ['Q6_K', GGMLType.Q6_K, 1 / 32, 1 / 64],
  ] as const)('%s round-trips uniform values within its step', (_, type, maxRel, rms) => {
    const e = errors(type);
    expect(e.maxRel).toBeLessThanOrEqual(maxRel);
    expect(e.rms).toBeLessThanOrEqual(rms);
  });

  it('more bits give smaller errors: Q4_0 > Q4_1 > Q5_0 > Q5_1 > Q8_0 and Q4_K > Q5_K > Q6_K', () => {
    const rms = (type: GGMLType) => errors(type).rms;
    expect(rms(GGMLType.Q4_0)).toBeGreaterThan(rms(GGMLType.Q4_1));
    expect(rms(GGMLType.Q4_1)).toBeGreaterThan(rms(GGMLType.Q5_0));
    expect(rms(GGMLType.Q5_0)).toBeGreaterThan(rms(GGMLType.Q5_1));
    expect(rms(GGMLType.Q5_1)).toBeGreaterThan(rms(GGMLType.Q8_0));
    expect(rms(GGMLType.Q4_K)).toBeGreaterThan(rms(GGMLType.Q5_K));
    expect(rms(GGMLType.Q5_K)).toBeGreaterThan(rms(GGMLType.Q6_K));
  });
});

describe('nearestInt (ggml nearest_int)', () => {
  it('rounds halves to even, like the f32 magic-number addition', () => {
    expect([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 7.49, 7.51, 0].map(nearestInt)).toEqual([0, 2, 2, 4, 0, -2, -2, 7, 8, 0]);
    expect(nearestInt(4194303)).toBe(4194303);
    expect(nearestInt(Math.fround(1 + 2 ** -23) / 2)).toBe(1); // just above 0.5
  });
});
