// GGUF writer, for tests, benchmarks and synthetic models. Metadata values carry their GGUF
// type explicitly (`gguf.u32(5)`, `gguf.array('f32', scores)`), because a JS number cannot say
// whether it was a u32 or an f32. The total size is computed first and everything is written
// into one buffer, so a model of hundreds of MB costs one allocation and one copy per tensor.
import { GGUFError } from '../errors.ts';
import { ggmlTypeInfo, isKnownGGMLType, tensorByteLength, type GGMLType } from './quant.ts';
import { GGUF_ELEMENT_TYPE, GGUFValueType, ggufValueTypeName, type GGUFFile, type GGUFValue } from './reader.ts';

type ScalarType = Exclude<GGUFValueType, typeof GGUFValueType.ARRAY>;

export interface GGUFScalarValue {
  readonly type: ScalarType;
  /** number for u8..i32/f32/f64, bigint for u64/i64, boolean for bool, string for string. */
  readonly value: number | bigint | boolean | string;
}

export interface GGUFArrayValue {
  readonly type: typeof GGUFValueType.ARRAY;
  readonly elementType: GGUFValueType;
  /** Numbers (typed or plain), bigints, strings, booleans, or `GGUFArrayValue`s when nested. */
  readonly values: ArrayLike<number> | ArrayLike<bigint> | readonly string[] | readonly boolean[] | readonly GGUFArrayValue[];
}

export type GGUFTypedValue = GGUFScalarValue | GGUFArrayValue;

/** A value type by id or short name (`'u32'`, `'f32'`, `'string'`, `'array'`, ...). */
export type GGUFValueTypeLike =
  | GGUFValueType
  | 'u8'
  | 'i8'
  | 'u16'
  | 'i16'
  | 'u32'
  | 'i32'
  | 'f32'
  | 'bool'
  | 'string'
  | 'array'
  | 'u64'
  | 'i64'
  | 'f64';

export interface GGUFWriteTensor {
  readonly name: string;
  /** ggml `ne` order: shape[0] is the contiguous dimension. */
  readonly shape: readonly number[];
  readonly type: GGMLType;
  /** Exactly `tensorByteLength(type, product(shape))` bytes in ggml's layout. */
  readonly data: Uint8Array;
}

export interface GGUFWriteInput {
  /** 3 (default) or 2; the little-endian layouts are identical. */
  version?: 2 | 3;
  /** Tensor data alignment (default 32, or `general.alignment` when the metadata has it). */
  alignment?: number;
  metadata: Record<string, GGUFTypedValue>;
  tensors: readonly GGUFWriteTensor[];
}

const VALUE_SIZES = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

// Integer ranges of the number-valued integer types.
const INT_RANGES: Partial<Record<GGUFValueType, readonly [number, number]>> = {
  [GGUFValueType.UINT8]: [0, 0xff],
  [GGUFValueType.INT8]: [-0x80, 0x7f],
  [GGUFValueType.UINT16]: [0, 0xffff],
  [GGUFValueType.INT16]: [-0x8000, 0x7fff],
  [GGUFValueType.UINT32]: [0, 0xffff_ffff],
  [GGUFValueType.INT32]: [-0x8000_0000, 0x7fff_ffff],
};

function resolveType(t: GGUFValueTypeLike): GGUFValueType {
  if (typeof t === 'number') {
    if (Number.isInteger(t) && t >= 0 && t < VALUE_SIZES.length) return t;
  } else {
    const id = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'].indexOf(t);
    if (id >= 0) return id as GGUFValueType;
  }
  throw new GGUFError('bad-value-type', `unknown GGUF value type ${String(t)}`, { type: String(t) });
}

function badValue(type: GGUFValueType, v: unknown): GGUFError {
  const shown = typeof v === 'bigint' ? `${v}n` : typeof v === 'string' ? JSON.stringify(v.slice(0, 40)) : String(v);
  return new GGUFError('bad-value', `${shown} is not a valid ${ggufValueTypeName(type)} value`, { type: ggufValueTypeName(type) });
}

/** Checks one element against a scalar type; returns the value to store (u64/i64 as bigint). */
function checkScalar(type: GGUFValueType, v: unknown): number | bigint | boolean | string {
  const range = INT_RANGES[type];
  if (range) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < range[0] || v > range[1]) throw badValue(type, v);
    return v;
  }
  switch (type) {
    case GGUFValueType.FLOAT32:
    case GGUFValueType.FLOAT64:
      if (typeof v !== 'number') throw badValue(type, v);
      return v;
    case GGUFValueType.BOOL:
      if (typeof v !== 'boolean') throw badValue(type, v);
      return v;
    case GGUFValueType.STRING:
      if (typeof v !== 'string') throw badValue(type, v);
      return v;
    case GGUFValueType.UINT64:
    case GGUFValueType.INT64: {
      const [lo, hi] = type === GGUFValueType.UINT64 ? [0n, U64_MAX] : [I64_MIN, I64_MAX];
      const b = typeof v === 'bigint' ? v : typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : undefined;
      if (b === undefined || b < lo || b > hi) throw badValue(type, v);
      return b;
    }
    default:
      throw badValue(type, v);
  }
}

// Typed array kind that stores each numeric value type byte-for-byte.
const TYPED_ARRAY_OF: Partial<Record<GGUFValueType, new (length: number) => ArrayBufferView>> = {
  [GGUFValueType.UINT8]: Uint8Array,
  [GGUFValueType.INT8]: Int8Array,
  [GGUFValueType.UINT16]: Uint16Array,
  [GGUFValueType.INT16]: Int16Array,
  [GGUFValueType.UINT32]: Uint32Array,
  [GGUFValueType.INT32]: Int32Array,
  [GGUFValueType.FLOAT32]: Float32Array,
  [GGUFValueType.FLOAT64]: Float64Array,
  [GGUFValueType.UINT64]: BigUint64Array,
  [GGUFValueType.INT64]: BigInt64Array,
};

function isExactTypedArray(elementType: GGUFValueType, values: unknown): values is ArrayBufferView {
  const ctor = TYPED_ARRAY_OF[elementType];
  return ctor !== undefined && ArrayBuffer.isView(values) && values.constructor === ctor;
}

function scalar(type: ScalarType, v: unknown): GGUFScalarValue {
  return { type, value: checkScalar(type, v) };
}

function array(elementType: GGUFValueTypeLike, values: GGUFArrayValue['values']): GGUFArrayValue {
  const et = resolveType(elementType);
  if (et === GGUFValueType.ARRAY) {
    for (const v of values as readonly unknown[]) {
      if (typeof v !== 'object' || v === null || (v as GGUFTypedValue).type !== GGUFValueType.ARRAY) {
        throw new GGUFError('bad-value', 'the elements of an array of arrays must be gguf.array(...) values', {});
      }
    }
  } else if (!isExactTypedArray(et, values)) {
    for (let i = 0; i < values.length; i++) checkScalar(et, values[i]);
  }
  return { type: GGUFValueType.ARRAY, elementType: et, values };
}

function inferElementType(v: unknown[]): GGUFValueType {
  const marked = (v as { [GGUF_ELEMENT_TYPE]?: number })[GGUF_ELEMENT_TYPE];
  if (marked !== undefined) return marked as GGUFValueType;
  const first = v[0];
  if (typeof first === 'boolean') return GGUFValueType.BOOL;
  if (Array.isArray(first) || ArrayBuffer.isView(first)) return GGUFValueType.ARRAY;
  return GGUFValueType.STRING; // also the choice for an empty unmarked array
}

function inferNumberType(v: number): GGUFValueType {
  if (Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff) return GGUFValueType.UINT32;
  if (Number.isInteger(v) && v >= -0x8000_0000 && v <= 0x7fff_ffff) return GGUFValueType.INT32;
  return Math.fround(v) === v || !Number.isFinite(v) ? GGUFValueType.FLOAT32 : GGUFValueType.FLOAT64;
}

/**
 * A parsed value (from `parseGGUF`) as a typed value. `type` is the stored type
 * (`file.metadataTypes[key]`); without it numbers become u32/i32/f32/f64 by value.
 */
function fromParsed(value: GGUFValue, type?: GGUFValueTypeLike): GGUFTypedValue {
  if (ArrayBuffer.isView(value)) {
    const entry = Object.entries(TYPED_ARRAY_OF).find(([, ctor]) => value.constructor === ctor);
    if (!entry) throw new GGUFError('bad-value', `cannot store a ${value.constructor.name} in GGUF`, {});
    return array(Number(entry[0]) as GGUFValueType, value as ArrayLike<number>);
  }
  if (Array.isArray(value)) {
    const et = inferElementType(value);
    if (et === GGUFValueType.ARRAY) return array(et, value.map((v) => fromParsed(v) as GGUFArrayValue));
    return array(et, value as string[] | boolean[]);
  }
  const t = type === undefined ? undefined : resolveType(type);
  if (t === GGUFValueType.ARRAY) throw new GGUFError('bad-value', `a ${typeof value} is not an array`, {});
  if (t !== undefined) return scalar(t as ScalarType, value);
  switch (typeof value) {
    case 'string':
      return scalar(GGUFValueType.STRING, value);
    case 'boolean':
      return scalar(GGUFValueType.BOOL, value);
    case 'bigint':
      return scalar(value < 0n ? GGUFValueType.INT64 : GGUFValueType.UINT64, value);
    default:
      return scalar(inferNumberType(value) as ScalarType, value);
  }
}

/** Typed value constructors for `writeGGUF` metadata. */
export const gguf = {
  u8: (v: number): GGUFScalarValue => scalar(GGUFValueType.UINT8, v),
  i8: (v: number): GGUFScalarValue => scalar(GGUFValueType.INT8, v),
  u16: (v: number): GGUFScalarValue => scalar(GGUFValueType.UINT16, v),
  i16: (v: number): GGUFScalarValue => scalar(GGUFValueType.INT16, v),
  u32: (v: number): GGUFScalarValue => scalar(GGUFValueType.UINT32, v),
  i32: (v: number): GGUFScalarValue => scalar(GGUFValueType.INT32, v),
  f32: (v: number): GGUFScalarValue => scalar(GGUFValueType.FLOAT32, v),
  f64: (v: number): GGUFScalarValue => scalar(GGUFValueType.FLOAT64, v),
  bool: (v: boolean): GGUFScalarValue => scalar(GGUFValueType.BOOL, v),
  string: (v: string): GGUFScalarValue => scalar(GGUFValueType.STRING, v),
  /** bigint, or a safe non-negative integer number. */
  u64: (v: bigint | number): GGUFScalarValue => scalar(GGUFValueType.UINT64, v),
  i64: (v: bigint | number): GGUFScalarValue => scalar(GGUFValueType.INT64, v),
  /** `gguf.array('f32', new Float32Array(..))`, `gguf.array('string', tokens)`, `gguf.array('array', [gguf.array(..)])`. */
  array,
  fromParsed,
} as const;

export interface MetadataFromFileOptions {
  /** Keys left out of the copy (e.g. ones the caller replaces). */
  omit?: Iterable<string>;
}

/** All metadata of a parsed file as typed values, ready for `writeGGUF` (types preserved). */
export function metadataFromFile(file: Pick<GGUFFile, 'metadata' | 'metadataTypes'>, options: MetadataFromFileOptions = {}): Record<string, GGUFTypedValue> {
  const omit = new Set(options.omit ?? []);
  const out: Record<string, GGUFTypedValue> = {};
  for (const key of Object.keys(file.metadata)) {
    if (!omit.has(key)) out[key] = fromParsed(file.metadata[key], file.metadataTypes[key]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

/** UTF-8 byte length without encoding (lone surrogates become U+FFFD, 3 bytes, as in TextEncoder). */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

function valueSize(v: GGUFTypedValue): number {
  if (v.type === GGUFValueType.STRING) return 8 + utf8Length(v.value as string);
  if (v.type !== GGUFValueType.ARRAY) return VALUE_SIZES[v.type];
  let n = 12; // element type + count
  if (v.elementType === GGUFValueType.STRING) {
    for (const s of v.values as readonly string[]) n += 8 + utf8Length(s);
  } else if (v.elementType === GGUFValueType.ARRAY) {
    for (const inner of v.values as readonly GGUFArrayValue[]) n += valueSize(inner);
  } else {
    n += v.values.length * VALUE_SIZES[v.elementType];
  }
  return n;
}

const encoder = new TextEncoder();

/** Sequential little-endian writes into the one output buffer. */
class Out {
  readonly view: DataView;
  pos = 0;
  constructor(readonly bytes: Uint8Array<ArrayBuffer>) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u32(v: number): void {
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }
  u64(v: number | bigint): void {
    this.view.setBigUint64(this.pos, BigInt(v), true);
    this.pos += 8;
  }
  string(s: string): void {
    const lenAt = this.pos;
    this.pos += 8;
    const { written } = encoder.encodeInto(s, this.bytes.subarray(this.pos));
    this.view.setBigUint64(lenAt, BigInt(written), true);
    this.pos += written;
  }
  scalar(type: GGUFValueType, v: unknown): void {
    const d = this.view;
    const at = this.pos;
    switch (type) {
      case GGUFValueType.UINT8:
        d.setUint8(at, v as number);
        break;
      case GGUFValueType.INT8:
        d.setInt8(at, v as number);
        break;
      case GGUFValueType.UINT16:
        d.setUint16(at, v as number, true);
        break;
      case GGUFValueType.INT16:
        d.setInt16(at, v as number, true);
        break;
      case GGUFValueType.UINT32:
        d.setUint32(at, v as number, true);
        break;
      case GGUFValueType.INT32:
        d.setInt32(at, v as number, true);
        break;
      case GGUFValueType.FLOAT32:
        d.setFloat32(at, v as number, true);
        break;
      case GGUFValueType.FLOAT64:
        d.setFloat64(at, v as number, true);
        break;
      case GGUFValueType.BOOL:
        d.setUint8(at, v ? 1 : 0);
        break;
      case GGUFValueType.UINT64:
        d.setBigUint64(at, BigInt(v as bigint | number), true);
        break;
      case GGUFValueType.INT64:
        d.setBigInt64(at, BigInt(v as bigint | number), true);
        break;
      case GGUFValueType.STRING:
        this.string(v as string);
        return;
      default:
        throw badValue(type, v);
    }
    this.pos += VALUE_SIZES[type];
  }
  value(v: GGUFTypedValue): void {
    if (v.type !== GGUFValueType.ARRAY) {
      this.scalar(v.type, v.value);
      return;
    }
    const { elementType, values } = v;
    this.u32(elementType);
    this.u64(values.length);
    if (elementType === GGUFValueType.ARRAY) {
      for (const inner of values as readonly GGUFArrayValue[]) this.value(inner);
    } else if (LITTLE_ENDIAN && isExactTypedArray(elementType, values)) {
      this.bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), this.pos);
      this.pos += values.byteLength;
    } else {
      for (let i = 0; i < values.length; i++) this.scalar(elementType, values[i]);
    }
  }
}

function checkAlignment(a: unknown, where: string): number {
  if (typeof a !== 'number' || !Number.isInteger(a) || a < 1 || a > 1 << 24 || (a & (a - 1)) !== 0) {
    throw new GGUFError('bad-alignment', `${where} must be a power of two between 1 and 2^24, got ${String(a)}`, { alignment: String(a) });
  }
  return a;
}

interface PlannedTensor {
  tensor: GGUFWriteTensor;
  relOffset: number;
}

/** Serializes a complete GGUF file into one buffer. */
export function writeGGUF(input: GGUFWriteInput): Uint8Array<ArrayBuffer> {
  const version = input.version ?? 3;
  if (version !== 2 && version !== 3) {
    throw new GGUFError('unsupported-version', `can write GGUF versions 2 and 3, not ${String(version)}`, { version });
  }
  const metadata: Record<string, GGUFTypedValue> = { ...input.metadata };
  const declared = metadata['general.alignment'];
  let alignment: number;
  if (declared !== undefined) {
    const a = declared.type === GGUFValueType.ARRAY ? NaN : Number(declared.value);
    alignment = checkAlignment(a, 'general.alignment');
    if (input.alignment !== undefined && input.alignment !== alignment) {
      throw new GGUFError('bad-alignment', `alignment ${input.alignment} contradicts general.alignment ${alignment} in the metadata`, {});
    }
  } else {
    alignment = checkAlignment(input.alignment ?? 32, 'alignment');
    // Readers default to 32, so any other alignment must be declared.
    if (alignment !== 32) metadata['general.alignment'] = gguf.u32(alignment);
  }

  // Header size: fixed part, then every key/value, then every tensor entry.
  let headerSize = 4 + 4 + 8 + 8;
  for (const [key, v] of Object.entries(metadata)) headerSize += 8 + utf8Length(key) + 4 + valueSize(v);

  const seen = new Set<string>();
  const planned: PlannedTensor[] = [];
  let dataSize = 0;
  for (const t of input.tensors) {
    checkTensor(t);
    if (seen.has(t.name)) throw new GGUFError('duplicate-tensor', `tensor ${t.name} is given twice`, { tensor: t.name });
    seen.add(t.name);
    headerSize += 8 + utf8Length(t.name) + 4 + 8 * t.shape.length + 4 + 8;
    const relOffset = alignUp(dataSize, alignment);
    planned.push({ tensor: t, relOffset });
    dataSize = relOffset + t.data.byteLength;
  }
  const dataOffset = alignUp(headerSize, alignment);
  const total = dataOffset + alignUp(dataSize, alignment);

  const out = new Out(new Uint8Array(total)); // (total,) whole file; padding stays zero
  out.u32(0x46554747); // "GGUF"
  out.u32(version);
  out.u64(planned.length);
  out.u64(Object.keys(metadata).length);
  for (const [key, v] of Object.entries(metadata)) {
    out.string(key);
    out.u32(v.type);
    out.value(v);
  }
  for (const { tensor, relOffset } of planned) {
    out.string(tensor.name);
    out.u32(tensor.shape.length);
    for (const ne of tensor.shape) out.u64(ne);
    out.u32(tensor.type);
    out.u64(relOffset);
  }
  if (out.pos !== headerSize) throw new GGUFError('internal', `header size mismatch: planned ${headerSize}, wrote ${out.pos}`, {});
  for (const { tensor, relOffset } of planned) out.bytes.set(tensor.data, dataOffset + relOffset);
  return out.bytes;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function checkTensor(t: GGUFWriteTensor): void {
  if (typeof t.name !== 'string' || t.name.length === 0) throw new GGUFError('bad-shape', 'every tensor needs a non-empty name', {});
  if (!isKnownGGMLType(t.type)) throw new GGUFError('bad-type', `tensor ${t.name}: unknown ggml type ${String(t.type)}`, { tensor: t.name });
  if (t.shape.length > 4) throw new GGUFError('bad-shape', `tensor ${t.name}: at most 4 dimensions, got ${t.shape.length}`, { tensor: t.name });
  let n = 1;
  for (const ne of t.shape) {
    if (!Number.isSafeInteger(ne) || ne < 1) throw new GGUFError('bad-shape', `tensor ${t.name}: dimension ${ne} must be a positive integer`, { tensor: t.name });
    n *= ne;
  }
  const { name, blockSize } = ggmlTypeInfo(t.type);
  if ((t.shape[0] ?? 1) % blockSize !== 0) {
    throw new GGUFError(
      'bad-shape',
      `tensor ${t.name}: ${name} rows are whole blocks of ${blockSize} values, so shape[0] (the row length) must be a multiple of ${blockSize}; got ${t.shape[0]}`,
      { tensor: t.name },
    );
  }
  const need = tensorByteLength(t.type, n);
  if (t.data.byteLength !== need) {
    throw new GGUFError('bad-shape', `tensor ${t.name}: ${name} [${t.shape.join(', ')}] takes ${need} bytes, data has ${t.data.byteLength}`, {
      tensor: t.name,
    });
  }
}
