// Exact f32 <-> IEEE binary16 conversion for the references of kernels that store f16 (the f16 KV
// pools): round to nearest, ties to even, subnormal halves kept, overflow to infinity. A half pool
// is a Uint16Array of these bit patterns, two per u32 word with element 2i in the low half.

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** The binary16 bit pattern nearest to Math.fround(x) (ties to even). */
export function f32ToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | (abs > 0x7f800000 ? 0x7e00 : 0x7c00); // NaN, infinity
  if (abs >= 0x477ff000) return sign | 0x7c00; // >= 65520 rounds past the largest half, 65504
  if (abs < 0x38800000) {
    // Below 2^-14: a subnormal half, in units of 2^-24 (1024 units is the smallest normal, encoded alike).
    return sign | roundTiesEven(Math.abs(f32Scratch[0]) * 2 ** 24);
  }
  // Normal: rebias the exponent (127 -> 15), keep 10 of 23 mantissa bits; a carry rolls into the exponent.
  let h = (((abs >>> 23) - 112) << 10) | ((abs >>> 13) & 0x3ff);
  const rest = abs & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

/** The value of a binary16 bit pattern. */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** x rounded to the nearest half and back: what an f16 pool returns for a stored f32 value. */
export function roundF16(x: number): number {
  return f16BitsToF32(f32ToF16Bits(x));
}

/** Every value rounded through f16 (a new array). */
export function roundF16Array(a: Float32Array): Float32Array {
  return a.map(roundF16);
}

/** Packs an even number of values into words of two halves, element 2i in the low half of word i. */
export function packF16Words(a: Float32Array): Uint32Array {
  if (a.length % 2 !== 0) throw new RangeError(`packF16Words needs an even number of values, got ${a.length}`);
  const out = new Uint32Array(a.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = (f32ToF16Bits(a[2 * i]) | (f32ToF16Bits(a[2 * i + 1]) << 16)) >>> 0;
  return out;
}

/** The inverse of packF16Words: 2*words.length values. */
export function unpackF16Words(words: Uint32Array): Float32Array {
  const out = new Float32Array(words.length * 2);
  for (let i = 0; i < words.length; i++) {
    out[2 * i] = f16BitsToF32(words[i] & 0xffff);
    out[2 * i + 1] = f16BitsToF32(words[i] >>> 16);
  }
  return out;
}

function roundTiesEven(y: number): number {
  const f = Math.floor(y);
  const d = y - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}
