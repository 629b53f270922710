import { describe, expect, it } from 'vitest';
import { KVCacheError, StorageError } from '../../src/errors.ts';
import { checksumWords, decodeChunkRecord, encodeChunkRecord, type ChunkRecordShape } from '../../src/kv/chunk-record.ts';
import { decodeKvPack, encodeKvPack, KVPACK_VERSION } from '../../src/kv/kvpack.ts';
import { DOCUMENT_MANIFEST_VERSION, type DocumentManifest } from '../../src/kv/store.ts';

const FINGERPRINT = 'synthetic-gqa2:0123456789abcdef';
const idOf = (n: number): string => n.toString(16).padStart(2, '0').repeat(32);

function manifestOf(chunkIds: string[]): DocumentManifest {
  return {
    version: DOCUMENT_MANIFEST_VERSION,
    id: 'doc-1',
    title: 'Notes — 日本語 ✓',
    text: 'First paragraph.\n\nSecond: emoji 🧪 and "quotes".',
    textHash: 'ab'.repeat(32),
    modelFingerprint: FINGERPRINT,
    settings: { bosPrefix: true, maxChunkTokens: 128, kv: 'f16' },
    // The first chunk was computed after a lead-in (context); the others without one.
    chunks: chunkIds.map((id, i) => ({ id, tokens: [i + 1, 2, 3], ...(i === 0 ? { context: [1, 9] } : {}), start: i * 10, end: i * 10 + 9, bytes: 0 })),
    tokens: chunkIds.length * 3,
    bytes: 0,
    createdAt: 1_700_000_000_000,
    lastUsedAt: 1_700_000_000_500,
    pinned: false,
  };
}

/** Records of awkward lengths (not multiples of 8 or 4), filled with a recognizable pattern. */
function recordsOf(ids: string[]): Map<string, Uint8Array> {
  return new Map(ids.map((id, i) => [id, Uint8Array.from({ length: 13 + 7 * i }, (_, j) => (j * 31 + i) & 0xff)]));
}

/**
 * A pack built from the documented layout alone (independent of encodeKvPack), so tests can make
 * inconsistent packs with a valid checksum.
 */
function buildPack(json: Uint8Array, entries: [string, Uint8Array][], trailing = 0): Uint8Array {
  const pad8 = (n: number): number => Math.ceil(n / 8) * 8;
  const indexAt = 24 + pad8(json.byteLength);
  const indexEnd = indexAt + entries.length * 48;
  let end = indexEnd;
  const offsets = entries.map(([, r]) => {
    const at = pad8(end);
    end = at + r.byteLength;
    return at;
  });
  const out = new Uint8Array(pad8(end) + trailing);
  const dv = new DataView(out.buffer);
  [0x504b4c43, KVPACK_VERSION, json.byteLength, entries.length].forEach((w, i) => dv.setUint32(i * 4, w, true));
  out.set(json, 24);
  entries.forEach(([id, r], i) => {
    const at = indexAt + i * 48;
    for (let j = 0; j < 32; j++) out[at + j] = parseInt(id.slice(2 * j, 2 * j + 2), 16);
    dv.setUint32(at + 32, offsets[i], true);
    dv.setUint32(at + 40, r.byteLength, true);
    out.set(r, offsets[i]);
  });
  const words = new Uint32Array(out.buffer, 0, indexEnd / 4);
  dv.setUint32(16, checksumWords(words.subarray(5), checksumWords(words.subarray(0, 4))), true);
  return out.subarray(0, end + trailing);
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).code).toBe('bad-pack');
    return String((err as StorageError).fields.reason);
  }
  throw new Error('expected a StorageError, but the pack decoded');
}

describe('kvpack', () => {
  const ids = [idOf(1), idOf(2), idOf(0xfe)];
  // A chunk repeated in the document: one record serves both mentions.
  const manifest = manifestOf([ids[0], ids[1], ids[0], ids[2]]);
  const records = recordsOf(ids);
  const pack = encodeKvPack(manifest, records);

  it('round-trips the manifest and every record, records 8-byte aligned and copied out', () => {
    const back = decodeKvPack(pack);
    expect(back.manifest).toEqual(manifest);
    expect([...back.records.keys()].sort()).toEqual([...ids].sort());
    for (const id of ids) {
      const r = back.records.get(id)!;
      expect(r).toEqual(records.get(id));
      expect(r.byteOffset).toBe(0);
      expect(r.buffer.byteLength).toBe(r.byteLength);
    }
    const dv = new DataView(pack.buffer, pack.byteOffset, pack.byteLength);
    const indexAt = 24 + Math.ceil(dv.getUint32(8, true) / 8) * 8;
    for (let i = 0; i < ids.length; i++) expect(dv.getUint32(indexAt + i * 48 + 32, true) % 8).toBe(0);
    // The documented layout, built independently, gives the same bytes.
    expect(buildPack(utf8(JSON.stringify(manifest)), [ids[0], ids[1], ids[2]].map((id) => [id, records.get(id)!]))).toEqual(pack);
  });

  it('round-trips a document without chunks, and reads from an unaligned offset', () => {
    const empty = manifestOf([]);
    expect(decodeKvPack(encodeKvPack(empty, new Map()))).toEqual({ manifest: empty, records: new Map() });
    const shifted = new Uint8Array(pack.byteLength + 1);
    shifted.set(pack, 1);
    expect(decodeKvPack(shifted.subarray(1)).manifest).toEqual(manifest);
  });

  it('carries real chunk records, whose own checksum catches a damaged payload', () => {
    const shape: ChunkRecordShape = { nLayers: 2, kvDim: 6, tokens: [5, 6, 7], modelFingerprint: FINGERPRINT };
    const rows = new Uint8Array(Float32Array.from({ length: 2 * 2 * 3 * 6 }, (_, i) => Math.sin(i)).buffer);
    const record = encodeChunkRecord(shape, rows, 'f32', 'int8');
    const m = manifestOf([ids[0]]);
    const packed = encodeKvPack(m, new Map([[ids[0], record]]));
    expect(decodeChunkRecord(decodeKvPack(packed).records.get(ids[0])!, shape, 'f32')).toEqual(decodeChunkRecord(record, shape, 'f32'));
    const damaged = packed.slice();
    damaged[damaged.byteLength - 5] ^= 0x40;
    const got = decodeKvPack(damaged).records.get(ids[0])!;
    expect(() => decodeChunkRecord(got, shape, 'f32')).toThrow(KVCacheError);
  });

  it('names each kind of damage', () => {
    const set = (at: number, value: number): Uint8Array => {
      const copy = pack.slice();
      new DataView(copy.buffer).setUint32(at, value, true);
      return copy;
    };
    expect(reasonOf(() => decodeKvPack(set(0, 0x564b4c43)))).toBe('magic');
    expect(reasonOf(() => decodeKvPack(set(4, 2)))).toBe('version');
    expect(reasonOf(() => decodeKvPack(set(16, new DataView(pack.buffer).getUint32(16, true) ^ 1)))).toBe('checksum');
    expect(reasonOf(() => decodeKvPack(set(20, 1)))).toBe('checksum');
    const flip = (at: number): Uint8Array => {
      const copy = pack.slice();
      copy[at] ^= 0x02;
      return copy;
    };
    expect(reasonOf(() => decodeKvPack(flip(30)))).toBe('checksum'); // in the JSON
    const indexAt = 24 + Math.ceil(new DataView(pack.buffer).getUint32(8, true) / 8) * 8;
    expect(reasonOf(() => decodeKvPack(flip(indexAt + 5)))).toBe('checksum'); // an id in the index
    expect(reasonOf(() => decodeKvPack(flip(indexAt + 48 + 32)))).toBe('checksum'); // an offset
    expect(reasonOf(() => decodeKvPack(set(12, 1000)))).toBe('truncated'); // count past the end
    expect(reasonOf(() => decodeKvPack(pack.subarray(0, pack.byteLength - 1)))).toBe('truncated');
    const longer = new Uint8Array(pack.byteLength + 8);
    longer.set(pack);
    expect(reasonOf(() => decodeKvPack(longer))).toBe('truncated');

    const entries = ids.map((id): [string, Uint8Array] => [id, records.get(id)!]);
    const json = utf8(JSON.stringify(manifest));
    expect(decodeKvPack(buildPack(json, entries)).manifest).toEqual(manifest);
    expect(reasonOf(() => decodeKvPack(buildPack(json, entries.slice(0, 2))))).toBe('missing-chunk');
    expect(reasonOf(() => decodeKvPack(buildPack(json, [...entries, [idOf(9), new Uint8Array(4)]])))).toBe('extra-chunk');
    expect(reasonOf(() => decodeKvPack(buildPack(json, [...entries, entries[1]])))).toBe('extra-chunk');
    expect(reasonOf(() => decodeKvPack(buildPack(json, entries, 3)))).toBe('truncated');
    expect(reasonOf(() => decodeKvPack(buildPack(utf8('{"id": "doc-1",'), [])))).toBe('json');
    expect(reasonOf(() => decodeKvPack(buildPack(Uint8Array.of(0x7b, 0xff, 0x7d), [])))).toBe('json');
    expect(reasonOf(() => decodeKvPack(buildPack(utf8('[]'), [])))).toBe('json');
  });

  it('refuses manifests whose fields are missing or of the wrong type', () => {
    const variants: Record<string, unknown>[] = [
      { pinned: 'no' },
      { title: 3 },
      { createdAt: '2024' },
      { tokens: Number.NaN },
      { settings: { a: { nested: true } } },
      { settings: null },
      { chunks: {} },
      { chunks: [{ ...manifest.chunks[0], id: 'ABC' }] },
      { chunks: [{ ...manifest.chunks[0], id: idOf(0xab).toUpperCase() }] },
      { chunks: [{ ...manifest.chunks[0], tokens: [1, -2] }] },
      { chunks: [{ ...manifest.chunks[0], context: [1, 'a'] }] },
      { chunks: [{ ...manifest.chunks[0], start: '0' }] },
      { chunks: [null] },
    ];
    for (const v of variants) {
      const json = utf8(JSON.stringify({ ...manifest, ...v }));
      expect(reasonOf(() => decodeKvPack(buildPack(json, []))), JSON.stringify(v)).toBe('json');
    }
    const { modelFingerprint: _, ...withoutFingerprint } = manifest;
    expect(reasonOf(() => decodeKvPack(buildPack(utf8(JSON.stringify(withoutFingerprint)), [])))).toBe('json');
  });

  it('refuses to pack records that do not match the manifest', () => {
    expect(reasonOf(() => encodeKvPack(manifest, recordsOf(ids.slice(0, 2))))).toBe('missing-chunk');
    expect(reasonOf(() => encodeKvPack(manifest, recordsOf([...ids, idOf(7)])))).toBe('extra-chunk');
    expect(reasonOf(() => encodeKvPack({ ...manifest, pinned: 1 as unknown as boolean }, records))).toBe('json');
  });

  it('throws only StorageError for a pack cut at any point or with any header byte flipped', () => {
    for (let len = 0; len < pack.byteLength; len++) {
      expect(() => decodeKvPack(pack.subarray(0, len)), `cut at ${len}`).toThrow(StorageError);
    }
    const indexEnd = 24 + Math.ceil(new DataView(pack.buffer).getUint32(8, true) / 8) * 8 + ids.length * 48;
    for (let at = 0; at < indexEnd; at++) {
      for (const bit of [0x01, 0x80]) {
        const copy = pack.slice();
        copy[at] ^= bit;
        expect(() => decodeKvPack(copy), `byte ${at} ^ ${bit}`).toThrow(StorageError);
      }
    }
  });
});
