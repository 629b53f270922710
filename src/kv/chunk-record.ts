// Chunk records, format v2: a computed chunk's KV as it is kept outside the GPU (the memory tier,
// IndexedDB, a folder, a .kvpack), at a storage precision chosen apart from the pool's.
//
// Layout (little-endian u32 words, every section 4-byte aligned):
//   header   magic 'CLKV', version 2, storage code (0 f32, 1 f16, 2 int8), nLayers, kvDim, nTokens,
//            model hash lo, model hash hi (64-bit FNV-1a of the fingerprint's UTF-8), checksum
//   tokens   nTokens u32 token ids
//   payload  per layer K rows then V rows, (nTokens, kvDim) each:
//            f32  raw values;
//            f16  the halves, padded with zeros to a word at the end;
//            int8 per layer: K scales (kvDim f32, one per channel), K values (nTokens*kvDim int8,
//                 padded to a word), V scales (nTokens f32, one per token), V values (padded).
// The checksum is MurmurHash3 x86_32 (seed 0) of every byte after the header (tokens + payload).
// Only little-endian hosts are supported (every platform WebGPU runs on), as in the GPU layout.
import { KVCacheError } from '../errors.ts';
import { f16BitsToF32, f32ToF16Bits } from './f16.ts';

/** How rows are held on the GPU (the pool's element type). */
export type KvDtype = 'f32' | 'f16';
/** How a record stores them. */
export type KvStorageDtype = 'f32' | 'f16' | 'int8';

export const CHUNK_RECORD_VERSION = 2;

export interface ChunkRecordShape {
  nLayers: number;
  /** nKvHeads * headDim. */
  kvDim: number;
  tokens: readonly number[];
  modelFingerprint: string;
}

export type ChunkRecordBadReason = 'truncated' | 'magic' | 'version' | 'shape' | 'model' | 'tokens' | 'checksum' | 'dtype';

const MAGIC = 0x564b4c43; // 'CLKV' little-endian, shared with v1 so a v1 record reads as a version mismatch
const HEADER_WORDS = 9;
const HEADER_BYTES = HEADER_WORDS * 4;
/** Storage codes are indices into this list; never reorder it. */
const STORAGE_CODES: readonly KvStorageDtype[] = ['f32', 'f16', 'int8'];

function bad(reason: ChunkRecordBadReason, why: string): KVCacheError {
  return new KVCacheError('bad-chunk-data', `stored chunk KV is unusable (${reason}): ${why}; treat it as a miss and recompute the chunk`, { reason });
}

const pad4 = (n: number): number => Math.ceil(n / 4) * 4;

function payloadBytes(nLayers: number, kvDim: number, nTokens: number, storage: KvStorageDtype): number {
  const values = nLayers * 2 * nTokens * kvDim;
  switch (storage) {
    case 'f32':
      return values * 4;
    case 'f16':
      return pad4(values * 2);
    case 'int8':
      return nLayers * (kvDim * 4 + pad4(nTokens * kvDim) + nTokens * 4 + pad4(nTokens * kvDim));
  }
}

/** Exact encoded size of a record. */
export function chunkRecordBytes(nLayers: number, kvDim: number, nTokens: number, storage: KvStorageDtype): number {
  return HEADER_BYTES + nTokens * 4 + payloadBytes(nLayers, kvDim, nTokens, storage);
}

/**
 * MurmurHash3 x86_32 of `words` read as little-endian bytes. One multiply-rotate mix per word, so
 * it runs over many MB quickly, and unlike word-wise FNV it spreads every bit of a word across the
 * hash (two flips in the same bit of two words do not cancel). `seed` chains several regions.
 */
export function checksumWords(words: Uint32Array, seed = 0): number {
  let h = seed | 0;
  const n = words.length;
  for (let i = 0; i < n; i++) {
    let k = Math.imul(words[i], 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= n * 4;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const utf8 = new TextEncoder();

/** 64-bit FNV-1a of the fingerprint's UTF-8, as [lo, hi], in 32-bit halves (no BigInt). */
function fingerprintHash(fingerprint: string): [number, number] {
  let lo = 0x84222325;
  let hi = 0xcbf29ce4;
  for (const byte of utf8.encode(fingerprint)) {
    lo ^= byte;
    // h * 0x100000001b3 = h * 0x1b3 + (h << 40) mod 2^64; every partial product stays below 2^53.
    const loProd = (lo >>> 0) * 0x1b3;
    const carry = Math.floor(loProd / 0x100000000);
    hi = ((hi >>> 0) * 0x1b3 + carry + ((lo << 8) >>> 0)) >>> 0;
    lo = loProd >>> 0;
  }
  return [lo >>> 0, hi >>> 0];
}

/** The bytes at a 4-byte aligned offset, copied only when they are not (typed views need it). */
function aligned(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
}

const f32View = (b: Uint8Array, offset: number, n: number): Float32Array => new Float32Array(b.buffer, b.byteOffset + offset, n);
const u16View = (b: Uint8Array, offset: number, n: number): Uint16Array => new Uint16Array(b.buffer, b.byteOffset + offset, n);

/**
 * Symmetric int8 with one scale per channel (`perChannel`, for K) or per token (for V):
 * scale = absmax/127 as f32, q = round(x / scale); a zero scale gives zeros, never NaN.
 * x is (nTokens, kvDim); scales and q are written in place.
 */
function quantize(x: Float32Array, nTokens: number, kvDim: number, perChannel: boolean, scales: Float32Array, q: Int8Array): void {
  const nScales = perChannel ? kvDim : nTokens;
  const absmax = new Float32Array(nScales);
  for (let t = 0; t < nTokens; t++) {
    const row = t * kvDim;
    for (let c = 0; c < kvDim; c++) {
      const a = Math.abs(x[row + c]);
      const s = perChannel ? c : t;
      if (a > absmax[s]) absmax[s] = a;
    }
  }
  const inv = new Float64Array(nScales);
  for (let s = 0; s < nScales; s++) {
    scales[s] = absmax[s] / 127;
    // |x| * inv stays within 127 * (1 + 2^-23) even after the f32 rounding of the scale: no clamp needed.
    inv[s] = scales[s] > 0 ? 1 / scales[s] : 0;
  }
  for (let t = 0; t < nTokens; t++) {
    const row = t * kvDim;
    if (perChannel) {
      for (let c = 0; c < kvDim; c++) q[row + c] = Math.round(x[row + c] * inv[c]);
    } else {
      const r = inv[t];
      for (let c = 0; c < kvDim; c++) q[row + c] = Math.round(x[row + c] * r);
    }
  }
}

function dequantize(q: Int8Array, nTokens: number, kvDim: number, perChannel: boolean, scales: Float32Array, out: Float32Array): void {
  for (let t = 0; t < nTokens; t++) {
    const row = t * kvDim;
    if (perChannel) {
      for (let c = 0; c < kvDim; c++) out[row + c] = q[row + c] * scales[c];
    } else {
      const s = scales[t];
      for (let c = 0; c < kvDim; c++) out[row + c] = q[row + c] * s;
    }
  }
}

/**
 * Walks the int8 payload's sections: calls `section` for each layer's K (perChannel) and V with
 * the section's index in the rows (in values) and its scale and value views into `payload`.
 */
function forEachInt8Section(
  payload: Uint8Array,
  nLayers: number,
  kvDim: number,
  nTokens: number,
  section: (rowIndex: number, perChannel: boolean, scales: Float32Array, q: Int8Array) => void,
): void {
  const sectionValues = nTokens * kvDim;
  let offset = 0;
  for (let l = 0; l < nLayers; l++) {
    for (const perChannel of [true, false]) {
      const nScales = perChannel ? kvDim : nTokens;
      const scales = f32View(payload, offset, nScales);
      offset += nScales * 4;
      const q = new Int8Array(payload.buffer, payload.byteOffset + offset, sectionValues);
      offset += pad4(sectionValues);
      section((2 * l + (perChannel ? 0 : 1)) * sectionValues, perChannel, scales, q);
    }
  }
}

function checkShape(nLayers: number, kvDim: number): void {
  if (!Number.isInteger(nLayers) || nLayers < 1 || !Number.isInteger(kvDim) || kvDim < 1) {
    throw bad('shape', `nLayers (${nLayers}) and kvDim (${kvDim}) must be positive integers`);
  }
}

/**
 * Encodes a chunk's KV rows. `rows`: per layer K rows then V rows, (nTokens, kvDim) each, in
 * `rowsDtype` (f32: 4 bytes/value little-endian; f16: 2 bytes/value, the Uint16 halves).
 * Throws KVCacheError 'bad-chunk-data' (reason 'shape', 'tokens' or 'dtype') for rows that do not
 * match the shape, a token id that is not a u32, or an unknown dtype.
 */
export function encodeChunkRecord(shape: ChunkRecordShape, rows: Uint8Array, rowsDtype: KvDtype, storage: KvStorageDtype): Uint8Array {
  const { nLayers, kvDim, tokens } = shape;
  const nTokens = tokens.length;
  checkShape(nLayers, kvDim);
  const code = STORAGE_CODES.indexOf(storage);
  if (code < 0 || (rowsDtype !== 'f32' && rowsDtype !== 'f16')) throw bad('dtype', `unknown dtype (rows ${String(rowsDtype)}, storage ${String(storage)})`);
  const values = nLayers * 2 * nTokens * kvDim;
  const rowBytes = rowsDtype === 'f32' ? 4 : 2;
  if (rows.byteLength !== values * rowBytes) {
    throw bad('shape', `${rows.byteLength} bytes of ${rowsDtype} rows, expected ${values * rowBytes} for ${nLayers} layers × K,V × ${nTokens} tokens × ${kvDim}`);
  }

  const out = new Uint8Array(chunkRecordBytes(nLayers, kvDim, nTokens, storage));
  const words = new Uint32Array(out.buffer);
  const [hashLo, hashHi] = fingerprintHash(shape.modelFingerprint);
  words.set([MAGIC, CHUNK_RECORD_VERSION, code, nLayers, kvDim, nTokens, hashLo, hashHi, 0]);
  for (let i = 0; i < nTokens; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t > 0xffffffff) throw bad('tokens', `token ${i} is ${t}, not a u32`);
    words[HEADER_WORDS + i] = t;
  }

  const src = aligned(rows);
  const at = HEADER_BYTES + nTokens * 4;
  if (storage === rowsDtype) {
    out.set(src, at);
  } else if (storage === 'f16') {
    f32ToF16Bits(f32View(src, 0, values), u16View(out, at, values));
  } else if (storage === 'f32') {
    f16BitsToF32(u16View(src, 0, values), f32View(out, at, values));
  } else {
    const sectionValues = nTokens * kvDim;
    // f16 rows are widened one section at a time, so the scratch stays one (nTokens, kvDim) block.
    const scratch = rowsDtype === 'f16' ? new Float32Array(sectionValues) : undefined;
    forEachInt8Section(out.subarray(at), nLayers, kvDim, nTokens, (rowIndex, perChannel, scales, q) => {
      const x = scratch ? f16BitsToF32(u16View(src, rowIndex * 2, sectionValues), scratch) : f32View(src, rowIndex * 4, sectionValues);
      quantize(x, nTokens, kvDim, perChannel, scales, q);
    });
  }
  words[HEADER_WORDS - 1] = checksumWords(words.subarray(HEADER_WORDS));
  return out;
}

/**
 * Decodes a record back to rows in `want` dtype (layout as encodeChunkRecord's `rows`). Every field
 * is checked before anything is converted: the length, magic, version, dtype code, shape, model
 * hash, every token id and the checksum. Any mismatch throws KVCacheError('bad-chunk-data') with
 * `fields.reason` one of 'truncated' | 'magic' | 'version' | 'shape' | 'model' | 'tokens' |
 * 'checksum' | 'dtype'; a v1 record is a 'version' mismatch. When no conversion is needed the
 * result is a view of `bytes` (no copy).
 */
export function decodeChunkRecord(bytes: Uint8Array, expect: ChunkRecordShape, want: KvDtype): Uint8Array {
  if (want !== 'f32' && want !== 'f16') throw bad('dtype', `cannot decode to ${String(want)}`);
  if (bytes.byteLength < HEADER_BYTES) throw bad('truncated', `${bytes.byteLength} bytes, shorter than the ${HEADER_BYTES}-byte header`);
  const b = aligned(bytes);
  const head = new Uint32Array(b.buffer, b.byteOffset, HEADER_WORDS);
  if (head[0] !== MAGIC) throw bad('magic', `magic 0x${head[0].toString(16)} is not 'CLKV'`);
  if (head[1] !== CHUNK_RECORD_VERSION) throw bad('version', `format version ${head[1]}, this build reads ${CHUNK_RECORD_VERSION}`);
  const storage = STORAGE_CODES[head[2]];
  if (storage === undefined) throw bad('dtype', `unknown storage dtype code ${head[2]}`);
  const { nLayers, kvDim, tokens } = expect;
  const nTokens = tokens.length;
  if (head[3] !== nLayers || head[4] !== kvDim || head[5] !== nTokens) {
    throw bad('shape', `record holds ${head[3]} layers × ${head[5]} tokens × ${head[4]}, expected ${nLayers} × ${nTokens} × ${kvDim}`);
  }
  const size = chunkRecordBytes(nLayers, kvDim, nTokens, storage);
  if (b.byteLength !== size) throw bad('truncated', `${b.byteLength} bytes, expected ${size}`);
  const words = new Uint32Array(b.buffer, b.byteOffset, size / 4);
  const [hashLo, hashHi] = fingerprintHash(expect.modelFingerprint);
  if (words[6] !== hashLo || words[7] !== hashHi) throw bad('model', 'computed by another model (fingerprint hash differs)');
  for (let i = 0; i < nTokens; i++) {
    if (words[HEADER_WORDS + i] !== tokens[i]) throw bad('tokens', `token ${i} is ${words[HEADER_WORDS + i]}, expected ${tokens[i]}`);
  }
  if (checksumWords(words.subarray(HEADER_WORDS)) !== words[HEADER_WORDS - 1]) throw bad('checksum', 'checksum mismatch (a torn or corrupted write)');

  const values = nLayers * 2 * nTokens * kvDim;
  const at = HEADER_BYTES + nTokens * 4;
  if (storage === want) return b.subarray(at, at + values * (want === 'f32' ? 4 : 2));
  if (storage === 'f16') return new Uint8Array(f16BitsToF32(u16View(b, at, values)).buffer);
  if (storage === 'f32') return new Uint8Array(f32ToF16Bits(f32View(b, at, values)).buffer);

  const wide = new Float32Array(values);
  forEachInt8Section(b.subarray(at), nLayers, kvDim, nTokens, (rowIndex, perChannel, scales, q) => {
    dequantize(q, nTokens, kvDim, perChannel, scales, wide.subarray(rowIndex, rowIndex + nTokens * kvDim));
  });
  return new Uint8Array(want === 'f32' ? wide.buffer : f32ToF16Bits(wide).buffer);
}

/**
 * Header fields without checking the payload (for stats and inspection); undefined when the
 * bytes are not a chunk record this build knows (v1 records report storage 'f32').
 */
export function readChunkRecordHeader(
  bytes: Uint8Array,
): { version: number; storage: KvStorageDtype; nLayers: number; kvDim: number; nTokens: number } | undefined {
  if (bytes.byteLength < 24) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const word = (i: number): number => dv.getUint32(i * 4, true);
  if (word(0) !== MAGIC) return undefined;
  const version = word(1);
  // v1 (chunk-store.ts): magic, version, nLayers, kvDim, nTokens, checksum; always f32.
  if (version === 1) return { version, storage: 'f32', nLayers: word(2), kvDim: word(3), nTokens: word(4) };
  if (version !== CHUNK_RECORD_VERSION || bytes.byteLength < HEADER_BYTES) return undefined;
  const storage = STORAGE_CODES[word(2)];
  if (storage === undefined) return undefined;
  return { version, storage, nLayers: word(3), kvDim: word(4), nTokens: word(5) };
}
