// Content addresses for cached chunk KV. A chunk's KV depends on the model, on its tokens, and on
// the cache settings that change what is computed (a BOS or system prefix, the KV format, ...);
// nothing else. Hashing exactly those three makes the same paragraph in two documents one cache
// entry, and keeps KV from one model or prefix from ever being served for another.
import { InvalidRequestError } from '../errors.ts';

export type ChunkIdSettings = Readonly<Record<string, string | number | boolean>>;

export interface ChunkIdInput {
  /** Identifies the model weights; see fingerprintFromParts. */
  modelFingerprint: string;
  /** The chunk's tokens, as splitDocument gives them (no BOS). */
  tokens: readonly number[];
  /** Cache settings that change the chunk's KV, e.g. `{bosPrefix: true}`. Key order does not matter. */
  settings: ChunkIdSettings;
}

/** Bumped whenever the byte encoding below changes, so old ids can never collide with new ones. */
const CHUNK_ID_FORMAT = 'chunklm-chunk-id/1';

const utf8 = new TextEncoder();

/**
 * SHA-256 (lowercase hex, 64 characters) of a canonical encoding of the model fingerprint, the
 * settings (sorted by key, each value tagged with its type) and the tokens (u32 little-endian).
 * Every variable-length field is length-prefixed, so no two different inputs share an encoding.
 * Throws InvalidRequestError ('bad-chunk-id-input') for a token that is not a u32 or a number
 * setting that is not finite.
 */
export async function chunkId(input: ChunkIdInput): Promise<string> {
  const bytes = encodeChunkIdInput(input);
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The bytes chunkId hashes (exported for tests and for tools that inspect ids). */
export function encodeChunkIdInput({ modelFingerprint, tokens, settings }: ChunkIdInput): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  const u32 = (n: number): void => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n, true);
    parts.push(b);
  };
  const str = (s: string): void => {
    const b = utf8.encode(s);
    u32(b.length);
    parts.push(b);
  };

  str(CHUNK_ID_FORMAT);
  str(modelFingerprint);

  // Keys sorted by code unit, so that {a, b} and {b, a} hash the same.
  const keys = Object.keys(settings).sort();
  u32(keys.length);
  for (const key of keys) {
    const value = settings[key];
    str(key);
    if (typeof value === 'string') {
      str('s');
      str(value);
    } else if (typeof value === 'boolean') {
      str('b');
      str(value ? 'true' : 'false');
    } else if (typeof value === 'number' && Number.isFinite(value)) {
      // String(n) is the shortest text that reads back as n: one spelling per number (and -0 → "0").
      str('n');
      str(String(value));
    } else {
      throw new InvalidRequestError('bad-chunk-id-input', `chunk id setting "${key}" is ${String(value)}; settings must be strings, booleans or finite numbers`, { key });
    }
  }

  const tokenBytes = new Uint8Array(4 * tokens.length); // (nTokens) u32 little-endian
  const view = new DataView(tokenBytes.buffer);
  tokens.forEach((t, i) => {
    if (!Number.isInteger(t) || t < 0 || t > 0xffffffff) {
      throw new InvalidRequestError('bad-chunk-id-input', `chunk token ${i} is ${t}; tokens must be integers in 0..2^32-1`, { index: i, token: t });
    }
    view.setUint32(4 * i, t, true);
  });
  u32(tokens.length);
  parts.push(tokenBytes);

  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * A stable model fingerprint from facts the caller chose to identify the weights (architecture,
 * tensor names, shapes and types, a hash of some tensor bytes, ...). The parts are kept in order
 * and encoded unambiguously (["ab", "c"] and ["a", "bc"] differ), so the result can be hashed or
 * compared directly.
 */
export function fingerprintFromParts(parts: readonly string[]): string {
  for (const [i, p] of parts.entries()) {
    if (typeof p !== 'string') {
      throw new InvalidRequestError('bad-fingerprint-part', `fingerprint part ${i} is a ${typeof p}; every part must be a string`, { index: i });
    }
  }
  return `chunklm-model/1:${JSON.stringify(parts)}`;
}
