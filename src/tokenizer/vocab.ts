// The vocabulary as GGUF stores it (tokens, scores, types, merges, special ids), shared by both
// tokenizer models, and the special-token partition of input text.
import { TokenizerError } from '../errors.ts';

export const TokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

export type Metadata = Record<string, unknown>;

export interface Vocab {
  model: string;
  tokens: string[];
  scores: Float32Array | undefined;
  types: Int32Array;
  ids: Map<string, number>;
  bosId: number;
  eosId: number;
  unkId: number;
  addBos: boolean;
  /** Special tokens matched in input text, longest first: control and user-defined ones. */
  specials: { text: string; id: number; type: number }[];
}

function num(m: Metadata, key: string): number | undefined {
  const v = m[key];
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}

export function readVocab(m: Metadata): Vocab {
  const model = m['tokenizer.ggml.model'];
  if (typeof model !== 'string') throw new TokenizerError('missing-vocab', "the model has no 'tokenizer.ggml.model'; it carries no tokenizer");
  const tokens = m['tokenizer.ggml.tokens'];
  if (!Array.isArray(tokens) || tokens.length === 0 || typeof tokens[0] !== 'string') {
    throw new TokenizerError('missing-vocab', "the model has no 'tokenizer.ggml.tokens' list");
  }
  const rawScores = m['tokenizer.ggml.scores'];
  const scores = rawScores instanceof Float32Array ? rawScores : undefined;
  const rawTypes = m['tokenizer.ggml.token_type'];
  const types = new Int32Array(tokens.length).fill(TokenType.NORMAL);
  if (rawTypes && typeof (rawTypes as ArrayLike<number>).length === 'number') {
    const t = rawTypes as ArrayLike<number>;
    for (let i = 0; i < Math.min(t.length, tokens.length); i++) types[i] = Number(t[i]);
  }
  const ids = new Map<string, number>();
  for (let i = 0; i < tokens.length; i++) if (!ids.has(tokens[i])) ids.set(tokens[i], i);
  const spm = model === 'llama';
  const specials = [];
  for (let i = 0; i < tokens.length; i++) {
    if ((types[i] === TokenType.CONTROL || types[i] === TokenType.USER_DEFINED) && tokens[i].length > 0) {
      specials.push({ text: tokens[i], id: i, type: types[i] });
    }
  }
  specials.sort((a, b) => b.text.length - a.text.length);
  const addBosMeta = m['tokenizer.ggml.add_bos_token'];
  return {
    model,
    tokens: tokens as string[],
    scores,
    types,
    ids,
    bosId: num(m, 'tokenizer.ggml.bos_token_id') ?? (spm ? 1 : -1),
    eosId: num(m, 'tokenizer.ggml.eos_token_id') ?? (spm ? 2 : -1),
    unkId: num(m, 'tokenizer.ggml.unknown_token_id') ?? (spm ? 0 : -1),
    addBos: typeof addBosMeta === 'boolean' ? addBosMeta : spm,
    specials,
  };
}

export type Fragment = { text: string } | { id: number };

/**
 * Splits text at special tokens: user-defined tokens always (as llama.cpp does), control tokens
 * only with parseSpecial. Longest match first, scanning left to right.
 */
export function partitionSpecial(vocab: Vocab, text: string, parseSpecial: boolean): Fragment[] {
  const specials = vocab.specials.filter((s) => parseSpecial || s.type === TokenType.USER_DEFINED);
  if (specials.length === 0 || text.length === 0) return text.length > 0 ? [{ text }] : [];
  const out: Fragment[] = [];
  let start = 0;
  let i = 0;
  outer: while (i < text.length) {
    for (const s of specials) {
      if (text.startsWith(s.text, i)) {
        if (i > start) out.push({ text: text.slice(start, i) });
        out.push({ id: s.id });
        i += s.text.length;
        start = i;
        continue outer;
      }
    }
    i++;
  }
  if (start < text.length) out.push({ text: text.slice(start) });
  return out;
}

/** Returns the longest prefix of `bytes` that is complete UTF-8, and how many bytes it used. */
export function completeUtf8(bytes: Uint8Array): number {
  let end = bytes.length;
  // Walk back over at most 3 continuation bytes to the last lead byte.
  let i = end - 1;
  let cont = 0;
  while (i >= 0 && cont < 3 && (bytes[i] & 0xc0) === 0x80) {
    i--;
    cont++;
  }
  if (i < 0) return end;
  const lead = bytes[i];
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  if (need > 1 && end - i < need) end = i;
  return end;
}
