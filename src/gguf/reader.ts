// GGUF parser: header, metadata and tensor index, read from a ByteSource in growing chunks.
// Everything is validated before anything is allocated from it: a count, length or shape
// read from the file is first checked against the bytes that remain, so a corrupt or hostile
// file fails fast with a GGUFError instead of allocating gigabytes or looping for minutes.
// Browser-safe: no node modules here.
//
// Layout (little-endian; GGUF v2 and v3 — v1 used u32 counts and is refused):
//   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv × (string key | u32 value_type | value)
//   n_tensors × (string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset)
//   padding to general.alignment (default 32) | tensor data (offsets relative to here)
// string = u64 byte length | UTF-8 bytes;  array = u32 element_type | u64 count | elements
import { AbortedError, GGUFError, throwIfAborted } from '../errors.ts';
import { ggmlTypeInfo, isKnownGGMLType, type GGMLType } from './quant.ts';
import type { ByteSource } from './source.ts';

/** Metadata value type ids. */
export const GGUFValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GGUFValueType = (typeof GGUFValueType)[keyof typeof GGUFValueType];

const VALUE_TYPE_NAMES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'] as const;

/** Short name of a value type (`u32`, `string`, ...), for messages. */
export function ggufValueTypeName(type: number): string {
  return VALUE_TYPE_NAMES[type] ?? `value-type#${type}`;
}

export type GGUFTypedArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array;

/**
 * A parsed metadata value. u64/i64 scalars are bigints; other numbers are numbers. Numeric
 * arrays are typed arrays, string and bool arrays plain arrays, nested arrays `GGUFValue[]`.
 */
export type GGUFValue = number | bigint | boolean | string | GGUFTypedArray | string[] | boolean[] | GGUFValue[];

/**
 * Element type of a parsed plain array (`string[]`, `boolean[]`, nested `GGUFValue[]`), kept as a
 * non-enumerable property so that even an empty array can be written back with its exact type.
 */
export const GGUF_ELEMENT_TYPE: unique symbol = Symbol('gguf.elementType');

export interface GGUFTensorInfo {
  readonly name: string;
  /** ggml `ne` order: shape[0] is the contiguous dimension. */
  readonly shape: number[];
  readonly type: GGMLType;
  /** Absolute file offset of the first byte. */
  readonly offset: number;
  readonly byteLength: number;
  readonly nElements: number;
}

export interface GGUFFile {
  readonly version: number;
  readonly metadata: Record<string, GGUFValue>;
  /** GGUF type of each metadata value as stored (so a file can be re-written faithfully). */
  readonly metadataTypes: Record<string, GGUFValueType>;
  /** Tensors in file index order. */
  readonly tensors: GGUFTensorInfo[];
  readonly tensorIndex: Map<string, GGUFTensorInfo>;
  readonly alignment: number;
  /** Absolute offset of the tensor data section. */
  readonly dataOffset: number;
  readonly fileSize: number;
}

export interface ParseOptions {
  signal?: AbortSignal;
}

const MAGIC = 0x46554747; // "GGUF" read as little-endian u32
const DEFAULT_ALIGNMENT = 32;
const MAX_ALIGNMENT = 1 << 24;
const MAX_DIMS = 4;
const MAX_ARRAY_DEPTH = 16; // nested arrays are legal; a thousand levels is an attack on the stack
// Limits far above any real model (the largest vocabularies have ~256k tokens, the longest
// strings are chat templates of some KB), so that a corrupt count in a multi-GB file fails
// at once instead of allocating or reading gigabytes.
const MAX_STRING_BYTES = 64 << 20;
const MAX_ARRAY_ELEMENTS = 1 << 26;
const MAX_ARRAY_BYTES = 256 << 20;
const MAX_TENSORS = 1 << 20;
const MAX_KV = 1 << 20;
const FIRST_CHUNK = 1 << 20;
const MAX_CHUNK = 64 << 20;

// Bytes per element of each value type; the smallest possible encoding for string and array.
const VALUE_SIZES = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];
const MIN_KV_BYTES = 8 + 4 + 1; // empty key, type, 1-byte value
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8; // empty name, n_dims 0, type, offset

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
// ignoreBOM keeps a leading U+FEFF: some vocabularies have it at the start of a token.
const utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/**
 * Sequential reader over a window of the source. The window is refilled (keeping its unread
 * tail) in chunks that double up to 64 MiB, so a header of any size costs O(size) to read.
 */
class HeaderCursor {
  private buf = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private bufStart = 0;
  private chunk = FIRST_CHUNK;
  /** Absolute file position of the next byte. */
  pos = 0;

  constructor(
    private readonly source: ByteSource,
    private readonly signal: AbortSignal | undefined,
  ) {}

  get size(): number {
    return this.source.size;
  }

  /** Bytes left in the file after `pos`. */
  remaining(): number {
    return this.source.size - this.pos;
  }

  /** Resolves once `n` bytes from `pos` are in the window; undefined when they already are. */
  need(n: number, what: string): Promise<void> | undefined {
    if (this.pos + n <= this.bufStart + this.buf.length) return undefined;
    return this.fill(n, what);
  }

  private async fill(n: number, what: string): Promise<void> {
    if (n > this.remaining()) {
      throw new GGUFError(
        'truncated',
        `${this.source.name} ends at byte ${this.size} while reading ${what} at byte ${this.pos}; the file is truncated (an incomplete download?)`,
        { offset: this.pos, size: this.size },
      );
    }
    throwIfAborted(this.signal);
    const bufEnd = this.bufStart + this.buf.length;
    const keep = this.buf.subarray(this.pos - this.bufStart); // unread tail of the window
    const length = Math.min(this.remaining(), Math.max(n, keep.length + this.chunk));
    this.chunk = Math.min(this.chunk * 2, MAX_CHUNK);
    const want = this.pos + length - bufEnd;
    const fresh = await this.source.read(bufEnd, want, this.signal);
    if (fresh.length !== want) {
      throw new GGUFError('truncated', `${this.source.name}: asked for ${want} bytes at ${bufEnd}, got ${fresh.length}`, { offset: bufEnd });
    }
    const next = new Uint8Array(length); // (length,) bytes from pos
    next.set(keep, 0);
    next.set(fresh, keep.length);
    this.buf = next;
    this.view = new DataView(next.buffer);
    this.bufStart = this.pos;
  }

  // The readers below assume need() has been awaited for their bytes.
  u8(): number {
    return this.buf[this.pos++ - this.bufStart];
  }
  u32(): number {
    const v = this.view.getUint32(this.pos - this.bufStart, true);
    this.pos += 4;
    return v;
  }
  /** u64 as a number; values above 2^53 come back as Infinity so checks against sizes reject them. */
  u64(): number {
    const at = this.pos - this.bufStart;
    const lo = this.view.getUint32(at, true);
    const hi = this.view.getUint32(at + 4, true);
    this.pos += 8;
    return hi >= 0x200000 ? Infinity : hi * 0x1_0000_0000 + lo;
  }
  scalar(type: number): number | bigint | boolean {
    const at = this.pos - this.bufStart;
    const v = this.view;
    this.pos += VALUE_SIZES[type];
    switch (type) {
      case GGUFValueType.UINT8:
        return v.getUint8(at);
      case GGUFValueType.INT8:
        return v.getInt8(at);
      case GGUFValueType.UINT16:
        return v.getUint16(at, true);
      case GGUFValueType.INT16:
        return v.getInt16(at, true);
      case GGUFValueType.UINT32:
        return v.getUint32(at, true);
      case GGUFValueType.INT32:
        return v.getInt32(at, true);
      case GGUFValueType.FLOAT32:
        return v.getFloat32(at, true);
      case GGUFValueType.BOOL:
        return v.getUint8(at) !== 0;
      case GGUFValueType.UINT64:
        return v.getBigUint64(at, true);
      case GGUFValueType.INT64:
        return v.getBigInt64(at, true);
      case GGUFValueType.FLOAT64:
        return v.getFloat64(at, true);
      default:
        throw new GGUFError('bad-value-type', `value type ${type} is not a scalar type`, { type });
    }
  }
  /** Copies `n` bytes out of the window (the copy starts at offset 0, so it is aligned). */
  bytes(n: number): Uint8Array {
    const at = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.slice(at, at + n);
  }
  /**
   * A string that lies wholly inside the window, read without a promise (the common case in
   * vocabularies); undefined when it does not, and readString must take the checked path.
   */
  stringInWindow(): string | undefined {
    const at = this.pos - this.bufStart;
    if (at + 8 > this.buf.length || this.view.getUint32(at + 4, true) !== 0) return undefined;
    const len = this.view.getUint32(at, true);
    if (at + 8 + len > this.buf.length || len > MAX_STRING_BYTES) return undefined;
    this.pos += 8 + len;
    return decodeUtf8(this.buf, at + 8, len);
  }
  text(n: number): string {
    const at = this.pos - this.bufStart;
    this.pos += n;
    return decodeUtf8(this.buf, at, n);
  }
}

/** UTF-8 → string; short ASCII strings (most vocab entries) skip the TextDecoder call. */
function decodeUtf8(buf: Uint8Array, at: number, n: number): string {
  if (n <= 32) {
    let s = '';
    for (let i = 0; i < n; i++) {
      const c = buf[at + i];
      if (c >= 0x80) return utf8.decode(buf.subarray(at, at + n));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8.decode(buf.subarray(at, at + n));
}

/** Reads one GGUF string; its length must fit in the rest of the file. */
async function readString(c: HeaderCursor, what: string): Promise<string> {
  const p = c.need(8, what);
  if (p) await p;
  const start = c.pos;
  const len = c.u64();
  if (len > c.remaining()) {
    throw new GGUFError(
      'bad-string',
      `${what} at byte ${start} claims ${len === Infinity ? 'more than 2^53' : len} bytes but only ${c.remaining()} remain in the file (corrupt or truncated)`,
      { offset: start, remaining: c.remaining() },
    );
  }
  if (len > MAX_STRING_BYTES) {
    throw new GGUFError('bad-string', `${what} at byte ${start} claims ${len} bytes, more than the ${MAX_STRING_BYTES}-byte limit (corrupt file)`, {
      offset: start,
    });
  }
  const q = c.need(len, what);
  if (q) await q;
  return c.text(len);
}

function checkCount(c: HeaderCursor, count: number, minBytes: number, limit: number, what: string, at: number): void {
  if (count * minBytes > c.remaining()) {
    throw new GGUFError(
      'bad-count',
      `${what} at byte ${at} is ${count === Infinity ? 'more than 2^53' : count}, but the ${c.remaining()} bytes left in the file cannot hold that many (corrupt or truncated file)`,
      { offset: at, count: count === Infinity ? null : count, remaining: c.remaining() },
    );
  }
  if (count > limit) {
    throw new GGUFError('bad-count', `${what} at byte ${at} is ${count}, above the limit of ${limit} (corrupt file)`, { offset: at, count, limit });
  }
}

function markElementType<T extends unknown[]>(arr: T, type: number): T {
  Object.defineProperty(arr, GGUF_ELEMENT_TYPE, { value: type, enumerable: false });
  return arr;
}

/** Copies `count` numeric elements into a typed array of the matching kind. */
function numericArray(c: HeaderCursor, type: number, count: number): GGUFTypedArray {
  const size = VALUE_SIZES[type];
  if (!LITTLE_ENDIAN) {
    // Decode element by element on big-endian hosts (GGUF is little-endian on disk).
    const out = makeTypedArray(type, count);
    for (let i = 0; i < count; i++) (out as unknown as unknown[])[i] = c.scalar(type);
    return out;
  }
  const buf = c.bytes(count * size).buffer as ArrayBuffer; // a fresh copy, never shared
  return makeTypedArray(type, count, buf);
}

function makeTypedArray(type: number, count: number, buf?: ArrayBuffer): GGUFTypedArray {
  const b = buf ?? new ArrayBuffer(count * VALUE_SIZES[type]);
  switch (type) {
    case GGUFValueType.UINT8:
      return new Uint8Array(b, 0, count);
    case GGUFValueType.INT8:
      return new Int8Array(b, 0, count);
    case GGUFValueType.UINT16:
      return new Uint16Array(b, 0, count);
    case GGUFValueType.INT16:
      return new Int16Array(b, 0, count);
    case GGUFValueType.UINT32:
      return new Uint32Array(b, 0, count);
    case GGUFValueType.INT32:
      return new Int32Array(b, 0, count);
    case GGUFValueType.FLOAT32:
      return new Float32Array(b, 0, count);
    case GGUFValueType.UINT64:
      return new BigUint64Array(b, 0, count);
    case GGUFValueType.INT64:
      return new BigInt64Array(b, 0, count);
    case GGUFValueType.FLOAT64:
      return new Float64Array(b, 0, count);
    default:
      throw new GGUFError('bad-value-type', `value type ${type} is not a numeric type`, { type });
  }
}

async function readValue(c: HeaderCursor, type: number, key: string, depth: number): Promise<GGUFValue> {
  if (type === GGUFValueType.STRING) return readString(c, `string value of ${key}`);
  if (type !== GGUFValueType.ARRAY) {
    const p = c.need(VALUE_SIZES[type], `value of ${key}`);
    if (p) await p;
    return c.scalar(type);
  }
  if (depth >= MAX_ARRAY_DEPTH) {
    throw new GGUFError('bad-value', `metadata ${key} nests arrays more than ${MAX_ARRAY_DEPTH} deep`, { key });
  }
  const p = c.need(12, `array header of ${key}`);
  if (p) await p;
  const at = c.pos;
  const elemType = c.u32();
  if (elemType >= VALUE_SIZES.length) {
    throw new GGUFError('bad-value-type', `metadata ${key}: unknown array element type ${elemType} at byte ${at}`, { key, type: elemType });
  }
  const count = c.u64();
  const isPlain = elemType === GGUFValueType.STRING || elemType === GGUFValueType.ARRAY || elemType === GGUFValueType.BOOL;
  const limit = isPlain ? MAX_ARRAY_ELEMENTS : Math.floor(MAX_ARRAY_BYTES / VALUE_SIZES[elemType]);
  checkCount(c, count, VALUE_SIZES[elemType], limit, `element count of array ${key}`, at + 4);
  if (elemType === GGUFValueType.STRING) {
    const out = markElementType(new Array<string>(count), elemType);
    for (let i = 0; i < count; i++) out[i] = c.stringInWindow() ?? (await readString(c, `string ${i} of ${key}`));
    return out;
  }
  if (elemType === GGUFValueType.ARRAY) {
    const out = markElementType(new Array<GGUFValue>(count), elemType);
    for (let i = 0; i < count; i++) out[i] = await readValue(c, elemType, `${key}[${i}]`, depth + 1);
    return out;
  }
  const q = c.need(count * VALUE_SIZES[elemType], `array ${key}`);
  if (q) await q;
  if (elemType === GGUFValueType.BOOL) {
    const out = markElementType(new Array<boolean>(count), elemType);
    for (let i = 0; i < count; i++) out[i] = c.u8() !== 0;
    return out;
  }
  return numericArray(c, elemType, count);
}

function readAlignment(metadata: Record<string, GGUFValue>, types: Record<string, GGUFValueType>): number {
  const v = metadata['general.alignment'];
  if (v === undefined) return DEFAULT_ALIGNMENT;
  const t = types['general.alignment'];
  const isInt = t <= GGUFValueType.INT32 || t === GGUFValueType.UINT64 || t === GGUFValueType.INT64;
  const a = typeof v === 'bigint' ? Number(v) : v;
  if (!isInt || typeof a !== 'number' || a < 1 || a > MAX_ALIGNMENT || (a & (a - 1)) !== 0) {
    throw new GGUFError(
      'bad-alignment',
      `general.alignment must be an integer power of two between 1 and ${MAX_ALIGNMENT}, got ${String(v)} (${ggufValueTypeName(t)})`,
      { alignment: String(v) },
    );
  }
  return a;
}

interface RawTensor {
  name: string;
  shape: number[];
  type: GGMLType;
  relOffset: number;
  byteLength: number;
  nElements: number;
}

async function readTensorInfo(c: HeaderCursor, i: number, alignment: number): Promise<RawTensor> {
  const name = await readString(c, `name of tensor ${i}`);
  const p = c.need(4, `tensor ${name}`);
  if (p) await p;
  const nDims = c.u32();
  if (nDims > MAX_DIMS) {
    throw new GGUFError('bad-shape', `tensor ${name} has ${nDims} dimensions; GGUF allows at most ${MAX_DIMS}`, { tensor: name, nDims });
  }
  const q = c.need(nDims * 8 + 4 + 8, `tensor ${name}`);
  if (q) await q;
  const shape: number[] = [];
  let nElements = 1;
  for (let d = 0; d < nDims; d++) {
    const ne = c.u64();
    if (!(ne >= 1) || ne > Number.MAX_SAFE_INTEGER / nElements) {
      throw new GGUFError(
        'bad-shape',
        ne >= 1
          ? `tensor ${name}: its dimensions multiply to more than 2^53 elements`
          : `tensor ${name}: dimension ${d} is ${ne}; every dimension must be at least 1`,
        { tensor: name, dim: d },
      );
    }
    shape.push(ne);
    nElements *= ne;
  }
  const typeId = c.u32();
  if (!isKnownGGMLType(typeId)) {
    throw new GGUFError('bad-type', `tensor ${name} has unknown ggml type id ${typeId}; the file may need a newer runtime`, {
      tensor: name,
      type: typeId,
    });
  }
  const { name: typeName, blockSize, typeSize } = ggmlTypeInfo(typeId);
  if ((shape[0] ?? 1) % blockSize !== 0) {
    throw new GGUFError('bad-shape', `tensor ${name}: ${typeName} needs its first dimension to be a multiple of ${blockSize}, got ${shape[0] ?? 1}`, {
      tensor: name,
      type: typeName,
    });
  }
  const byteLength = (nElements / blockSize) * typeSize;
  if (!Number.isSafeInteger(byteLength)) {
    throw new GGUFError('bad-shape', `tensor ${name} would take more than 2^53 bytes`, { tensor: name });
  }
  const relOffset = c.u64();
  if (relOffset % alignment !== 0) {
    throw new GGUFError(
      'bad-offset',
      relOffset === Infinity
        ? `tensor ${name}: data offset is beyond 2^53`
        : `tensor ${name}: data offset ${relOffset} is not a multiple of the alignment ${alignment}`,
      { tensor: name, alignment },
    );
  }
  return { name, shape, type: typeId, relOffset, byteLength, nElements };
}

/**
 * Checks every tensor lies inside the file and none overlap. A tensor past the end of a file
 * whose index is otherwise consistent (all offsets within the sum of padded sizes) means the
 * file is cut short ('truncated'); an offset beyond that is corrupt ('bad-offset').
 */
function checkExtents(name: string, raw: RawTensor[], dataOffset: number, fileSize: number, alignment: number): void {
  let expected = 0;
  for (const t of raw) expected += Math.ceil(t.byteLength / alignment) * alignment;
  const available = fileSize - dataOffset;
  for (const t of raw) {
    const end = t.relOffset + t.byteLength;
    if (end <= available) continue;
    if (t.relOffset < expected && end <= expected) {
      throw new GGUFError(
        'truncated',
        `${name} is truncated: tensor ${t.name} needs bytes up to ${dataOffset + end} but the file ends at ${fileSize} (an incomplete download?)`,
        { tensor: t.name, need: dataOffset + end, size: fileSize },
      );
    }
    throw new GGUFError(
      'bad-offset',
      `tensor ${t.name}: data at offset ${t.relOffset} (+${t.byteLength} bytes) lies past the end of the ${available}-byte data section`,
      { tensor: t.name, offset: t.relOffset, byteLength: t.byteLength },
    );
  }
  const sorted = [...raw].sort((a, b) => a.relOffset - b.relOffset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (prev.relOffset + prev.byteLength > cur.relOffset) {
      throw new GGUFError('bad-offset', `tensors ${prev.name} and ${cur.name} overlap in the data section`, {
        tensor: cur.name,
        other: prev.name,
      });
    }
  }
}

/** Parses the header, metadata and tensor index of a GGUF file; reads no tensor data. */
export async function parseGGUF(source: ByteSource, options: ParseOptions = {}): Promise<GGUFFile> {
  const { signal } = options;
  throwIfAborted(signal);
  const c = new HeaderCursor(source, signal);
  if (source.size < 4) {
    throw new GGUFError('truncated', `${source.name} is ${source.size} bytes long, too short to be a GGUF file`, { size: source.size });
  }
  await c.need(4, 'magic');
  const magic = c.u32();
  if (magic !== MAGIC) {
    throw new GGUFError('bad-magic', `${source.name} is not a GGUF file (it does not start with "GGUF")`, { magic });
  }
  await c.need(4, 'version');
  const version = c.u32();
  if (version !== 2 && version !== 3) {
    const hint =
      version === 1
        ? 'GGUF v1 is obsolete; convert the model again with a current llama.cpp'
        : version > 0xffff
          ? 'this looks like a big-endian GGUF, which is not supported; use a little-endian file'
          : 'supported versions are 2 and 3';
    throw new GGUFError('unsupported-version', `${source.name} has GGUF version ${version}: ${hint}`, { version });
  }
  await c.need(16, 'counts');
  let at = c.pos;
  const nTensors = c.u64();
  checkCount(c, nTensors, MIN_TENSOR_INFO_BYTES, MAX_TENSORS, 'tensor count', at);
  at = c.pos;
  const nKv = c.u64();
  checkCount(c, nKv, MIN_KV_BYTES, MAX_KV, 'metadata key/value count', at);
  // Both sections must fit together, not just each on its own.
  if (nTensors * MIN_TENSOR_INFO_BYTES + nKv * MIN_KV_BYTES > c.remaining()) {
    throw new GGUFError(
      'bad-count',
      `${nTensors} tensors and ${nKv} metadata entries cannot fit in the ${c.remaining()} bytes left in the file (corrupt or truncated file)`,
      { nTensors, nKv, remaining: c.remaining() },
    );
  }

  const metadata: Record<string, GGUFValue> = Object.create(null);
  const metadataTypes: Record<string, GGUFValueType> = Object.create(null);
  for (let i = 0; i < nKv; i++) {
    if (signal?.aborted) throw new AbortedError();
    const key = await readString(c, `key ${i}`);
    if (key in metadata) throw new GGUFError('duplicate-key', `metadata key ${key} appears twice`, { key });
    const p = c.need(4, `type of ${key}`);
    if (p) await p;
    const typeAt = c.pos;
    const type = c.u32();
    if (type >= VALUE_SIZES.length) {
      throw new GGUFError('bad-value-type', `metadata ${key}: unknown value type ${type} at byte ${typeAt}`, { key, type });
    }
    metadata[key] = await readValue(c, type, key, 0);
    metadataTypes[key] = type as GGUFValueType;
  }
  const alignment = readAlignment(metadata, metadataTypes);

  const raw: RawTensor[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    if (signal?.aborted) throw new AbortedError();
    const t = await readTensorInfo(c, i, alignment);
    if (seen.has(t.name)) throw new GGUFError('duplicate-tensor', `tensor ${t.name} appears twice in the index`, { tensor: t.name });
    seen.add(t.name);
    raw.push(t);
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  checkExtents(source.name, raw, dataOffset, source.size, alignment);

  const tensors: GGUFTensorInfo[] = raw.map((t) => ({
    name: t.name,
    shape: t.shape,
    type: t.type,
    offset: dataOffset + t.relOffset,
    byteLength: t.byteLength,
    nElements: t.nElements,
  }));
  return {
    version,
    metadata,
    metadataTypes,
    tensors,
    tensorIndex: new Map(tensors.map((t) => [t.name, t])),
    alignment,
    dataOffset,
    fileSize: source.size,
  };
}

export interface ReadTensorOptions {
  signal?: AbortSignal;
  /** Called after each chunk with bytes loaded so far and the tensor's size. */
  onProgress?: (loaded: number, total: number) => void;
  /** Bytes per read (default 16 MiB). */
  chunkSize?: number;
}

const TENSOR_CHUNK = 16 << 20;

/** Reads one tensor's raw bytes (ggml layout) in chunks, with progress and cancellation. */
export async function readTensorBytes(source: ByteSource, tensor: GGUFTensorInfo, options: ReadTensorOptions = {}): Promise<Uint8Array> {
  const { signal, onProgress } = options;
  const chunk = Math.max(1, options.chunkSize ?? TENSOR_CHUNK);
  const total = tensor.byteLength;
  throwIfAborted(signal);
  if (total <= chunk) {
    const out = await source.read(tensor.offset, total, signal);
    onProgress?.(total, total);
    return out;
  }
  const out = new Uint8Array(total); // (byteLength,) raw ggml blocks
  for (let done = 0; done < total; ) {
    throwIfAborted(signal);
    const n = Math.min(chunk, total - done);
    out.set(await source.read(tensor.offset + done, n, signal), done);
    done += n;
    onProgress?.(done, total);
  }
  return out;
}
