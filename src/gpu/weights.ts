// Weight upload: GGUF tensor bytes repacked into the GPU layouts of docs/ARCHITECTURE.md ("GPU
// weight layouts") and split by rows into several buffers when one binding cannot hold them.
//
// A matrix is `rows` (out) × `cols` (in), row-major like ggml. Packed as u32 words:
//   F32  [rows*cols]                      f32 bit patterns
//   F16  [rows*cols/2]                    two halves per word, element 2i in the low half
//   Q8_0 [rows*cols/4] quants             four int8 per word in ggml order, then
//        [ceil(nBlocks/2)] scales         f16 pairs from word `scaleOffset` (block 2i in the low half)
//   Q4_0 [rows*cols/8] quants             the 16 bytes of each block (byte j: element j low nibble,
//        [ceil(nBlocks/2)] scales         element j+16 high nibble), then the scales as for Q8_0
// Block b of row r is b = r*(cols/32) + (c/32) within one part; every part has its own scales.
import { GGUFError, GPUError, UnsupportedModelError } from '../errors.ts';
import { GGMLType, dequantize, ggmlTypeName } from '../gguf/quant.ts';
import type { GpuContext } from './context.ts';

/** The weight types the matrix kernels read. */
export type WeightType = typeof GGMLType.F32 | typeof GGMLType.F16 | typeof GGMLType.Q8_0 | typeof GGMLType.Q4_0;

export const WEIGHT_TYPES: readonly WeightType[] = [GGMLType.F32, GGMLType.F16, GGMLType.Q8_0, GGMLType.Q4_0];

export function isWeightType(type: number): type is WeightType {
  return (WEIGHT_TYPES as readonly number[]).includes(type);
}

/** One buffer holding rows [rowStart, rowStart + rows) of a matrix in the packed layout. */
export interface GpuWeightPart {
  readonly buffer: GPUBuffer;
  readonly rowStart: number;
  readonly rows: number;
  /** u32 index of the first f16 scale pair (quantized types); the word count of the quants. */
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

const QK = 32;

/** Word counts of the packed layout of a `rows` × `cols` matrix. */
export function packedLayout(type: WeightType, rows: number, cols: number): { words: number; scaleOffset: number } {
  const n = rows * cols;
  switch (type) {
    case GGMLType.F32:
      return { words: n, scaleOffset: n };
    case GGMLType.F16:
      return { words: n / 2, scaleOffset: n / 2 };
    case GGMLType.Q8_0:
      return { words: n / 4 + Math.ceil(n / QK / 2), scaleOffset: n / 4 };
    case GGMLType.Q4_0:
      return { words: n / 8 + Math.ceil(n / QK / 2), scaleOffset: n / 8 };
  }
}

/** Bytes of one row in the GGUF file. */
function ggufRowBytes(type: WeightType, cols: number): number {
  switch (type) {
    case GGMLType.F32:
      return cols * 4;
    case GGMLType.F16:
      return cols * 2;
    case GGMLType.Q8_0:
      return (cols / QK) * 34;
    case GGMLType.Q4_0:
      return (cols / QK) * 18;
  }
}

/** Throws unless a `type` matrix of this shape can live on the GPU. */
export function checkWeightShape(label: string, type: number, rows: number, cols: number): asserts type is WeightType {
  if (!isWeightType(type)) {
    throw new UnsupportedModelError(
      'unsupported-type',
      `tensor '${label}' is ${ggmlTypeName(type)}, but matrices must be F32, F16, Q8_0 or Q4_0; convert the model with llama.cpp's llama-quantize to Q8_0 or Q4_0`,
      { tensor: label, type: ggmlTypeName(type) },
    );
  }
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows < 1 || cols < 1) {
    throw new UnsupportedModelError('bad-shape', `tensor '${label}' has an empty or invalid shape ${cols}×${rows}`, { tensor: label, rows, cols });
  }
  if ((type === GGMLType.Q8_0 || type === GGMLType.Q4_0) && cols % QK !== 0) {
    throw new UnsupportedModelError('bad-shape', `tensor '${label}' is ${ggmlTypeName(type)} with ${cols} columns, not a multiple of ${QK}`, {
      tensor: label,
      cols,
    });
  }
  if (type === GGMLType.F16 && cols % 2 !== 0) {
    throw new UnsupportedModelError('bad-shape', `tensor '${label}' is F16 with an odd column count ${cols}; the GPU layout packs halves in pairs`, {
      tensor: label,
      cols,
    });
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

/**
 * Repacks `rows` × `cols` GGUF data of `type` into the GPU layout (see the file header).
 * Returns the words; `packedLayout(type, rows, cols).scaleOffset` says where the scales start.
 */
export function packWeight(type: WeightType, ggufBytes: Uint8Array, rows: number, cols: number): Uint32Array {
  checkWeightShape('matrix', type, rows, cols);
  checkBytes('matrix', type, ggufBytes, rows, cols);
  const { words, scaleOffset } = packedLayout(type, rows, cols);
  const out = new Uint32Array(words);
  const outBytes = new Uint8Array(out.buffer);
  const n = rows * cols;
  switch (type) {
    case GGMLType.F32:
    case GGMLType.F16:
      // Already the layout: little-endian f32s, or halves whose pairs read as u32 words.
      outBytes.set(ggufBytes.subarray(0, type === GGMLType.F32 ? n * 4 : n * 2));
      return out;
    case GGMLType.Q8_0:
    case GGMLType.Q4_0: {
      const blockBytes = type === GGMLType.Q8_0 ? 34 : 18;
      const quantBytes = blockBytes - 2;
      const scales = new Uint16Array(out.buffer, scaleOffset * 4, Math.ceil(n / QK / 2) * 2);
      for (let b = 0; b < n / QK; b++) {
        const src = b * blockBytes;
        scales[b] = ggufBytes[src] | (ggufBytes[src + 1] << 8);
        outBytes.set(ggufBytes.subarray(src + 2, src + blockBytes), b * quantBytes);
      }
      return out;
    }
  }
}

/** Decodes a packed matrix back to f32 [rows, cols] (for tests and references). */
export function unpackWeight(type: WeightType, words: Uint32Array, rows: number, cols: number, scaleOffset: number): Float32Array {
  const n = rows * cols;
  const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  switch (type) {
    case GGMLType.F32:
      return new Float32Array(words.buffer, words.byteOffset, n).slice();
    case GGMLType.F16:
      return dequantize(GGMLType.F16, bytes, n);
    case GGMLType.Q8_0:
    case GGMLType.Q4_0: {
      // Rebuild the GGUF blocks and let the GGUF decoder do the arithmetic.
      const blockBytes = type === GGMLType.Q8_0 ? 34 : 18;
      const quantBytes = blockBytes - 2;
      const gguf = new Uint8Array((n / QK) * blockBytes);
      const scaleBytes = new Uint8Array(words.buffer, words.byteOffset + scaleOffset * 4);
      for (let b = 0; b < n / QK; b++) {
        gguf[b * blockBytes] = scaleBytes[b * 2];
        gguf[b * blockBytes + 1] = scaleBytes[b * 2 + 1];
        gguf.set(bytes.subarray(b * quantBytes, (b + 1) * quantBytes), b * blockBytes + 2);
      }
      return dequantize(type, gguf, n);
    }
  }
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
  // A part of n rows packs into at most n*rowBytes + 4 (an odd block count rounds the scales up)
  // bytes, and buffers are padded to 16.
  const rowPacked = packedLayout(type, 2, cols).words * 2; // bytes of one row, scales included
  const rowsPerPart = Math.min(rows, Math.floor((limit - 20) / rowPacked));
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
