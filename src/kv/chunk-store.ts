// Chunk KV outside the GPU: a versioned, checksummed byte format, and the store interface the
// engine writes chunks to and reads them back from (a folder on Node; IndexedDB in the browser).
import { KVCacheError } from '../errors.ts';

/** Where computed chunk KV is kept between engine instances and sessions. */
export interface ChunkStore {
  get(id: string): Promise<Uint8Array | undefined>;
  put(id: string, bytes: Uint8Array): Promise<void>;
}

const MAGIC = 0x564b4c43; // 'CLKV' little-endian
export const CHUNK_FORMAT_VERSION = 1;
const HEADER_WORDS = 6; // magic, version, nLayers, kvDim, nTokens, checksum

/** FNV-1a over the bytes: cheap, and enough to catch a torn or corrupted write. */
function checksum(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export interface ChunkRecord {
  nLayers: number;
  kvDim: number;
  tokens: number[];
  /** exportChunk's layout: per layer K rows then V rows, (nTokens, kvDim) f32 each. */
  kv: Uint8Array;
}

export function encodeChunk(r: ChunkRecord): Uint8Array {
  const head = new Uint32Array(HEADER_WORDS + r.tokens.length);
  head.set([MAGIC, CHUNK_FORMAT_VERSION, r.nLayers, r.kvDim, r.tokens.length, 0]);
  head.set(r.tokens, HEADER_WORDS);
  const out = new Uint8Array(head.byteLength + r.kv.byteLength);
  out.set(new Uint8Array(head.buffer), 0);
  out.set(r.kv, head.byteLength);
  // The checksum covers the token ids and the KV (everything after the header words).
  new DataView(out.buffer).setUint32(20, checksum(out.subarray(HEADER_WORDS * 4)), true);
  return out;
}

/** Reads a stored chunk back; any mismatch is a KVCacheError, never a silent partial read. */
export function decodeChunk(bytes: Uint8Array, expect: { nLayers: number; kvDim: number; tokens: readonly number[] }): Uint8Array {
  const bad = (why: string) => new KVCacheError('bad-chunk-data', `stored chunk KV is unusable: ${why}`);
  if (bytes.byteLength < HEADER_WORDS * 4) throw bad('shorter than its header');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const word = (i: number) => dv.getUint32(i * 4, true);
  if (word(0) !== MAGIC) throw bad('wrong magic');
  if (word(1) !== CHUNK_FORMAT_VERSION) throw bad(`format version ${word(1)}, expected ${CHUNK_FORMAT_VERSION}`);
  const n = word(4);
  if (word(2) !== expect.nLayers || word(3) !== expect.kvDim || n !== expect.tokens.length) throw bad('shape differs from this model and chunk');
  const kvBytes = expect.nLayers * 2 * n * expect.kvDim * 4;
  if (bytes.byteLength !== (HEADER_WORDS + n) * 4 + kvBytes) throw bad(`${bytes.byteLength} bytes, expected ${(HEADER_WORDS + n) * 4 + kvBytes}`);
  for (let i = 0; i < n; i++) if (word(HEADER_WORDS + i) !== expect.tokens[i]) throw bad('token ids differ');
  if (checksum(bytes.subarray(HEADER_WORDS * 4)) !== word(5)) throw bad('checksum mismatch');
  return bytes.subarray((HEADER_WORDS + n) * 4);
}
