// ggml tensor types: the full type-id table (so any GGUF can be indexed), and the block formats
// the runtime computes with (F32, F16, BF16 read-only, Q8_0, Q4_0), bit-exact with ggml's
// reference quantizers (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref`).
import { GGUFError } from '../errors.ts';

/** ggml type ids as stored in a GGUF tensor index. Ids 4, 5 and 31..33 were retired upstream. */
export const GGMLType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
} as const;
export type GGMLType = (typeof GGMLType)[keyof typeof GGMLType];

export interface GGMLTypeInfo {
  readonly name: string;
  /** Elements per block (1 for plain scalar types). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
}

// [blockSize, typeSize] per type, from ggml's block struct sizes.
const TYPE_SIZES: Record<GGMLType, readonly [number, number]> = {
  [GGMLType.F32]: [1, 4],
  [GGMLType.F16]: [1, 2],
  [GGMLType.Q4_0]: [32, 18], // f16 d + 16 bytes of nibbles
  [GGMLType.Q4_1]: [32, 20], // f16 d, m + 16
  [GGMLType.Q5_0]: [32, 22], // f16 d + 4 qh + 16
  [GGMLType.Q5_1]: [32, 24], // f16 d, m + 4 qh + 16
  [GGMLType.Q8_0]: [32, 34], // f16 d + 32 int8
  [GGMLType.Q8_1]: [32, 36], // f16 d, s + 32 int8
  [GGMLType.Q2_K]: [256, 84],
  [GGMLType.Q3_K]: [256, 110],
  [GGMLType.Q4_K]: [256, 144],
  [GGMLType.Q5_K]: [256, 176],
  [GGMLType.Q6_K]: [256, 210],
  [GGMLType.Q8_K]: [256, 292], // f32 d + 256 int8 + 16 i16 sums
  [GGMLType.IQ2_XXS]: [256, 66],
  [GGMLType.IQ2_XS]: [256, 74],
  [GGMLType.IQ3_XXS]: [256, 98],
  [GGMLType.IQ1_S]: [256, 50],
  [GGMLType.IQ4_NL]: [32, 18],
  [GGMLType.IQ3_S]: [256, 110],
  [GGMLType.IQ2_S]: [256, 82],
  [GGMLType.IQ4_XS]: [256, 136],
  [GGMLType.I8]: [1, 1],
  [GGMLType.I16]: [1, 2],
  [GGMLType.I32]: [1, 4],
  [GGMLType.I64]: [1, 8],
  [GGMLType.F64]: [1, 8],
  [GGMLType.IQ1_M]: [256, 56],
  [GGMLType.BF16]: [1, 2],
  [GGMLType.TQ1_0]: [256, 54],
  [GGMLType.TQ2_0]: [256, 66],
  [GGMLType.MXFP4]: [32, 17], // e8m0 scale + 16 bytes of fp4 nibbles
};

const TYPE_NAMES = new Map<number, string>(Object.entries(GGMLType).map(([name, id]) => [id, name]));

/** True when `id` is a ggml type this module knows the block layout of. */
export function isKnownGGMLType(id: number): id is GGMLType {
  return TYPE_NAMES.has(id);
}

/** Name of a type id, or `type#<id>` for an unknown one (for messages). */
export function ggmlTypeName(id: number): string {
  return TYPE_NAMES.get(id) ?? `type#${id}`;
}

export function ggmlTypeInfo(type: number): GGMLTypeInfo {
  const name = TYPE_NAMES.get(type);
  if (name === undefined) {
    throw new GGUFError('bad-type', `unknown ggml tensor type id ${type}; the file may come from a newer ggml than this runtime knows`, { type });
  }
  const [blockSize, typeSize] = TYPE_SIZES[type as GGMLType];
  return { name, blockSize, typeSize };
}

/** Bytes taken by `nElements` values of `type`; `nElements` must be a whole number of blocks. */
export function tensorByteLength(type: number, nElements: number): number {
  const { name, blockSize, typeSize } = ggmlTypeInfo(type);
  if (!Number.isSafeInteger(nElements) || nElements < 0 || nElements % blockSize !== 0) {
    throw new GGUFError('bad-shape', `${nElements} elements is not a whole number of ${name} blocks of ${blockSize}`, { type: name, nElements });
  }
  return (nElements / blockSize) * typeSize;
}

// ---------------------------------------------------------------------------------------------
// Half precision

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE binary16 bits → number (exact: every half is a float32). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero or subnormal
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** number → IEEE binary16 bits, via float32, rounding to nearest even; NaN stays NaN. */
export function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00; // too large even before rounding
  if (e <= 0) {
    // Result is a half subnormal: value = m * 2^-24, m = (1.mant) >> shift.
    const shift = 14 - e;
    if (shift > 24) return sign; // below half the smallest subnormal
    const full = mant | 0x800000;
    let m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && m & 1)) m++;
    return sign | m; // m may carry into the smallest normal, which is the right encoding
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry may round up to infinity, as it should
  return sign | h;
}

/** bfloat16 bits → number. */
export function bf16ToF32(h: number): number {
  u32Scratch[0] = (h & 0xffff) << 16;
  return f32Scratch[0];
}

/** number → bfloat16 bits, rounding to nearest even; NaN stays NaN. */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return (bits >>> 16) | 0x40;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

// Every half decoded once: F16 tensors are dequantized by table lookup. (65536,) f32
let f16Table: Float32Array | undefined;
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

// ---------------------------------------------------------------------------------------------
// Block formats

const QK = 32; // elements per Q8_0 / Q4_0 block
const Q8_0_BYTES = 34;
const Q4_0_BYTES = 18;

/** ggml's roundf: halves away from zero (Math.round sends -2.5 to -2). */
function roundAway(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

function checkBlocks(name: string, n: number): void {
  if (n % QK !== 0) throw new GGUFError('bad-shape', `${name} needs a multiple of ${QK} elements, got ${n}`, { type: name, nElements: n });
}

function checkInput(type: number, bytes: Uint8Array, nElements: number): void {
  const need = tensorByteLength(type, nElements);
  if (bytes.byteLength < need) {
    throw new GGUFError('truncated', `${ggmlTypeName(type)} data for ${nElements} elements needs ${need} bytes, got ${bytes.byteLength}`, {
      type: ggmlTypeName(type),
      need,
      got: bytes.byteLength,
    });
  }
}

/** Decodes `nElements` values of `type` from `bytes` (ggml block layout, little-endian). */
export function dequantize(type: number, bytes: Uint8Array, nElements: number): Float32Array {
  checkInput(type, bytes, nElements);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(nElements); // (nElements,)
  switch (type) {
    case GGMLType.F32: {
      if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) {
        out.set(new Float32Array(bytes.buffer, bytes.byteOffset, nElements));
      } else {
        for (let i = 0; i < nElements; i++) out[i] = view.getFloat32(i * 4, true);
      }
      return out;
    }
    case GGMLType.F16: {
      const table = halfTable();
      for (let i = 0; i < nElements; i++) out[i] = table[view.getUint16(i * 2, true)];
      return out;
    }
    case GGMLType.BF16: {
      for (let i = 0; i < nElements; i++) out[i] = bf16ToF32(view.getUint16(i * 2, true));
      return out;
    }
    case GGMLType.Q8_0: {
      // block: f16 d, int8 q[32]; x = q * d
      const table = halfTable();
      for (let b = 0; b < nElements / QK; b++) {
        const base = b * Q8_0_BYTES;
        const d = table[view.getUint16(base, true)];
        for (let j = 0; j < QK; j++) out[b * QK + j] = view.getInt8(base + 2 + j) * d;
      }
      return out;
    }
    case GGMLType.Q4_0: {
      // block: f16 d, u8 qs[16]; byte j holds element j (low nibble) and j+16 (high); x = (q - 8) * d
      const table = halfTable();
      for (let b = 0; b < nElements / QK; b++) {
        const base = b * Q4_0_BYTES;
        const d = table[view.getUint16(base, true)];
        for (let j = 0; j < QK / 2; j++) {
          const byte = bytes[base + 2 + j];
          out[b * QK + j] = ((byte & 0x0f) - 8) * d;
          out[b * QK + j + QK / 2] = ((byte >>> 4) - 8) * d;
        }
      }
      return out;
    }
    default:
      throw new GGUFError('unsupported-type', `cannot decode ${ggmlTypeName(type)} tensors; supported: F32, F16, BF16, Q8_0, Q4_0`, {
        type: ggmlTypeName(type),
      });
  }
}

/** Encodes `values` as `type` in ggml's block layout (ggml's reference rounding for Q8_0/Q4_0). */
export function quantize(type: number, values: Float32Array): Uint8Array {
  const n = values.length;
  const out = new Uint8Array(tensorByteLength(type, n));
  const view = new DataView(out.buffer);
  const fr = Math.fround;
  switch (type) {
    case GGMLType.F32: {
      for (let i = 0; i < n; i++) view.setFloat32(i * 4, values[i], true);
      return out;
    }
    case GGMLType.F16: {
      for (let i = 0; i < n; i++) view.setUint16(i * 2, f32ToF16(values[i]), true);
      return out;
    }
    case GGMLType.BF16: {
      for (let i = 0; i < n; i++) view.setUint16(i * 2, f32ToBf16(values[i]), true);
      return out;
    }
    case GGMLType.Q8_0: {
      checkBlocks('Q8_0', n);
      for (let b = 0; b < n / QK; b++) {
        const x0 = b * QK;
        let amax = 0;
        for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(values[x0 + j]));
        // Float32 arithmetic throughout, as in ggml, so the bytes match llama.cpp's quantizer.
        const d = fr(amax / 127);
        const id = d ? fr(1 / d) : 0;
        const base = b * Q8_0_BYTES;
        view.setUint16(base, f32ToF16(d), true);
        for (let j = 0; j < QK; j++) view.setInt8(base + 2 + j, roundAway(fr(values[x0 + j] * id)));
      }
      return out;
    }
    case GGMLType.Q4_0: {
      checkBlocks('Q4_0', n);
      for (let b = 0; b < n / QK; b++) {
        const x0 = b * QK;
        // The signed value of largest magnitude maps to -8, so the full range [-8, 7] is used.
        let amax = 0;
        let max = 0;
        for (let j = 0; j < QK; j++) {
          const v = values[x0 + j];
          if (amax < Math.abs(v)) {
            amax = Math.abs(v);
            max = v;
          }
        }
        const d = fr(max / -8);
        const id = d ? fr(1 / d) : 0;
        const base = b * Q4_0_BYTES;
        view.setUint16(base, f32ToF16(d), true);
        for (let j = 0; j < QK / 2; j++) {
          const lo = Math.min(15, Math.trunc(fr(fr(values[x0 + j] * id) + 8.5)));
          const hi = Math.min(15, Math.trunc(fr(fr(values[x0 + j + QK / 2] * id) + 8.5)));
          out[base + 2 + j] = lo | (hi << 4);
        }
      }
      return out;
    }
    default:
      throw new GGUFError('unsupported-type', `cannot encode ${ggmlTypeName(type)} tensors; supported: F32, F16, BF16, Q8_0, Q4_0`, {
        type: ggmlTypeName(type),
      });
  }
}
