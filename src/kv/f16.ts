// IEEE 754 half-precision conversions in plain JS (Node 20 has neither Float16Array nor
// Math.f16round). They run over megabytes of KV rows, so both work on bit patterns through
// Uint32Array views: no float arithmetic, so no double rounding and no NaN canonicalization.
//
// Layout: WGSL's pack2x16float puts element 2i in the low half of u32 word i and element 2i+1 in
// the high half. On a little-endian host (every platform WebGPU runs on) that buffer read as a
// Uint16Array is exactly the halves in element order, so the Uint16Array here is the GPU layout.
import { InvalidRequestError } from '../errors.ts';

/** The f32 bit patterns of a Float32Array, without copying. */
function bitsOf(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

function checkLength(what: string, dst: ArrayLike<number>, n: number): void {
  if (dst.length < n) throw new InvalidRequestError('bad-argument', `${what}: destination holds ${dst.length} values, the source ${n}`);
}

/**
 * f32 → f16 bit patterns, rounding to nearest even. Values from 65520 up become ±Inf, values
 * below 2^-25 become ±0, subnormal halves are produced exactly; a NaN stays a NaN and keeps the
 * top 10 bits of its payload (quieted only when those are all zero, so it cannot become Inf).
 */
export function f32ToF16Bits(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  checkLength('f32ToF16Bits', dst, src.length);
  const bits = bitsOf(src);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const x = bits[i];
    const sign = (x >>> 16) & 0x8000;
    const a = x & 0x7fffffff;
    let h: number;
    if (a >= 0x38800000) {
      if (a >= 0x47800000) {
        // |x| >= 2^16 (or Inf/NaN): past the largest half even before rounding.
        if (a > 0x7f800000) {
          const payload = (a >>> 13) & 0x3ff;
          h = 0x7c00 | (payload === 0 ? 0x200 : payload);
        } else {
          h = 0x7c00;
        }
      } else {
        // Normal half: rebias the exponent, add just under half an ulp plus the kept LSB (ties to
        // even); a carry out of the mantissa bumps the exponent, up to Inf at 65520.
        h = (a - 0x38000000 + 0xfff + ((a >>> 13) & 1)) >>> 13;
      }
    } else {
      // Subnormal half (or zero): the value is m * 2^(e-150) = k * 2^-24 with k = m >> (126 - e).
      const e = a >>> 23;
      const shift = 126 - e;
      if (shift > 24) {
        h = 0; // below 2^-25: rounds to zero (2^-25 itself is the tie, handled below)
      } else {
        const m = (a & 0x7fffff) | 0x800000;
        const k = m >>> shift;
        const rem = m & ((1 << shift) - 1);
        const half = 1 << (shift - 1);
        // k may reach 0x400, which is the smallest normal half: the encoding carries over by itself.
        h = rem > half || (rem === half && (k & 1) === 1) ? k + 1 : k;
      }
    }
    dst[i] = h | sign;
  }
  return dst;
}

let f16Table: Uint32Array | undefined;

/** f32 bit pattern of every half, built once (256 KiB): decoding is then one load per value. */
function halfTable(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const e = (h >>> 10) & 0x1f;
    let m = h & 0x3ff;
    let bits: number;
    if (e === 0x1f) {
      bits = 0x7f800000 | (m << 13); // Inf, or NaN with its payload kept
    } else if (e !== 0) {
      bits = ((e + 112) << 23) | (m << 13);
    } else if (m === 0) {
      bits = 0;
    } else {
      // Subnormal half: normalize the mantissa into an f32 exponent.
      let exp = 113;
      while ((m & 0x400) === 0) {
        m <<= 1;
        exp--;
      }
      bits = (exp << 23) | ((m & 0x3ff) << 13);
    }
    t[h] = (sign | bits) >>> 0;
  }
  f16Table = t;
  return t;
}

/** f16 bit patterns → f32, exactly (every half is representable); NaN payloads are kept. */
export function f16BitsToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  checkLength('f16BitsToF32', dst, src.length);
  const table = halfTable();
  const out = bitsOf(dst);
  const n = src.length;
  for (let i = 0; i < n; i++) out[i] = table[src[i]];
  return dst;
}
