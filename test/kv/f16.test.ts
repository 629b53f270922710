import { xorshift32 } from '../../src/random.ts';
import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../src/errors.ts';
import { f16BitsToF32, f32ToF16Bits } from '../../src/kv/f16.ts';

// Slow references written from the definition of binary16 (f64 arithmetic, no bit tricks).

function refHalfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * m * 2 ** -24;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

function refNumberToHalf(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  if (a === 0) return sign;
  const e = Math.max(Math.floor(Math.log2(a)), -14);
  // log2 can be off by one near powers of two; settle the exponent exactly.
  let exp = e;
  if (exp > -14 && a < 2 ** exp) exp--;
  if (a >= 2 ** (exp + 1)) exp++;
  const ulp = 2 ** (exp - 10);
  const q = a / ulp; // exact: a power-of-two division
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  const v = r * ulp;
  if (v >= 65520) return sign | 0x7c00;
  if (v < 2 ** -14) return sign | (v / 2 ** -24);
  let ve = Math.floor(Math.log2(v));
  if (v < 2 ** ve) ve--;
  if (v >= 2 ** (ve + 1)) ve++;
  const mant = v / 2 ** ve - 1;
  return sign | ((ve + 15) << 10) | Math.round(mant * 1024);
}

function f32FromBits(bits: number): number {
  return new Float32Array(new Uint32Array([bits]).buffer)[0];
}

/** Converts f32 bit patterns (not numbers, so NaN payloads survive) to halves. */
function halvesOfBits(bits: Uint32Array): Uint16Array {
  return f32ToF16Bits(new Float32Array(bits.buffer, bits.byteOffset, bits.length));
}

/** Inputs (not NaN) whose half differs from the reference, as readable strings; at most 10. */
function mismatches(bits: Uint32Array, got: Uint16Array): string[] {
  const out: string[] = [];
  for (let i = 0; i < bits.length && out.length < 10; i++) {
    const x = f32FromBits(bits[i]);
    if (Number.isNaN(x)) continue;
    const want = refNumberToHalf(x);
    if (got[i] !== want) out.push(`f32 ${bits[i].toString(16)} (${x}): ${got[i].toString(16)}, want ${want.toString(16)}`);
  }
  return out;
}

describe('f16', () => {
  it('widens every half exactly and narrows it back to the same bits', () => {
    const all = new Uint16Array(65536);
    for (let h = 0; h < 65536; h++) all[h] = h;
    const wide = f16BitsToF32(all);
    const back = f32ToF16Bits(wide);
    const wrong: string[] = [];
    for (let h = 0; h < 65536; h++) {
      const ref = refHalfToNumber(h);
      const widened = Number.isNaN(ref) ? Number.isNaN(wide[h]) : Object.is(wide[h], ref);
      const nan = (back[h] & 0x7c00) === 0x7c00 && (back[h] & 0x3ff) !== 0;
      // Payloads are kept too, so even NaNs come back bit for bit.
      if (!widened || back[h] !== h || (Number.isNaN(ref) && !nan)) wrong.push(`${h.toString(16)}: ${wide[h]} → ${back[h].toString(16)}`);
    }
    expect(wrong).toEqual([]);
  });

  it('rounds halfway cases to even, and the values just beside them to nearest', () => {
    const cases: number[] = [];
    for (let h = 0; h < 0x7bff; h++) {
      // The midpoint of two neighbouring positive halves needs 12 significant bits: exact in f32.
      const mid = (refHalfToNumber(h) + refHalfToNumber(h + 1)) / 2;
      const bits = new Uint32Array(new Float32Array([mid]).buffer)[0];
      cases.push(bits, bits - 1, bits + 1, (bits | 0x80000000) >>> 0);
    }
    const bits = Uint32Array.from(cases);
    const got = halvesOfBits(bits);
    expect(mismatches(bits, got)).toEqual([]);
    // Spot checks of the rule itself: 1 + 2^-11 is the tie between 1 and 1 + 2^-10 → 1 (even).
    expect(f32ToF16Bits(new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11]))).toEqual(new Uint16Array([0x3c00, 0x3c02]));
  });

  it('produces subnormals and rounds the smallest values to zero or the least subnormal', () => {
    const xs = [2 ** -24, 2 ** -25, 2 ** -25 * (1 + 2 ** -20), 3 * 2 ** -25, 5 * 2 ** -25, 1023 * 2 ** -24, 1023.5 * 2 ** -24, 2 ** -14, 2 ** -26, 1e-40, -(2 ** -24)];
    const want = [0x0001, 0x0000, 0x0001, 0x0002, 0x0002, 0x03ff, 0x0400, 0x0400, 0x0000, 0x0000, 0x8001];
    expect(Array.from(f32ToF16Bits(new Float32Array(xs)))).toEqual(want);
    for (let i = 0; i < xs.length; i++) expect(want[i]).toBe(refNumberToHalf(Math.fround(xs[i])));
  });

  it('overflows to infinity from 65520 up and keeps signed zeros, infinities and NaN', () => {
    const xs = [65504, 65519.99, 65520, 1e10, 3.4e38, -65520, Infinity, -Infinity, 0, -0, NaN];
    const want = [0x7bff, 0x7bff, 0x7c00, 0x7c00, 0x7c00, 0xfc00, 0x7c00, 0xfc00, 0x0000, 0x8000];
    const got = f32ToF16Bits(new Float32Array(xs));
    expect(Array.from(got.subarray(0, want.length))).toEqual(want);
    expect(got[10] & 0x7c00).toBe(0x7c00);
    expect(got[10] & 0x3ff).not.toBe(0);
  });

  it('matches the reference on random f32 bit patterns of every exponent', () => {
    const next = xorshift32(0x2545f491);
    const bits = new Uint32Array(300_000);
    for (let i = 0; i < bits.length; i++) {
      const s = next();
      // Bias the exponents towards the half range (2^-28 .. 2^17) so every branch is exercised.
      const e = i % 2 === 0 ? 99 + (((s >>> 0) % 46) | 0) : (s >>> 23) & 0xff;
      bits[i] = ((s & 0x807fffff) | (e << 23)) >>> 0;
    }
    const got = halvesOfBits(bits);
    expect(mismatches(bits, got)).toEqual([]);
  });

  it('writes into a given destination and refuses one that is too short', () => {
    const dst = new Uint16Array(4);
    expect(f32ToF16Bits(new Float32Array([1, -2, 0.5]), dst)).toBe(dst);
    expect(Array.from(dst)).toEqual([0x3c00, 0xc000, 0x3800, 0]);
    const wide = new Float32Array(3);
    expect(f16BitsToF32(dst.subarray(0, 3), wide)).toBe(wide);
    expect(Array.from(wide)).toEqual([1, -2, 0.5]);
    expect(() => f32ToF16Bits(new Float32Array(3), new Uint16Array(2))).toThrow(InvalidRequestError);
    expect(() => f16BitsToF32(new Uint16Array(3), new Float32Array(2))).toThrow(InvalidRequestError);
  });
});
