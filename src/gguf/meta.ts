// Typed access to parsed GGUF metadata. Each getter names the key in its error, so a model
// with a missing or mistyped key fails with a message that says which one. Pass a fallback
// as the third argument to make a key optional (`metaU32(meta, 'x', 0)`, or `undefined`).
import { GGUFError } from '../errors.ts';
import type { GGUFTypedArray, GGUFValue } from './reader.ts';

export type GGUFMetadata = Record<string, GGUFValue>;

function describe(v: GGUFValue): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name} of ${v.length}`;
  return `${typeof v} ${JSON.stringify(typeof v === 'bigint' ? v.toString() : v)}`;
}

function lookup<T, F>(
  meta: GGUFMetadata,
  key: string,
  want: string,
  convert: (v: GGUFValue) => T | undefined,
  fallback: [] | [F],
): T | F {
  if (!Object.hasOwn(meta, key)) {
    if (fallback.length) return fallback[0] as F;
    throw new GGUFError('missing-key', `the model's GGUF metadata has no ${key} (${want}); the file may be incomplete or for another architecture`, {
      key,
    });
  }
  const v = meta[key];
  const out = convert(v);
  if (out === undefined) {
    throw new GGUFError('bad-key-type', `GGUF metadata ${key} should be ${want}, but it is ${describe(v)}`, { key, want });
  }
  return out;
}

function toInteger(v: GGUFValue, lo: number, hi: number): number | undefined {
  const n = typeof v === 'bigint' ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) && n >= lo && n <= hi ? n : undefined;
}

export function hasMeta(meta: GGUFMetadata, key: string): boolean {
  return Object.hasOwn(meta, key);
}

export function metaString(meta: GGUFMetadata, key: string): string;
export function metaString<F>(meta: GGUFMetadata, key: string, fallback: F): string | F;
export function metaString<F>(meta: GGUFMetadata, key: string, ...fallback: [] | [F]): string | F {
  return lookup(meta, key, 'a string', (v) => (typeof v === 'string' ? v : undefined), fallback);
}

/** An integer in [0, 2^32), whatever integer type stores it. */
export function metaU32(meta: GGUFMetadata, key: string): number;
export function metaU32<F>(meta: GGUFMetadata, key: string, fallback: F): number | F;
export function metaU32<F>(meta: GGUFMetadata, key: string, ...fallback: [] | [F]): number | F {
  return lookup(meta, key, 'an integer in [0, 2^32)', (v) => toInteger(v, 0, 0xffff_ffff), fallback);
}

/** An integer in [-2^31, 2^31). */
export function metaI32(meta: GGUFMetadata, key: string): number;
export function metaI32<F>(meta: GGUFMetadata, key: string, fallback: F): number | F;
export function metaI32<F>(meta: GGUFMetadata, key: string, ...fallback: [] | [F]): number | F {
  return lookup(meta, key, 'an integer in [-2^31, 2^31)', (v) => toInteger(v, -0x8000_0000, 0x7fff_ffff), fallback);
}

/** Any integer that a number holds exactly (u64/i64 values included when they fit). */
export function metaInt(meta: GGUFMetadata, key: string): number;
export function metaInt<F>(meta: GGUFMetadata, key: string, fallback: F): number | F;
export function metaInt<F>(meta: GGUFMetadata, key: string, ...fallback: [] | [F]): number | F {
  return lookup(meta, key, 'an integer', (v) => toInteger(v, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER), fallback);
}

/** A number, stored as a float or an integer type (some converters write integers for floats). */
export function metaF32(meta: GGUFMetadata, key: string): number;
export function metaF32<F>(meta: GGUFMetadata, key: string, fallback: F): number | F;
export function metaF32<F>(meta: GGUFMetadata, key: string, ...fallback: [] | [F]): number | F {
  return lookup(meta, key, 'a number', (v) => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined), fallback);
}

export function metaBool(meta: GGUFMetadata, key: string): boolean;
export function metaBool<F>(meta: GGUFMetadata, key: string, fallback: F): boolean | F;
export function metaBool<F>(meta: GGUFMetadata, key: string, ...fallback: [] | [F]): boolean | F {
  return lookup(meta, key, 'a bool', (v) => (typeof v === 'boolean' ? v : undefined), fallback);
}

/** Any array value: a typed array, `string[]`, `boolean[]` or a nested `GGUFValue[]`. */
export function metaArray(meta: GGUFMetadata, key: string): GGUFTypedArray | string[] | boolean[] | GGUFValue[];
export function metaArray<F>(meta: GGUFMetadata, key: string, fallback: F): GGUFTypedArray | string[] | boolean[] | GGUFValue[] | F;
export function metaArray<F>(meta: GGUFMetadata, key: string, ...fallback: [] | [F]): GGUFTypedArray | string[] | boolean[] | GGUFValue[] | F {
  return lookup(
    meta,
    key,
    'an array',
    (v) => (Array.isArray(v) || ArrayBuffer.isView(v) ? (v as GGUFTypedArray | string[] | boolean[] | GGUFValue[]) : undefined),
    fallback,
  );
}

/** An array of strings (an empty array qualifies). */
export function metaStringArray(meta: GGUFMetadata, key: string): string[];
export function metaStringArray<F>(meta: GGUFMetadata, key: string, fallback: F): string[] | F;
export function metaStringArray<F>(meta: GGUFMetadata, key: string, ...fallback: [] | [F]): string[] | F {
  return lookup(
    meta,
    key,
    'an array of strings',
    (v) => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined),
    fallback,
  );
}

/** A numeric array held in numbers (not u64/i64), as the typed array it was parsed into. */
export function metaNumberArray(
  meta: GGUFMetadata,
  key: string,
): Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;
export function metaNumberArray<F>(
  meta: GGUFMetadata,
  key: string,
  fallback: F,
): Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array | F;
export function metaNumberArray<F>(
  meta: GGUFMetadata,
  key: string,
  ...fallback: [] | [F]
): Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array | F {
  return lookup(
    meta,
    key,
    'a numeric array',
    (v) =>
      ArrayBuffer.isView(v) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)
        ? (v as Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array)
        : undefined,
    fallback,
  );
}
