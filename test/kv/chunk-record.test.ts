import { xorshift32 } from '../../src/random.ts';
import { describe, expect, it } from 'vitest';
import { KVCacheError } from '../../src/errors.ts';
import {
  CHUNK_RECORD_VERSION,
  chunkRecordBytes,
  decodeChunkRecord,
  encodeChunkRecord,
  readChunkRecordHeader,
  type ChunkRecordShape,
  type KvDtype,
  type KvStorageDtype,
} from '../../src/kv/chunk-record.ts';
import { encodeChunk } from '../../src/kv/chunk-store.ts';
import { f16BitsToF32, f32ToF16Bits } from '../../src/kv/f16.ts';

const ROWS: readonly KvDtype[] = ['f32', 'f16'];
const STORAGE: readonly KvStorageDtype[] = ['f32', 'f16', 'int8'];
const FINGERPRINT = 'synthetic-gqa2:0123456789abcdef';

/** xorshift32 values in [-1, 1), reproducible per seed. */
function random(seed: number): () => number {
  const next = xorshift32(seed);
  return () => next() / 2 ** 31 - 1;
}

function shapeOf(nLayers: number, kvDim: number, nTokens: number, seed = 1): ChunkRecordShape {
  const next = random(seed + 99);
  return { nLayers, kvDim, tokens: Array.from({ length: nTokens }, () => Math.floor((next() + 1) * 2 ** 31)), modelFingerprint: FINGERPRINT };
}

/**
 * Rows in f32 whose magnitudes vary by channel and by token over several decades, so per-channel
 * (K) and per-token (V) scales differ a lot from one global scale.
 */
function randomRows(shape: ChunkRecordShape, seed: number): Float32Array {
  const { nLayers, kvDim } = shape;
  const n = shape.tokens.length;
  const next = random(seed);
  const x = new Float32Array(nLayers * 2 * n * kvDim);
  for (let i = 0; i < x.length; i++) {
    const c = i % kvDim;
    const t = Math.floor(i / kvDim) % n;
    x[i] = next() * 10 ** ((c % 5) - 2) * 10 ** ((t % 3) - 1);
  }
  return x;
}

const bytesOf = (a: Float32Array | Uint16Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const asF32 = (b: Uint8Array): Float32Array => new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
const asU16 = (b: Uint8Array): Uint16Array => new Uint16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
const pad4 = (n: number): number => Math.ceil(n / 4) * 4;

/** The int8 payload's scales and values, read with the layout the format documents. */
function int8Sections(record: Uint8Array, shape: ChunkRecordShape): { scales: Float32Array; q: Int8Array; perChannel: boolean }[] {
  const n = shape.tokens.length;
  const d = shape.kvDim;
  const copy = record.slice();
  let offset = 36 + 4 * n;
  const out: { scales: Float32Array; q: Int8Array; perChannel: boolean }[] = [];
  for (let l = 0; l < shape.nLayers; l++) {
    for (const perChannel of [true, false]) {
      const nScales = perChannel ? d : n;
      const scales = new Float32Array(copy.buffer, offset, nScales);
      offset += nScales * 4;
      out.push({ scales, q: new Int8Array(copy.buffer, offset, n * d), perChannel });
      offset += pad4(n * d);
    }
  }
  expect(offset).toBe(record.byteLength);
  return out;
}

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KVCacheError);
    const e = err as KVCacheError;
    expect(e.code).toBe('bad-chunk-data');
    return String(e.fields.reason);
  }
  throw new Error('expected a KVCacheError, but the record decoded');
}

// Awkward sizes: odd kvDim and token counts leave f16 and int8 sections off word boundaries.
const SHAPES: [number, number, number][] = [
  [3, 36, 7],
  [2, 35, 5],
  [1, 1, 1],
  [4, 6, 3],
  [2, 64, 17],
  [1, 8, 0],
];

describe('chunk record v2', () => {
  for (const [nLayers, kvDim, nTokens] of SHAPES) {
    for (const rowsDtype of ROWS) {
      for (const storage of STORAGE) {
        it(`round-trips ${rowsDtype} rows stored as ${storage} (${nLayers} layers × ${nTokens} tokens × ${kvDim})`, () => {
          const shape = shapeOf(nLayers, kvDim, nTokens, kvDim);
          const x32 = randomRows(shape, nLayers * 1000 + kvDim * 10 + nTokens);
          const x16 = f32ToF16Bits(x32);
          // What the pool holds, widened to f32: every later step is judged against this.
          const src = rowsDtype === 'f32' ? x32 : f16BitsToF32(x16);
          const record = encodeChunkRecord(shape, rowsDtype === 'f32' ? bytesOf(x32) : bytesOf(x16), rowsDtype, storage);
          expect(record.byteLength).toBe(chunkRecordBytes(nLayers, kvDim, nTokens, storage));
          expect(readChunkRecordHeader(record)).toEqual({ version: CHUNK_RECORD_VERSION, storage, nLayers, kvDim, nTokens });

          const out32 = asF32(decodeChunkRecord(record, shape, 'f32'));
          const out16 = asU16(decodeChunkRecord(record, shape, 'f16'));
          expect(out32.length).toBe(src.length);
          expect(out16.length).toBe(src.length);
          if (storage === 'f32') {
            // Exact: f32 storage keeps the pool's values bit for bit (f16 rows widen exactly).
            expect(out32).toEqual(src);
          } else if (storage === 'f16') {
            // Exactly the f16 rounding of the pool's values.
            expect(out32).toEqual(f16BitsToF32(f32ToF16Bits(src)));
          } else {
            // int8: each value within half its own scale (plus the f32 rounding of q * scale).
            const sections = int8Sections(record, shape);
            const sectionValues = nTokens * kvDim;
            let worst = 0;
            sections.forEach(({ scales, q, perChannel }, s) => {
              const base = s * sectionValues;
              // Per-channel scales for K, per-token scales for V, each absmax/127 over its own values.
              for (let k = 0; k < scales.length; k++) {
                let absmax = 0;
                for (let j = 0; j < (perChannel ? nTokens : kvDim); j++) {
                  const i = perChannel ? j * kvDim + k : k * kvDim + j;
                  absmax = Math.max(absmax, Math.abs(src[base + i]));
                }
                expect(scales[k]).toBe(Math.fround(absmax / 127));
              }
              for (let i = 0; i < sectionValues; i++) {
                const scale = perChannel ? scales[i % kvDim] : scales[Math.floor(i / kvDim)];
                const err = Math.abs(out32[base + i] - src[base + i]);
                expect(Math.abs(q[i])).toBeLessThanOrEqual(127);
                expect(out32[base + i]).toBe(Math.fround(q[i] * scale));
                worst = Math.max(worst, err / (scale / 2 + Math.abs(src[base + i]) * 2 ** -23 + 1e-45));
              }
            });
            expect(worst).toBeLessThanOrEqual(1);
          }
          // Asking for f16 is the f16 rounding of what f32 would have given.
          expect(out16).toEqual(f32ToF16Bits(out32));
        });
      }
    }
  }

  it('reads a record from an unaligned offset and encodes unaligned rows', () => {
    const shape = shapeOf(2, 35, 5);
    const x = randomRows(shape, 7);
    const rows = new Uint8Array(x.byteLength + 1);
    rows.set(bytesOf(x), 1);
    for (const storage of STORAGE) {
      const record = encodeChunkRecord(shape, rows.subarray(1), 'f32', storage);
      const shifted = new Uint8Array(record.byteLength + 3);
      shifted.set(record, 3);
      expect(decodeChunkRecord(shifted.subarray(3), shape, 'f32')).toEqual(decodeChunkRecord(record, shape, 'f32'));
    }
  });

  it('gives zeros for zero rows, and a zero channel or token among others stays zero', () => {
    const shape = shapeOf(2, 12, 5);
    for (const storage of STORAGE) {
      const record = encodeChunkRecord(shape, new Uint8Array(2 * 2 * 5 * 12 * 4), 'f32', storage);
      const out = asF32(decodeChunkRecord(record, shape, 'f32'));
      expect(out.every((v) => Object.is(v, 0))).toBe(true);
    }
    const x = randomRows(shape, 3);
    const section = 5 * 12;
    for (let t = 0; t < 5; t++) x[t * 12 + 4] = 0; // layer 0 K: channel 4 all zero
    x.fill(0, section + 2 * 12, section + 3 * 12); // layer 0 V: token 2 all zero
    const out = asF32(decodeChunkRecord(encodeChunkRecord(shape, bytesOf(x), 'f32', 'int8'), shape, 'f32'));
    expect(out.some(Number.isNaN)).toBe(false);
    for (let t = 0; t < 5; t++) expect(out[t * 12 + 4]).toBe(0);
    expect(Array.from(out.subarray(section + 2 * 12, section + 3 * 12))).toEqual(new Array(12).fill(0));
  });

  it('sizes a token at half the bytes in f16 and about a quarter in int8', () => {
    const [nLayers, kvDim, n] = [24, 128, 256];
    const perToken = (s: KvStorageDtype): number => (chunkRecordBytes(nLayers, kvDim, n, s) - 36) / n;
    expect(perToken('f32')).toBe(nLayers * 2 * kvDim * 4 + 4);
    expect(perToken('f16') / perToken('f32')).toBeCloseTo(0.5, 2);
    // int8 is a quarter plus one f32 scale per channel of K and per token of V, per layer.
    expect(perToken('int8')).toBe(nLayers * 2 * kvDim + 4 + (nLayers * (kvDim + n) * 4) / n);
    expect(perToken('int8') / perToken('f32')).toBeGreaterThan(0.25);
    expect(perToken('int8') / perToken('f32')).toBeLessThan(0.27);
  });

  describe('detects every corruption before converting anything', () => {
    const shape = shapeOf(3, 36, 7);
    const rows = bytesOf(randomRows(shape, 11));
    const records = Object.fromEntries(STORAGE.map((s) => [s, encodeChunkRecord(shape, rows, 'f32', s)])) as Record<KvStorageDtype, Uint8Array>;
    const payloadAt = 36 + 4 * 7;
    const edit = (record: Uint8Array, at: number, value: number): Uint8Array => {
      const copy = record.slice();
      copy[at] = value;
      return copy;
    };
    const setWord = (record: Uint8Array, word: number, value: number): Uint8Array => {
      const copy = record.slice();
      new DataView(copy.buffer).setUint32(word * 4, value, true);
      return copy;
    };

    for (const storage of STORAGE) {
      const record = records[storage];
      it(`${storage}: payload flips, the checksum word itself → checksum`, () => {
        for (const at of [payloadAt, payloadAt + 1, Math.floor((payloadAt + record.byteLength) / 2), record.byteLength - 1]) {
          expect(reasonOf(() => decodeChunkRecord(edit(record, at, record[at] ^ 0x10), shape, 'f32'))).toBe('checksum');
        }
        expect(reasonOf(() => decodeChunkRecord(edit(record, 32, record[32] ^ 1), shape, 'f16'))).toBe('checksum');
      });

      it(`${storage}: token ids, model, shape, length, magic, version, dtype`, () => {
        expect(reasonOf(() => decodeChunkRecord(edit(record, 36 + 4 * 3, record[36 + 4 * 3] ^ 1), shape, 'f32'))).toBe('tokens');
        expect(reasonOf(() => decodeChunkRecord(record, { ...shape, tokens: shape.tokens.map((t, i) => (i === 6 ? t + 1 : t)) }, 'f32'))).toBe('tokens');
        expect(reasonOf(() => decodeChunkRecord(record, { ...shape, modelFingerprint: `${FINGERPRINT}x` }, 'f32'))).toBe('model');
        expect(reasonOf(() => decodeChunkRecord(setWord(record, 7, 0), shape, 'f32'))).toBe('model');
        expect(reasonOf(() => decodeChunkRecord(record, { ...shape, nLayers: 2 }, 'f32'))).toBe('shape');
        expect(reasonOf(() => decodeChunkRecord(record, { ...shape, kvDim: 35 }, 'f32'))).toBe('shape');
        expect(reasonOf(() => decodeChunkRecord(record, { ...shape, tokens: shape.tokens.slice(1) }, 'f32'))).toBe('shape');
        for (const len of [0, 8, 35, 36, payloadAt, record.byteLength - 4, record.byteLength - 1]) {
          expect(reasonOf(() => decodeChunkRecord(record.subarray(0, len), shape, 'f32'))).toBe('truncated');
        }
        const longer = new Uint8Array(record.byteLength + 4);
        longer.set(record);
        expect(reasonOf(() => decodeChunkRecord(longer, shape, 'f32'))).toBe('truncated');
        expect(reasonOf(() => decodeChunkRecord(setWord(record, 0, 0x564b4c44), shape, 'f32'))).toBe('magic');
        expect(reasonOf(() => decodeChunkRecord(setWord(record, 1, 3), shape, 'f32'))).toBe('version');
        expect(reasonOf(() => decodeChunkRecord(setWord(record, 2, 3), shape, 'f32'))).toBe('dtype');
      });
    }

    it('any single flipped byte of a record is refused', () => {
      const small = shapeOf(2, 6, 3);
      for (const storage of STORAGE) {
        const record = encodeChunkRecord(small, bytesOf(randomRows(small, 5)), 'f32', storage);
        for (let at = 0; at < record.byteLength; at++) {
          for (const bit of [0x01, 0x80]) expect(() => decodeChunkRecord(edit(record, at, record[at] ^ bit), small, 'f16')).toThrow(KVCacheError);
        }
      }
    });

    it('a v1 record (chunk-store.ts) is a version mismatch, and its header still reads', () => {
      const v1 = encodeChunk({ nLayers: shape.nLayers, kvDim: shape.kvDim, tokens: [...shape.tokens], kv: rows });
      expect(reasonOf(() => decodeChunkRecord(v1, shape, 'f32'))).toBe('version');
      expect(readChunkRecordHeader(v1)).toEqual({ version: 1, storage: 'f32', nLayers: 3, kvDim: 36, nTokens: 7 });
      expect(readChunkRecordHeader(new Uint8Array(40))).toBeUndefined();
      expect(readChunkRecordHeader(records.f16.subarray(0, 20))).toBeUndefined();
    });
  });

  it('refuses rows that do not match the shape and token ids that are not u32', () => {
    const shape = shapeOf(2, 4, 3);
    const reason = (fn: () => unknown): string => reasonOf(fn);
    expect(reason(() => encodeChunkRecord(shape, new Uint8Array(2 * 2 * 3 * 4 * 4 - 4), 'f32', 'f16'))).toBe('shape');
    expect(reason(() => encodeChunkRecord(shape, new Uint8Array(2 * 2 * 3 * 4 * 4), 'f16', 'f16'))).toBe('shape');
    expect(reason(() => encodeChunkRecord({ ...shape, kvDim: 0 }, new Uint8Array(0), 'f32', 'f32'))).toBe('shape');
    expect(reason(() => encodeChunkRecord({ ...shape, tokens: [1, -1, 2] }, new Uint8Array(2 * 2 * 3 * 4 * 4), 'f32', 'f32'))).toBe('tokens');
    expect(reason(() => encodeChunkRecord({ ...shape, tokens: [1, 2 ** 32, 2] }, new Uint8Array(2 * 2 * 3 * 4 * 4), 'f32', 'f32'))).toBe('tokens');
    expect(reason(() => encodeChunkRecord({ ...shape, tokens: [1, 1.5, 2] }, new Uint8Array(2 * 2 * 3 * 4 * 4), 'f32', 'f32'))).toBe('tokens');
  });
});
