// The .kvpack file: one document's manifest and its chunk records, to move a read document
// between browsers or machines without computing its KV again.
//
// Layout (little-endian u32 words):
//   0   magic 'CLKP', version 1, JSON byte length, record count, checksum, reserved (0)
//   24  the manifest as UTF-8 JSON, zero-padded to 8 bytes
//       index: per record 48 bytes: the id as 32 bytes (its 64 hex digits), offset (u64 as lo, hi),
//       length (u64 as lo, hi); offsets are from the start of the file
//       records, each at an 8-byte aligned offset, in index order; the file ends with the last one
// The checksum is checksumWords (MurmurHash3) of the header (without its checksum word), the JSON
// and the index. Records are not covered: each carries its own checksum (chunk-record.ts).
import { StorageError } from '../errors.ts';
import { checksumWords } from './chunk-record.ts';
import type { DocumentManifest } from './store.ts';

export const KVPACK_VERSION = 1;

export type KvPackBadReason = 'magic' | 'version' | 'truncated' | 'checksum' | 'json' | 'missing-chunk' | 'extra-chunk';

const MAGIC = 0x504b4c43; // 'CLKP' little-endian
const HEADER_BYTES = 24;
const INDEX_ENTRY_BYTES = 48;
const CHECKSUM_WORD = 4;
const ID_HEX = /^[0-9a-f]{64}$/;

function bad(reason: KvPackBadReason, why: string): StorageError {
  return new StorageError('bad-pack', `this .kvpack cannot be used (${reason}): ${why}; export the document again from where it was read`, { reason });
}

const pad8 = (n: number): number => Math.ceil(n / 8) * 8;

/** Header (without its checksum word), JSON and index, chained so the checksum word is skipped. */
function packChecksum(words: Uint32Array, indexEnd: number): number {
  return checksumWords(words.subarray(CHECKSUM_WORD + 1, indexEnd / 4), checksumWords(words.subarray(0, CHECKSUM_WORD)));
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isTokenIds = (v: unknown): boolean => Array.isArray(v) && v.every((t: unknown) => Number.isInteger(t) && (t as number) >= 0 && (t as number) <= 0xffffffff);
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Why `v` is not a DocumentManifest, or undefined when it is one (unknown extra fields are kept). */
function manifestProblem(v: unknown): string | undefined {
  if (!isRecord(v)) return 'the manifest is not an object';
  for (const key of ['id', 'title', 'text', 'textHash', 'modelFingerprint'] as const) {
    if (typeof v[key] !== 'string') return `manifest field '${key}' is not a string`;
  }
  for (const key of ['version', 'tokens', 'bytes', 'createdAt', 'lastUsedAt'] as const) {
    if (!isNumber(v[key])) return `manifest field '${key}' is not a number`;
  }
  if (typeof v.pinned !== 'boolean') return "manifest field 'pinned' is not a boolean";
  if (!isRecord(v.settings)) return "manifest field 'settings' is not an object";
  for (const [key, s] of Object.entries(v.settings)) {
    if (typeof s !== 'string' && typeof s !== 'boolean' && !isNumber(s)) return `setting '${key}' is not a string, number or boolean`;
  }
  if (!Array.isArray(v.chunks)) return "manifest field 'chunks' is not an array";
  for (let i = 0; i < v.chunks.length; i++) {
    const c: unknown = v.chunks[i];
    if (!isRecord(c)) return `chunk ${i} is not an object`;
    if (typeof c.id !== 'string' || !ID_HEX.test(c.id)) return `chunk ${i}'s id is not 64 lowercase hex digits`;
    if (!isNumber(c.start) || !isNumber(c.end) || !isNumber(c.bytes)) return `chunk ${i}'s start, end or bytes is not a number`;
    if (!isTokenIds(c.tokens)) return `chunk ${i}'s tokens are not u32 token ids`;
    if (c.context !== undefined && !isTokenIds(c.context)) return `chunk ${i}'s context is not u32 token ids`;
  }
  return undefined;
}

function idToBytes(id: string, out: Uint8Array): void {
  for (let i = 0; i < 32; i++) out[i] = parseInt(id.slice(2 * i, 2 * i + 2), 16);
}

function bytesToId(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < 32; i++) s += b[i].toString(16).padStart(2, '0');
  return s;
}

/** Every distinct chunk id the manifest names, in the order it first names them. */
const namedIds = (m: DocumentManifest): string[] => [...new Set(m.chunks.map((c) => c.id))];

/**
 * Packs a manifest with the record of every chunk it names (records are copied as they are).
 * Throws StorageError 'bad-pack' with reason 'json' for a malformed manifest, 'missing-chunk' for
 * a named chunk without a record and 'extra-chunk' for a record the manifest does not name.
 */
export function encodeKvPack(manifest: DocumentManifest, records: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const problem = manifestProblem(manifest);
  if (problem) throw bad('json', problem);
  const ids = namedIds(manifest);
  const missing = ids.filter((id) => !records.has(id));
  if (missing.length > 0) throw bad('missing-chunk', `${missing.length} chunk(s) the manifest names have no record (first ${missing[0]})`);
  if (records.size !== ids.length) {
    const named = new Set(ids);
    const extra = [...records.keys()].find((id) => !named.has(id));
    throw bad('extra-chunk', `record ${extra} is not named by the manifest`);
  }

  const json = new TextEncoder().encode(JSON.stringify(manifest));
  const indexAt = HEADER_BYTES + pad8(json.byteLength);
  const indexEnd = indexAt + ids.length * INDEX_ENTRY_BYTES;
  const offsets: number[] = [];
  let end = indexEnd;
  for (const id of ids) {
    offsets.push(end);
    end = pad8(end + records.get(id)!.byteLength);
  }
  const size = ids.length > 0 ? offsets[ids.length - 1] + records.get(ids[ids.length - 1])!.byteLength : indexEnd;

  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  const words = new Uint32Array(out.buffer, 0, Math.floor(size / 4));
  words.set([MAGIC, KVPACK_VERSION, json.byteLength, ids.length, 0, 0]);
  out.set(json, HEADER_BYTES);
  ids.forEach((id, i) => {
    const at = indexAt + i * INDEX_ENTRY_BYTES;
    const record = records.get(id)!;
    idToBytes(id, out.subarray(at, at + 32));
    dv.setUint32(at + 32, offsets[i] % 2 ** 32, true);
    dv.setUint32(at + 36, Math.floor(offsets[i] / 2 ** 32), true);
    dv.setUint32(at + 40, record.byteLength % 2 ** 32, true);
    dv.setUint32(at + 44, Math.floor(record.byteLength / 2 ** 32), true);
    out.set(record, offsets[i]);
  });
  words[CHECKSUM_WORD] = packChecksum(words, indexEnd);
  return out;
}

/**
 * Reads a .kvpack back. The header, JSON and index are checked (checksum, manifest shape, every
 * named chunk present and nothing else) before anything is returned; records come back as copies,
 * unchecked (decodeChunkRecord checks each against its own checksum). Every failure is a
 * StorageError 'bad-pack' with `fields.reason`: 'magic' | 'version' | 'truncated' (the length
 * does not match the index) | 'checksum' | 'json' | 'missing-chunk' | 'extra-chunk'.
 */
export function decodeKvPack(bytes: Uint8Array): { manifest: DocumentManifest; records: Map<string, Uint8Array> } {
  if (bytes.byteLength < HEADER_BYTES) throw bad('truncated', `${bytes.byteLength} bytes, shorter than the ${HEADER_BYTES}-byte header`);
  // Word views need a 4-byte aligned start; a File's arrayBuffer() always has one.
  const b = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const word = (i: number): number => dv.getUint32(i * 4, true);
  if (word(0) !== MAGIC) throw bad('magic', 'this is not a .kvpack file');
  if (word(1) !== KVPACK_VERSION) throw bad('version', `pack version ${word(1)}, this build reads ${KVPACK_VERSION}`);
  const jsonLength = word(2);
  const count = word(3);
  const indexAt = HEADER_BYTES + pad8(jsonLength);
  const indexEnd = indexAt + count * INDEX_ENTRY_BYTES;
  if (indexEnd > b.byteLength) throw bad('truncated', `${b.byteLength} bytes, shorter than its manifest and index (${indexEnd})`);
  const words = new Uint32Array(b.buffer, b.byteOffset, indexEnd / 4);
  if (packChecksum(words, indexEnd) !== word(CHECKSUM_WORD)) throw bad('checksum', 'the manifest or index is damaged (checksum mismatch)');

  let manifest: unknown;
  try {
    manifest = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(HEADER_BYTES, HEADER_BYTES + jsonLength)));
  } catch (err) {
    throw bad('json', `the manifest is not UTF-8 JSON (${(err as Error).message})`);
  }
  const problem = manifestProblem(manifest);
  if (problem) throw bad('json', problem);
  const m = manifest as DocumentManifest;

  const spans = new Map<string, [number, number]>();
  let end = indexEnd;
  for (let i = 0; i < count; i++) {
    const at = indexAt + i * INDEX_ENTRY_BYTES;
    const id = bytesToId(b.subarray(at, at + 32));
    const offset = dv.getUint32(at + 32, true) + dv.getUint32(at + 36, true) * 2 ** 32;
    const length = dv.getUint32(at + 40, true) + dv.getUint32(at + 44, true) * 2 ** 32;
    if (offset < indexEnd || offset + length > b.byteLength) throw bad('truncated', `record ${i} (${offset}+${length}) lies outside the ${b.byteLength}-byte file`);
    if (spans.has(id)) throw bad('extra-chunk', `record ${id} is in the pack twice`);
    spans.set(id, [offset, length]);
    end = Math.max(end, offset + length);
  }
  if (end !== b.byteLength) throw bad('truncated', `${b.byteLength} bytes, but its last record ends at ${end}`);

  const ids = namedIds(m);
  const missing = ids.filter((id) => !spans.has(id));
  if (missing.length > 0) throw bad('missing-chunk', `${missing.length} chunk(s) the manifest names are not in the pack (first ${missing[0]})`);
  if (spans.size !== ids.length) {
    const named = new Set(ids);
    const extra = [...spans.keys()].find((id) => !named.has(id));
    throw bad('extra-chunk', `record ${extra} is not named by the manifest`);
  }
  // Copies, not views: a view stored in IndexedDB would structured-clone the whole pack's buffer.
  const records = new Map<string, Uint8Array>();
  for (const id of ids) {
    const [offset, length] = spans.get(id)!;
    records.set(id, b.slice(offset, offset + length));
  }
  return { manifest: m, records };
}
