// Weight upload: GGUF tensor bytes repacked into the GPU layouts of docs/ARCHITECTURE.md ("GPU
// weight layouts") and split by rows into several buffers when one binding cannot hold them.
//
// A matrix is `rows` (out) × `cols` (in), row-major like ggml, packed as u32 words. Block types
// keep their bytes (nothing is dequantized at load: decode reads as many bytes per weight as the
// GGUF holds) but move them into regions, so the quant bits of consecutive blocks are one
// contiguous, aligned run of words and each block's small fields follow in aligned runs of their
// own. Region k holds field k of every block in block order; regions are listed in packed order.
//   F32   [n]                f32 bit patterns
//   F16   [n/2]              two halves per word, element 2i in the low half
//   BF16  [n/2]              two bfloat16 per word, element 2i in the low half
//   Q8_0  qs 32 B | d 2 B               int8 in ggml order | f16 scales, block 2i in the low half
//   Q4_0  qs 16 B | d 2 B               byte j: element j (low nibble), j+16 (high) | f16 scales
//   Q4_1  qs 16 B | dm 4 B              as Q4_0 | d (low half) and m (high half) of each block
//   Q5_0  qs 16 B | qh 4 B | d 2 B      as Q4_0 | bit j: the fifth bit of element j | f16 scales
//   Q5_1  qs 16 B | qh 4 B | dm 4 B     as Q5_0, with d and m words
//   Q4_K  qs 128 B | head 16 B          byte 32i+l: element 64i+l (low), 64i+32+l (high) | f16 d,
//                                       f16 dmin, the 12 bytes of packed 6-bit scales and mins
//   Q5_K  qs 128 B | qh 32 B | head 16 B  as Q4_K | byte l, bits 2i and 2i+1: the fifth bits of
//                                       elements 64i+l and 64i+32+l | as Q4_K
//   Q6_K  ql 128 B | qh 64 B | sc 16 B | d 2 B   ggml's ql, qh and int8 scales of each super-block
//                                       (byte 64h+l: element 128h+l low, 128h+64+l high; byte
//                                       64h+32+l: 128h+32+l, 128h+96+l; qh byte 32h+l: two bits
//                                       for each of those four) | f16 d, block 2i in the low half
// (n = rows*cols; blocks are 32 elements, super-blocks 256.) Every region starts on a word, and
// Q4_K/Q5_K headers on 16 bytes (one vec4 load); only the last region of an odd block count ends
// in a half word. `scaleOffset` is the word count of the first region (the quants); the kernels
// find the others from the part's rows and cols. Block b of row r is b = r*(cols/block) +
// (c/block) within one part; every part holds its own regions.
import { GGUFError, GPUError, UnsupportedModelError } from '../errors.ts';
import { GGMLType, dequantize, ggmlTypeName } from '../gguf/quant.ts';
import type { GpuContext } from './context.ts';

/** The weight types the matrix kernels read. */
export type WeightType =
  | typeof GGMLType.F32
  | typeof GGMLType.F16
  | typeof GGMLType.BF16
  | typeof GGMLType.Q8_0
  | typeof GGMLType.Q4_0
  | typeof GGMLType.Q4_1
  | typeof GGMLType.Q5_0
  | typeof GGMLType.Q5_1
  | typeof GGMLType.Q4_K
  | typeof GGMLType.Q5_K
  | typeof GGMLType.Q6_K;

export const WEIGHT_TYPES: readonly WeightType[] = [
  GGMLType.F32,
  GGMLType.F16,
  GGMLType.BF16,
  GGMLType.Q8_0,
  GGMLType.Q4_0,
  GGMLType.Q4_1,
  GGMLType.Q5_0,
  GGMLType.Q5_1,
  GGMLType.Q4_K,
  GGMLType.Q5_K,
  GGMLType.Q6_K,
];

export function isWeightType(type: number): type is WeightType {
  return (WEIGHT_TYPES as readonly number[]).includes(type);
}

/** One buffer holding rows [rowStart, rowStart + rows) of a matrix in the packed layout. */
export interface GpuWeightPart {
  readonly buffer: GPUBuffer;
  readonly rowStart: number;
  readonly rows: number;
  /** u32 index where the block fields after the quants begin (scales, high bits); the word count of the quants. */
  readonly scaleOffset: number;
  /** Packed bytes of this part (without the 16-byte padding of the buffer). */
  readonly byteLength: number;
}

export interface GpuWeight {
  readonly label: string;
  readonly type: WeightType;
  readonly rows: number;
  readonly cols: number;
  readonly parts: readonly GpuWeightPart[];
  /** Packed bytes of all parts: what one full read of the matrix moves. */
  readonly byteLength: number;
}

/** A type's GGUF block and where its fields go: region k of the packed layout holds field k of every block. */
interface BlockPlan {
  /** Elements and GGUF bytes per block (1 and the element size for the plain types). */
  readonly elements: number;
  readonly bytes: number;
  /** Byte offset in the GGUF block and length of each field, in packed order. */
  readonly fields: readonly (readonly [offset: number, length: number])[];
}

const PLANS: Record<WeightType, BlockPlan> = {
  [GGMLType.F32]: { elements: 1, bytes: 4, fields: [[0, 4]] },
  [GGMLType.F16]: { elements: 1, bytes: 2, fields: [[0, 2]] },
  [GGMLType.BF16]: { elements: 1, bytes: 2, fields: [[0, 2]] },
  // GGUF: f16 d, int8 qs[32]
  [GGMLType.Q8_0]: { elements: 32, bytes: 34, fields: [[2, 32], [0, 2]] },
  // f16 d, qs[16]
  [GGMLType.Q4_0]: { elements: 32, bytes: 18, fields: [[2, 16], [0, 2]] },
  // f16 d, f16 m, qs[16]
  [GGMLType.Q4_1]: { elements: 32, bytes: 20, fields: [[4, 16], [0, 4]] },
  // f16 d, qh[4], qs[16]
  [GGMLType.Q5_0]: { elements: 32, bytes: 22, fields: [[6, 16], [2, 4], [0, 2]] },
  // f16 d, f16 m, qh[4], qs[16]
  [GGMLType.Q5_1]: { elements: 32, bytes: 24, fields: [[8, 16], [4, 4], [0, 4]] },
  // f16 d, f16 dmin, scales[12], qs[128]
  [GGMLType.Q4_K]: { elements: 256, bytes: 144, fields: [[16, 128], [0, 16]] },
  // f16 d, f16 dmin, scales[12], qh[32], qs[128]
  [GGMLType.Q5_K]: { elements: 256, bytes: 176, fields: [[48, 128], [16, 32], [0, 16]] },
  // ql[128], qh[64], int8 scales[16], f16 d
  [GGMLType.Q6_K]: { elements: 256, bytes: 210, fields: [[0, 128], [128, 64], [192, 16], [208, 2]] },
};

/** Elements per block of a weight type (1 for F32, F16 and BF16). */
export function weightBlockSize(type: WeightType): number {
  return PLANS[type].elements;
}

/** Word counts of the packed layout of a `rows` × `cols` matrix. */
export function packedLayout(type: WeightType, rows: number, cols: number): { words: number; scaleOffset: number } {
  const plan = PLANS[type];
  const blocks = (rows * cols) / plan.elements;
  return { words: Math.ceil((blocks * plan.bytes) / 4), scaleOffset: (blocks * plan.fields[0][1]) / 4 };
}

/** Bytes of one row in the GGUF file. */
function ggufRowBytes(type: WeightType, cols: number): number {
  return (cols / PLANS[type].elements) * PLANS[type].bytes;
}

/** Throws unless a `type` matrix of this shape can live on the GPU. */
export function checkWeightShape(label: string, type: number, rows: number, cols: number): asserts type is WeightType {
  if (!isWeightType(type)) {
    throw new UnsupportedModelError(
      'unsupported-type',
      `tensor '${label}' is ${ggmlTypeName(type)}, but matrices must be ${WEIGHT_TYPES.map(ggmlTypeName).join(', ')}; convert the model with llama.cpp's llama-quantize (Q4_K_M, Q8_0 or Q4_0 all load)`,
      { tensor: label, type: ggmlTypeName(type) },
    );
  }
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows < 1 || cols < 1) {
    throw new UnsupportedModelError('bad-shape', `tensor '${label}' has an empty or invalid shape ${cols}×${rows}`, { tensor: label, rows, cols });
  }
  const block = PLANS[type].elements;
  if (cols % block !== 0) {
    throw new UnsupportedModelError(
      'bad-shape',
      `tensor '${label}' is ${ggmlTypeName(type)} with ${cols} columns, not a multiple of ${block} (its block size); quantize this tensor to a type with smaller blocks (Q8_0, Q5_0 or Q4_0 take multiples of 32)`,
      { tensor: label, cols },
    );
  }
  if ((type === GGMLType.F16 || type === GGMLType.BF16) && cols % 2 !== 0) {
    throw new UnsupportedModelError(
      'bad-shape',
      `tensor '${label}' is ${ggmlTypeName(type)} with an odd column count ${cols}; the GPU layout packs halves in pairs`,
      { tensor: label, cols },
    );
  }
}

function checkBytes(label: string, type: WeightType, bytes: Uint8Array, rows: number, cols: number): void {
  const need = rows * ggufRowBytes(type, cols);
  if (bytes.byteLength < need) {
    throw new GGUFError('truncated', `tensor '${label}' needs ${need} bytes of ${ggmlTypeName(type)} data but only ${bytes.byteLength} were read`, {
      tensor: label,
      need,
      got: bytes.byteLength,
    });
  }
}

/** Copies field bytes between GGUF blocks and packed regions, in the direction `toPacked` says. */
function moveFields(plan: BlockPlan, blocks: number, gguf: Uint8Array, packed: Uint8Array, toPacked: boolean): void {
  let region = 0;
  for (const [offset, length] of plan.fields) {
    if (length >= 32) {
      for (let b = 0; b < blocks; b++) {
        const g = b * plan.bytes + offset;
        const q = region + b * length;
        if (toPacked) packed.set(gguf.subarray(g, g + length), q);
        else gguf.set(packed.subarray(q, q + length), g);
      }
    } else {
      // Short fields (scales, high bits): a byte loop is faster than a subarray per block.
      for (let b = 0; b < blocks; b++) {
        const g = b * plan.bytes + offset;
        const q = region + b * length;
        for (let i = 0; i < length; i++) {
          if (toPacked) packed[q + i] = gguf[g + i];
          else gguf[g + i] = packed[q + i];
        }
      }
    }
    region += blocks * length;
  }
}

/**
 * Repacks `rows` × `cols` GGUF data of `type` into the GPU layout (see the file header).
 * Returns the words; `packedLayout(type, rows, cols).scaleOffset` says where the quants end.
 */
export function packWeight(type: WeightType, ggufBytes: Uint8Array, rows: number, cols: number): Uint32Array {
  checkWeightShape('matrix', type, rows, cols);
  checkBytes('matrix', type, ggufBytes, rows, cols);
  const plan = PLANS[type];
  const blocks = (rows * cols) / plan.elements;
  const out = new Uint32Array(packedLayout(type, rows, cols).words);
  const outBytes = new Uint8Array(out.buffer);
  if (plan.fields.length === 1) {
    // F32, F16, BF16: already the layout (little-endian words, halves paired in order).
    outBytes.set(ggufBytes.subarray(0, blocks * plan.bytes));
  } else {
    moveFields(plan, blocks, ggufBytes, outBytes, true);
  }
  return out;
}

/**
 * Decodes a packed matrix back to f32 [rows, cols] (for tests and references): the GGUF blocks
 * are rebuilt and decoded by `dequantize`, so a round trip is bit-exact with the file's values.
 */
export function unpackWeight(type: WeightType, words: Uint32Array, rows: number, cols: number, scaleOffset: number): Float32Array {
  const plan = PLANS[type];
  const n = rows * cols;
  const blocks = n / plan.elements;
  if (scaleOffset !== packedLayout(type, rows, cols).scaleOffset) {
    throw new GPUError('bad-layout', `a ${ggmlTypeName(type)} ${rows}×${cols} matrix has its scales at word ${packedLayout(type, rows, cols).scaleOffset}, not ${scaleOffset}`, {
      scaleOffset,
    });
  }
  const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  const gguf = new Uint8Array(blocks * plan.bytes);
  if (plan.fields.length === 1) gguf.set(bytes.subarray(0, gguf.length));
  else moveFields(plan, blocks, gguf, bytes, false);
  return dequantize(type, gguf, n);
}

/**
 * How uploadWeight splits a `rows` × `cols` matrix to fit `limit` bytes per buffer: rows per part
 * (0 when not even one row fits) and the packed bytes of one row, its scales included.
 */
export function weightRowsPerPart(type: WeightType, rows: number, cols: number, limit: number): { rowsPerPart: number; rowBytes: number } {
  // A part of n rows packs into at most n*rowBytes + 4 (an odd block count rounds the scales up)
  // bytes, and buffers are padded to 16.
  const rowBytes = packedLayout(type, 2, cols).words * 2;
  return { rowsPerPart: Math.max(0, Math.min(rows, Math.floor((limit - 20) / rowBytes))), rowBytes };
}

export interface UploadWeightOptions {
  /** Largest bytes per buffer; defaults to the device's binding and buffer limits. Tests pass small values to force splits. */
  maxBindingBytes?: number;
}

/**
 * Uploads a GGUF matrix ([rows, cols] of `type`, `bytes` straight from the file) as one or more
 * read-only storage buffers (also COPY_SRC, so tools and tests can read them back), splitting
 * by rows when the packed matrix exceeds one binding.
 */
export function uploadWeight(
  ctx: GpuContext,
  label: string,
  type: number,
  bytes: Uint8Array,
  rows: number,
  cols: number,
  opts: UploadWeightOptions = {},
): GpuWeight {
  checkWeightShape(label, type, rows, cols);
  checkBytes(label, type, bytes, rows, cols);
  const limit = opts.maxBindingBytes ?? Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
  const { rowsPerPart, rowBytes: rowPacked } = weightRowsPerPart(type, rows, cols, limit);
  if (rowsPerPart < 1) {
    throw new GPUError(
      'binding-too-small',
      `one row of '${label}' takes ${rowPacked} bytes but this device binds at most ${limit} bytes per buffer; use a GPU with larger storage bindings`,
      { tensor: label, rowBytes: rowPacked, limit },
    );
  }
  const srcRow = ggufRowBytes(type, cols);
  const parts: GpuWeightPart[] = [];
  for (let r0 = 0; r0 < rows; r0 += rowsPerPart) {
    const n = Math.min(rowsPerPart, rows - r0);
    const words = packWeight(type, bytes.subarray(r0 * srcRow, (r0 + n) * srcRow), n, cols);
    const name = rowsPerPart < rows ? `${label}[${r0}:${r0 + n}]` : label;
    const buffer = ctx.createBuffer(name, words.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC);
    ctx.device.queue.writeBuffer(buffer, 0, words);
    parts.push({ buffer, rowStart: r0, rows: n, scaleOffset: packedLayout(type, n, cols).scaleOffset, byteLength: words.byteLength });
  }
  return { label, type, rows, cols, parts, byteLength: parts.reduce((s, p) => s + p.byteLength, 0) };
}

/**
 * Uploads a vector (a norm weight or a bias: F32, F16 or BF16 in the file) as f32 [n] in a
 * read-only storage buffer.
 */
export function uploadVector(ctx: GpuContext, label: string, type: number, bytes: Uint8Array, n: number): GPUBuffer {
  if (type !== GGMLType.F32 && type !== GGMLType.F16 && type !== GGMLType.BF16) {
    throw new UnsupportedModelError('unsupported-type', `vector '${label}' is ${ggmlTypeName(type)}; norm weights and biases must be F32, F16 or BF16`, {
      tensor: label,
      type: ggmlTypeName(type),
    });
  }
  const values = dequantize(type, bytes, n); // (n,) f32
  const buffer = ctx.createBuffer(label, values.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC);
  ctx.device.queue.writeBuffer(buffer, 0, values);
  return buffer;
}
