// ggml tensor types: the full type-id table (so any GGUF can be indexed), and the formats this
// runtime encodes and decodes (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K):
// `dequantize` is bit-identical with ggml's dequantize_row_*, `quantize` byte-identical with its
// reference quantizers (quantize_row_*_ref); test/gguf/quant-ggml.test.ts checks both against
// ggml's own library.
import { GGUFError } from '../errors.ts';
import { GROUP_MAX_EPS, makeQkx2Quants, makeQxQuants, nearestInt, type ScaleMin } from './quant-search.ts';

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

/**
 * IEEE binary16 bits → float32 bits, as ggml converts them: exact, and a NaN keeps its sign and
 * payload, made quiet. Bits, because a NaN read into a JS number may lose its payload.
 */
function f16ToF32Bits(h: number): number {
  if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) return (((h & 0x8000) << 16) | 0x7fc00000 | ((h & 0x3ff) << 13)) >>> 0;
  f32Scratch[0] = f16ToF32(h);
  return u32Scratch[0];
}

/** number → IEEE binary16 bits, via float32, rounding to nearest even; NaN becomes ggml's quiet NaN. */
export function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  return f32BitsToF16(u32Scratch[0]);
}

function f32BitsToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 : sign | 0x7c00;
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

/** number → bfloat16 bits, rounding to nearest even; NaN stays NaN (made quiet), as in ggml. */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  return f32BitsToBf16(u32Scratch[0]);
}

function f32BitsToBf16(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

// Every half decoded once: scales by table lookup (f32 values), F16 tensors by their bits. (65536,)
let f16Table: Float32Array | undefined;
let f16BitsTable: Uint32Array | undefined;
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}
function halfBitsTable(): Uint32Array {
  if (!f16BitsTable) {
    f16BitsTable = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16BitsTable[h] = f16ToF32Bits(h);
  }
  return f16BitsTable;
}

// ---------------------------------------------------------------------------------------------
// Block layouts (ggml-common.h), little-endian, `d`/`m`/`dmin` f16:
//   Q4_0 (18 B / 32): d, qs[16]            x = (q - 8)·d; byte j: element j low nibble, j+16 high
//   Q4_1 (20 B / 32): d, m, qs[16]         x = q·d + m; nibbles as Q4_0
//   Q5_0 (22 B / 32): d, qh[4], qs[16]     x = (q - 16)·d; bit j of the u32 qh is bit 4 of element j
//   Q5_1 (24 B / 32): d, m, qh[4], qs[16]  x = q·d + m; bits as Q5_0
//   Q8_0 (34 B / 32): d, int8 qs[32]       x = q·d
//   Q4_K (144 B / 256): d, dmin, scales[12], qs[128]; eight sub-blocks of 32 with 6-bit scale sc
//     and min m (see kScale/kMin): x = (d·sc)·q - dmin·m; each 32 bytes of qs hold sub-block 2g
//     in the low nibbles and 2g+1 in the high nibbles
//   Q5_K (176 B / 256): d, dmin, scales[12], qh[32], qs[128]; as Q4_K with 5-bit q, whose bit 4
//     for sub-block s is bit s of qh[l]
//   Q6_K (210 B / 256): ql[128], qh[64], int8 scales[16], d; sixteen sub-blocks of 16,
//     x = (d·sc)·(q - 32); each half of 128 values takes 64 bytes of ql and 32 of qh: value l + 32k
//     (k = 0..3) has low bits in nibble k>>1 of ql[l + 32(k&1)] and high bits 2k..2k+1 of qh[l]

const QK = 32; // elements per block of the 32-element formats
const QK_K = 256; // elements per K-quant super-block
const fr = Math.fround;

/**
 * C's float → integer conversion as x86-64 compiles it (cvttss2si): truncation toward zero, and
 * INT_MIN for NaN or out-of-range values; the (int8_t)/(uint8_t) casts then keep the low byte.
 */
function truncToInt32(v: number): number {
  return v > -2147483649 && v < 2147483648 ? Math.trunc(v) : -2147483648;
}
const truncToInt8 = (v: number): number => (truncToInt32(v) << 24) >> 24;
const truncToUint8 = (v: number): number => truncToInt32(v) & 0xff;

/** 6-bit scale of sub-block j (0..7) from the 12 packed bytes at `o` (ggml's get_scale_min_k4). */
function kScale(q: Uint8Array, o: number, j: number): number {
  return j < 4 ? q[o + j] & 63 : (q[o + j + 4] & 0xf) | ((q[o + j - 4] >> 6) << 4);
}

/** 6-bit min of sub-block j (0..7) from the 12 packed bytes at `o` (ggml's get_scale_min_k4). */
function kMin(q: Uint8Array, o: number, j: number): number {
  return j < 4 ? q[o + j + 4] & 63 : (q[o + j + 4] >> 4) | ((q[o + j] >> 6) << 4);
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

const COMPUTED_TYPES = 'F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K';

// ---------------------------------------------------------------------------------------------
// Dequantization: ggml's dequantize_row_* with the same f32 operations in the same order, so the
// results are bit-identical (ggml's reference build uses no fused multiply-add).

/**
 * Decodes `nElements` values of `type` from `bytes` (ggml block layout, little-endian),
 * bit-identical with ggml's `dequantize_row_*` / `ggml_*_to_fp32_row`.
 */
export function dequantize(type: number, bytes: Uint8Array, nElements: number): Float32Array {
  checkInput(type, bytes, nElements);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(nElements); // (nElements,)
  const nb = nElements / ggmlTypeInfo(type).blockSize;
  switch (type) {
    case GGMLType.F32: {
      const bits = new Uint32Array(out.buffer); // bits, so NaN payloads survive
      if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) bits.set(new Uint32Array(bytes.buffer, bytes.byteOffset, nElements));
      else for (let i = 0; i < nElements; i++) bits[i] = view.getUint32(i * 4, true);
      return out;
    }
    case GGMLType.F16: {
      const bits = new Uint32Array(out.buffer);
      const table = halfBitsTable();
      for (let i = 0; i < nElements; i++) bits[i] = table[view.getUint16(i * 2, true)];
      return out;
    }
    case GGMLType.BF16: {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < nElements; i++) bits[i] = view.getUint16(i * 2, true) << 16;
      return out;
    }
    case GGMLType.Q8_0:
      dequantizeQ8_0(view, out, nb);
      return out;
    case GGMLType.Q4_0:
      dequantizeQ4_0(bytes, view, out, nb);
      return out;
    case GGMLType.Q4_1:
      dequantizeQ4_1(bytes, view, out, nb);
      return out;
    case GGMLType.Q5_0:
      dequantizeQ5_0(bytes, view, out, nb);
      return out;
    case GGMLType.Q5_1:
      dequantizeQ5_1(bytes, view, out, nb);
      return out;
    case GGMLType.Q4_K:
      dequantizeQ4K(bytes, view, out, nb);
      return out;
    case GGMLType.Q5_K:
      dequantizeQ5K(bytes, view, out, nb);
      return out;
    case GGMLType.Q6_K:
      dequantizeQ6K(bytes, view, out, nb);
      return out;
    default:
      throw new GGUFError('unsupported-type', `cannot decode ${ggmlTypeName(type)} tensors; supported: ${COMPUTED_TYPES}`, {
        type: ggmlTypeName(type),
      });
  }
}

function dequantizeQ8_0(view: DataView, out: Float32Array, nb: number): void {
  const table = halfTable();
  for (let b = 0; b < nb; b++) {
    const base = b * 34;
    const d = table[view.getUint16(base, true)];
    for (let j = 0; j < QK; j++) out[b * QK + j] = view.getInt8(base + 2 + j) * d;
  }
}

function dequantizeQ4_0(bytes: Uint8Array, view: DataView, out: Float32Array, nb: number): void {
  const table = halfTable();
  for (let b = 0; b < nb; b++) {
    const base = b * 18;
    const d = table[view.getUint16(base, true)];
    for (let j = 0; j < QK / 2; j++) {
      const byte = bytes[base + 2 + j];
      out[b * QK + j] = ((byte & 0x0f) - 8) * d;
      out[b * QK + j + QK / 2] = ((byte >>> 4) - 8) * d;
    }
  }
}

function dequantizeQ4_1(bytes: Uint8Array, view: DataView, out: Float32Array, nb: number): void {
  const table = halfTable();
  for (let b = 0; b < nb; b++) {
    const base = b * 20;
    const d = table[view.getUint16(base, true)];
    const m = table[view.getUint16(base + 2, true)];
    for (let j = 0; j < QK / 2; j++) {
      const byte = bytes[base + 4 + j];
      out[b * QK + j] = fr((byte & 0x0f) * d) + m; // the store rounds the sum to f32
      out[b * QK + j + QK / 2] = fr((byte >>> 4) * d) + m;
    }
  }
}

function dequantizeQ5_0(bytes: Uint8Array, view: DataView, out: Float32Array, nb: number): void {
  const table = halfTable();
  for (let b = 0; b < nb; b++) {
    const base = b * 22;
    const d = table[view.getUint16(base, true)];
    const qh = view.getUint32(base + 2, true);
    for (let j = 0; j < QK / 2; j++) {
      const byte = bytes[base + 6 + j];
      out[b * QK + j] = (((byte & 0x0f) | (((qh >>> j) << 4) & 0x10)) - 16) * d;
      out[b * QK + j + QK / 2] = (((byte >>> 4) | ((qh >>> (j + 12)) & 0x10)) - 16) * d;
    }
  }
}

function dequantizeQ5_1(bytes: Uint8Array, view: DataView, out: Float32Array, nb: number): void {
  const table = halfTable();
  for (let b = 0; b < nb; b++) {
    const base = b * 24;
    const d = table[view.getUint16(base, true)];
    const m = table[view.getUint16(base + 2, true)];
    const qh = view.getUint32(base + 4, true);
    for (let j = 0; j < QK / 2; j++) {
      const byte = bytes[base + 8 + j];
      out[b * QK + j] = fr(((byte & 0x0f) | (((qh >>> j) << 4) & 0x10)) * d) + m;
      out[b * QK + j + QK / 2] = fr(((byte >>> 4) | ((qh >>> (j + 12)) & 0x10)) * d) + m;
    }
  }
}

function dequantizeQ4K(bytes: Uint8Array, view: DataView, out: Float32Array, nb: number): void {
  const table = halfTable();
  for (let b = 0; b < nb; b++) {
    const base = b * 144;
    const d = table[view.getUint16(base, true)];
    const dmin = table[view.getUint16(base + 2, true)];
    for (let g = 0; g < 4; g++) {
      const d1 = fr(d * kScale(bytes, base + 4, 2 * g));
      const m1 = fr(dmin * kMin(bytes, base + 4, 2 * g));
      const d2 = fr(d * kScale(bytes, base + 4, 2 * g + 1));
      const m2 = fr(dmin * kMin(bytes, base + 4, 2 * g + 1));
      const q = base + 16 + 32 * g;
      const y = b * QK_K + 64 * g;
      for (let l = 0; l < 32; l++) {
        out[y + l] = fr(d1 * (bytes[q + l] & 0x0f)) - m1;
        out[y + 32 + l] = fr(d2 * (bytes[q + l] >> 4)) - m2;
      }
    }
  }
}

function dequantizeQ5K(bytes: Uint8Array, view: DataView, out: Float32Array, nb: number): void {
  const table = halfTable();
  for (let b = 0; b < nb; b++) {
    const base = b * 176;
    const d = table[view.getUint16(base, true)];
    const dmin = table[view.getUint16(base + 2, true)];
    const qh = base + 16;
    for (let g = 0; g < 4; g++) {
      const d1 = fr(d * kScale(bytes, base + 4, 2 * g));
      const m1 = fr(dmin * kMin(bytes, base + 4, 2 * g));
      const d2 = fr(d * kScale(bytes, base + 4, 2 * g + 1));
      const m2 = fr(dmin * kMin(bytes, base + 4, 2 * g + 1));
      const u1 = 1 << (2 * g);
      const u2 = 2 << (2 * g);
      const ql = base + 48 + 32 * g;
      const y = b * QK_K + 64 * g;
      for (let l = 0; l < 32; l++) {
        out[y + l] = fr(d1 * ((bytes[ql + l] & 0x0f) + (bytes[qh + l] & u1 ? 16 : 0))) - m1;
        out[y + 32 + l] = fr(d2 * ((bytes[ql + l] >> 4) + (bytes[qh + l] & u2 ? 16 : 0))) - m2;
      }
    }
  }
}

function dequantizeQ6K(bytes: Uint8Array, view: DataView, out: Float32Array, nb: number): void {
  const table = halfTable();
  for (let b = 0; b < nb; b++) {
    const base = b * 210;
    const d = table[view.getUint16(base + 208, true)];
    for (let half = 0; half < 2; half++) {
      const ql = base + 64 * half;
      const qh = base + 128 + 32 * half;
      const sc = base + 192 + 8 * half;
      const y = b * QK_K + 128 * half;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = bytes[qh + l];
        const q1 = ((bytes[ql + l] & 0x0f) | ((h & 3) << 4)) - 32;
        const q2 = ((bytes[ql + l + 32] & 0x0f) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((bytes[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((bytes[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
        out[y + l] = fr(d * view.getInt8(sc + is)) * q1;
        out[y + l + 32] = fr(d * view.getInt8(sc + is + 2)) * q2;
        out[y + l + 64] = fr(d * view.getInt8(sc + is + 4)) * q3;
        out[y + l + 96] = fr(d * view.getInt8(sc + is + 6)) * q4;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Quantization: ggml's reference quantizers (`quantize_row_*_ref`, which `ggml_quantize_chunk`
// runs when there is no importance matrix), reproduced byte for byte.

/**
 * Encodes `values` as `type` in ggml's block layout, byte-identical with ggml's reference
 * quantizers. Block formats need a multiple of their block size (32, or 256 for K-quants): rows
 * of a matrix must each be a whole number of blocks, and so must the whole.
 */
export function quantize(type: number, values: Float32Array): Uint8Array {
  const n = values.length;
  const { name, blockSize } = ggmlTypeInfo(type);
  if (n % blockSize !== 0) {
    const what = blockSize === QK_K ? `super-blocks of ${QK_K} values (a K-quant row must be a multiple of ${QK_K})` : `blocks of ${blockSize} values`;
    throw new GGUFError('bad-shape', `${name} encodes whole ${what}; got ${n} values`, { type: name, nElements: n });
  }
  const out = new Uint8Array(tensorByteLength(type, n));
  const view = new DataView(out.buffer);
  const nb = n / blockSize;
  switch (type) {
    case GGMLType.F32: {
      const bits = new Uint32Array(values.buffer, values.byteOffset, n); // bits, so NaN payloads survive
      if (LITTLE_ENDIAN) new Uint32Array(out.buffer).set(bits);
      else for (let i = 0; i < n; i++) view.setUint32(i * 4, bits[i], true);
      return out;
    }
    case GGMLType.F16: {
      const bits = new Uint32Array(values.buffer, values.byteOffset, n);
      for (let i = 0; i < n; i++) view.setUint16(i * 2, f32BitsToF16(bits[i]), true);
      return out;
    }
    case GGMLType.BF16: {
      const bits = new Uint32Array(values.buffer, values.byteOffset, n);
      for (let i = 0; i < n; i++) view.setUint16(i * 2, f32BitsToBf16(bits[i]), true);
      return out;
    }
    case GGMLType.Q8_0:
      quantizeQ8_0(values, out, view, nb);
      return out;
    case GGMLType.Q4_0:
      quantizeQ4_0(values, out, view, nb);
      return out;
    case GGMLType.Q4_1:
      quantizeQ4_1(values, out, view, nb);
      return out;
    case GGMLType.Q5_0:
      quantizeQ5_0(values, out, view, nb);
      return out;
    case GGMLType.Q5_1:
      quantizeQ5_1(values, out, view, nb);
      return out;
    case GGMLType.Q4_K:
      quantizeQ4K(values, out, view, nb);
      return out;
    case GGMLType.Q5_K:
      quantizeQ5K(values, out, view, nb);
      return out;
    case GGMLType.Q6_K:
      quantizeQ6K(values, out, view, nb);
      return out;
    default:
      throw new GGUFError('unsupported-type', `cannot encode ${name} tensors; supported: ${COMPUTED_TYPES}`, { type: name });
  }
}

/** ggml's roundf: halves away from zero (Math.round sends -2.5 to -2). */
function roundAway(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

/** The signed value of largest magnitude in x[from, from+n) (the first of ties), as Q4_0/Q5_0 find it. */
function signedAbsMax(x: Float32Array, from: number, n: number): number {
  let amax = 0;
  let max = 0;
  for (let j = from; j < from + n; j++) {
    if (amax < Math.abs(x[j])) {
      amax = Math.abs(x[j]);
      max = x[j];
    }
  }
  return max;
}

function quantizeQ8_0(x: Float32Array, out: Uint8Array, view: DataView, nb: number): void {
  for (let b = 0; b < nb; b++) {
    const x0 = b * QK;
    let amax = 0;
    for (let j = 0; j < QK; j++) {
      const a = Math.abs(x[x0 + j]);
      amax = amax > a ? amax : a; // C's MAX, not Math.max: the same answer for NaN
    }
    const d = fr(amax / 127);
    const id = d !== 0 ? fr(1 / d) : 0; // C's `d ? ...` takes NaN as true; so does `!== 0`
    const base = b * 34;
    view.setUint16(base, f32ToF16(d), true);
    for (let j = 0; j < QK; j++) out[base + 2 + j] = truncToInt8(roundAway(fr(x[x0 + j] * id)));
  }
}

function quantizeQ4_0(x: Float32Array, out: Uint8Array, view: DataView, nb: number): void {
  for (let b = 0; b < nb; b++) {
    const x0 = b * QK;
    // The signed extreme maps to -8, so the full range [-8, 7] is used.
    const d = fr(signedAbsMax(x, x0, QK) / -8);
    const id = d !== 0 ? fr(1 / d) : 0;
    const base = b * 18;
    view.setUint16(base, f32ToF16(d), true);
    for (let j = 0; j < QK / 2; j++) {
      const lo = Math.min(15, truncToInt8(fr(fr(x[x0 + j] * id) + 8.5))) & 0xff;
      const hi = Math.min(15, truncToInt8(fr(fr(x[x0 + j + QK / 2] * id) + 8.5))) & 0xff;
      out[base + 2 + j] = lo | (hi << 4);
    }
  }
}

/** min and max of x[from, from+n) as Q4_1/Q5_1 find them (from ±FLT_MAX; NaN never wins). */
function minMax(x: Float32Array, from: number, n: number): [number, number] {
  let min = 3.4028234663852886e38;
  let max = -3.4028234663852886e38;
  for (let j = from; j < from + n; j++) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  return [min, max];
}

function quantizeQ4_1(x: Float32Array, out: Uint8Array, view: DataView, nb: number): void {
  for (let b = 0; b < nb; b++) {
    const x0 = b * QK;
    const [min, max] = minMax(x, x0, QK);
    const d = fr(fr(max - min) / 15);
    const id = d !== 0 ? fr(1 / d) : 0;
    const base = b * 20;
    view.setUint16(base, f32ToF16(d), true);
    view.setUint16(base + 2, f32ToF16(min), true);
    for (let j = 0; j < QK / 2; j++) {
      const lo = Math.min(15, truncToInt8(fr(fr(fr(x[x0 + j] - min) * id) + 0.5))) & 0xff;
      const hi = Math.min(15, truncToInt8(fr(fr(fr(x[x0 + j + QK / 2] - min) * id) + 0.5))) & 0xff;
      out[base + 4 + j] = lo | (hi << 4);
    }
  }
}

function quantizeQ5_0(x: Float32Array, out: Uint8Array, view: DataView, nb: number): void {
  for (let b = 0; b < nb; b++) {
    const x0 = b * QK;
    const d = fr(signedAbsMax(x, x0, QK) / -16);
    const id = d !== 0 ? fr(1 / d) : 0;
    const base = b * 22;
    view.setUint16(base, f32ToF16(d), true);
    let qh = 0;
    for (let j = 0; j < QK / 2; j++) {
      const lo = Math.min(31, truncToInt8(fr(fr(x[x0 + j] * id) + 16.5))) & 0xff;
      const hi = Math.min(31, truncToInt8(fr(fr(x[x0 + j + QK / 2] * id) + 16.5))) & 0xff;
      out[base + 6 + j] = (lo & 0x0f) | ((hi & 0x0f) << 4);
      qh |= ((lo & 0x10) >>> 4) << j;
      qh |= ((hi & 0x10) >>> 4) << (j + QK / 2);
    }
    view.setUint32(base + 2, qh >>> 0, true);
  }
}

function quantizeQ5_1(x: Float32Array, out: Uint8Array, view: DataView, nb: number): void {
  for (let b = 0; b < nb; b++) {
    const x0 = b * QK;
    const [min, max] = minMax(x, x0, QK);
    const d = fr(fr(max - min) / 31);
    const id = d !== 0 ? fr(1 / d) : 0;
    const base = b * 24;
    view.setUint16(base, f32ToF16(d), true);
    view.setUint16(base + 2, f32ToF16(min), true);
    let qh = 0;
    for (let j = 0; j < QK / 2; j++) {
      // No clamp to 31 here, unlike Q5_0: ggml keeps the low byte as it is.
      const lo = truncToUint8(fr(fr(fr(x[x0 + j] - min) * id) + 0.5));
      const hi = truncToUint8(fr(fr(fr(x[x0 + j + QK / 2] - min) * id) + 0.5));
      out[base + 8 + j] = (lo & 0x0f) | ((hi & 0x0f) << 4);
      qh |= ((lo & 0x10) >>> 4) << j;
      qh |= ((hi & 0x10) >>> 4) << (j + QK / 2);
    }
    view.setUint32(base + 4, qh >>> 0, true);
  }
}

/**
 * The sub-block searches of Q4_K and Q5_K (ggml's quantize_row_q{4,5}_K_ref): per sub-block of
 * 32, weights av_x + |x| with av_x the RMS of the sub-block, then make_qkx2_quants; the scales
 * and mins are quantized to 6 bits against their maxima, packed (kScale/kMin's layout) at `so`,
 * and d, dmin written at `base`. Then every value is re-quantized against the packed scales
 * (sub-blocks whose scale came out 0 keep the search's quants). Returns L (256 quants).
 */
function quantizeSuperBlockK(
  x: Float32Array,
  out: Uint8Array,
  view: DataView,
  base: number,
  nmax: number,
  rmin: number,
  nstep: number,
  s: KScratch,
): Uint8Array {
  const { L, Laux, weights, scales, mins, fit } = s;
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    const xs = x.subarray(32 * j, 32 * j + 32);
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = fr(sumX2 + fr(xs[l] * xs[l]));
    const avX = fr(Math.sqrt(fr(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = avX + Math.abs(xs[l]); // the store rounds to f32
    makeQkx2Quants(nmax, xs, weights, L.subarray(32 * j, 32 * j + 32), Laux, rmin, K_RDELTA, nstep, fit);
    scales[j] = fit.scale;
    mins[j] = fit.min;
    if (scales[j] > maxScale) maxScale = scales[j];
    if (mins[j] > maxMin) maxMin = mins[j];
  }
  const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
  const so = base + 4;
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, nearestInt(fr(invScale * scales[j])) & 0xff);
    const lm = Math.min(63, nearestInt(fr(invMin * mins[j])) & 0xff);
    if (j < 4) {
      out[so + j] = ls;
      out[so + j + 4] = lm;
    } else {
      out[so + j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
      out[so + j - 4] |= (ls >> 4) << 6;
      out[so + j] |= (lm >> 4) << 6;
    }
  }
  const dBits = f32ToF16(fr(maxScale / 63));
  const dminBits = f32ToF16(fr(maxMin / 63));
  view.setUint16(base, dBits, true);
  view.setUint16(base + 2, dminBits, true);
  for (let j = 0; j < 8; j++) {
    const d = fr(f16ToF32(dBits) * kScale(out, so, j));
    if (d === 0) continue; // C's `!d`: NaN goes on
    const dm = fr(f16ToF32(dminBits) * kMin(out, so, j));
    for (let i = 0; i < 32; i++) L[32 * j + i] = Math.max(0, Math.min(nmax, nearestInt(fr(fr(x[32 * j + i] + dm) / d))));
  }
  return L;
}

// make_qkx2_quants' step between the iscale candidates, for both Q4_K and Q5_K.
const K_RDELTA = fr(0.1);

interface KScratch {
  L: Uint8Array; // (256,) quants of a super-block
  Laux: Uint8Array; // (32,)
  weights: Float32Array; // (32,)
  scales: Float32Array; // (8,) sub-block scales
  mins: Float32Array; // (8,) sub-block mins
  fit: ScaleMin;
}

function kScratch(): KScratch {
  return {
    L: new Uint8Array(QK_K),
    Laux: new Uint8Array(32),
    weights: new Float32Array(32),
    scales: new Float32Array(8),
    mins: new Float32Array(8),
    fit: { scale: 0, min: 0 },
  };
}

function quantizeQ4K(x: Float32Array, out: Uint8Array, view: DataView, nb: number): void {
  const s = kScratch();
  for (let b = 0; b < nb; b++) {
    const base = b * 144;
    const L = quantizeSuperBlockK(x.subarray(b * QK_K, (b + 1) * QK_K), out, view, base, 15, -1, 20, s);
    for (let g = 0; g < 4; g++) {
      for (let l = 0; l < 32; l++) out[base + 16 + 32 * g + l] = L[64 * g + l] | (L[64 * g + l + 32] << 4);
    }
  }
}

function quantizeQ5K(x: Float32Array, out: Uint8Array, view: DataView, nb: number): void {
  const s = kScratch();
  for (let b = 0; b < nb; b++) {
    const base = b * 176;
    const L = quantizeSuperBlockK(x.subarray(b * QK_K, (b + 1) * QK_K), out, view, base, 31, -0.5, 15, s);
    const qh = base + 16;
    for (let g = 0; g < 4; g++) {
      const ql = base + 48 + 32 * g;
      for (let l = 0; l < 32; l++) {
        let l1 = L[64 * g + l];
        let l2 = L[64 * g + l + 32];
        if (l1 > 15) {
          l1 -= 16;
          out[qh + l] |= 1 << (2 * g);
        }
        if (l2 > 15) {
          l2 -= 16;
          out[qh + l] |= 2 << (2 * g);
        }
        out[ql + l] = l1 | (l2 << 4);
      }
    }
  }
}

function quantizeQ6K(x: Float32Array, out: Uint8Array, view: DataView, nb: number): void {
  const L = new Uint8Array(QK_K); // quants + 32, in [0, 63]
  const scales = new Float32Array(16);
  for (let b = 0; b < nb; b++) {
    const xb = x.subarray(b * QK_K, (b + 1) * QK_K);
    const base = b * 210;
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let ib = 0; ib < 16; ib++) {
      const scale = makeQxQuants(32, xb.subarray(16 * ib, 16 * ib + 16), L.subarray(16 * ib, 16 * ib + 16));
      scales[ib] = scale;
      if (Math.abs(scale) > maxAbsScale) {
        maxAbsScale = Math.abs(scale);
        maxScale = scale;
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) continue; // an all-zero block: out is zero already
    const iscale = fr(-128 / maxScale);
    const dBits = f32ToF16(fr(1 / iscale));
    view.setUint16(base + 208, dBits, true);
    for (let ib = 0; ib < 16; ib++) view.setInt8(base + 192 + ib, Math.min(127, nearestInt(fr(iscale * scales[ib]))));
    for (let j = 0; j < 16; j++) {
      const d = fr(f16ToF32(dBits) * view.getInt8(base + 192 + j));
      if (d === 0) continue;
      for (let i = 0; i < 16; i++) L[16 * j + i] = Math.max(-32, Math.min(31, nearestInt(fr(xb[16 * j + i] / d)))) + 32;
    }
    for (let half = 0; half < 2; half++) {
      const ql = base + 64 * half;
      const qh = base + 128 + 32 * half;
      const q = 128 * half;
      for (let l = 0; l < 32; l++) {
        out[ql + l] = (L[q + l] & 0x0f) | ((L[q + l + 64] & 0x0f) << 4);
        out[ql + l + 32] = (L[q + l + 32] & 0x0f) | ((L[q + l + 96] & 0x0f) << 4);
        out[qh + l] = (L[q + l] >> 4) | ((L[q + l + 32] >> 4) << 2) | ((L[q + l + 64] >> 4) << 4) | ((L[q + l + 96] >> 4) << 6);
      }
    }
  }
}
