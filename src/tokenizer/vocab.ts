// The vocabulary as llama.cpp's llama-vocab reads it from GGUF metadata: token texts, scores,
// attributes, merges, special ids and the flags that change how text is encoded and decoded.
// Everything model-specific that the encoders need is settled here, once, at load time.
import { TokenizerError } from '../errors.ts';
import { LLAMA3_PRE_NAMES } from './pre-tokenizer.ts';

/** Values of `tokenizer.ggml.token_type` (the GGUF / sentencepiece numbering). */
export const TokenType = {
  undefined: 0,
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

/** Attribute bits per token, derived from the token type (and a few overrides, as in llama.cpp). */
export const Attr = {
  normal: 1,
  unknown: 2,
  control: 4,
  userDefined: 8,
  unused: 16,
  byte: 32,
  /** Whitespace after this token's text is dropped when special tokens are split out of the input. */
  rstrip: 64,
} as const;

const attrOfType: Record<number, number> = {
  [TokenType.normal]: Attr.normal,
  [TokenType.unknown]: Attr.unknown,
  [TokenType.control]: Attr.control,
  [TokenType.userDefined]: Attr.userDefined,
  [TokenType.unused]: Attr.unused,
  [TokenType.byte]: Attr.byte,
};

/**
 * Texts of tokens that end generation, as llama.cpp's llama_vocab::load lists them: converters
 * rarely write an id for each, so llama.cpp finds them by text.
 */
const EOG_TEXTS = new Set([
  '<|eot_id|>',
  '<|im_end|>',
  '<|end|>',
  '<|return|>',
  '<|call|>',
  '<|flush|>',
  '<|calls|>',
  '<end_of_turn>',
  '<|endoftext|>',
  '</s>',
  '<|eom_id|>',
  '<EOT>',
  '_<EOT>',
  '[EOT]',
  '[EOS]',
  '<|end_of_text|>',
  '<end_of_utterance>',
  '<eos>',
  '<turn|>',
  '<|tool_response>',
  '<｜end▁of▁sentence｜>',
  '[e~[',
]);

/**
 * Fill-in-the-middle tokens llama.cpp finds by text when the metadata names no id for them (the
 * first key is the current one, the second the deprecated one). Padding, repository and file
 * separators also end generation.
 */
const FIM_TOKENS: readonly { keys: readonly string[]; texts: readonly string[]; endsGeneration: boolean }[] = [
  { keys: ['tokenizer.ggml.fim_pre_token_id', 'tokenizer.ggml.prefix_token_id'], texts: ['<|fim_prefix|>', '<fim-prefix>', '<fim_prefix>', '<｜fim▁begin｜>', '<PRE>', '▁<PRE>', '<|code_prefix|>', '<|prefix|>'], endsGeneration: false },
  { keys: ['tokenizer.ggml.fim_suf_token_id', 'tokenizer.ggml.suffix_token_id'], texts: ['<|fim_suffix|>', '<fim-suffix>', '<fim_suffix>', '<｜fim▁hole｜>', '<SUF>', '▁<SUF>', '<|code_suffix|>', '<|suffix|>'], endsGeneration: false },
  { keys: ['tokenizer.ggml.fim_mid_token_id', 'tokenizer.ggml.middle_token_id'], texts: ['<|fim_middle|>', '<fim-middle>', '<fim_middle>', '<｜fim▁end｜>', '<MID>', '▁<MID>', '<|code_middle|>', '<|middle|>'], endsGeneration: false },
  { keys: ['tokenizer.ggml.fim_pad_token_id'], texts: ['<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>', '[PAD]'], endsGeneration: true },
  { keys: ['tokenizer.ggml.fim_rep_token_id'], texts: ['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>'], endsGeneration: true },
  { keys: ['tokenizer.ggml.fim_sep_token_id'], texts: ['<|file_sep|>'], endsGeneration: true },
];

export type VocabKind = 'spm' | 'bpe';

export interface Vocab {
  kind: VocabKind;
  /** `tokenizer.ggml.pre` as written (BPE only; '' when absent). */
  pre: string;
  tokens: string[];
  /** id of each token text. */
  tokenToId: Map<string, number>;
  /** SPM merge priority per id (higher merges first); zeros for BPE. */
  scores: Float32Array;
  /** Attr bits per id. */
  attrs: Uint8Array;
  /** BPE merge rank by the merge text "left right" (lower merges first); empty for SPM. */
  mergeRanks: Map<string, number>;
  /** -1 when the model has none. */
  bosId: number;
  eosId: number;
  unkId: number;
  eogIds: Set<number>;
  addBos: boolean;
  /** SPM: a space is put before the text (and after each special token) before encoding. */
  addSpacePrefix: boolean;
  /** Ids of control, user-defined and unknown tokens, longest text first: the order they are split out of the input. */
  specialIds: number[];
  /**
   * Tokens the vocabulary types as something else (often user-defined) whose text marks them as
   * end-of-generation or fill-in-the-middle tokens: they are made control tokens, as llama.cpp does,
   * so plain text never turns into them. One sentence per token, for a caller to show.
   */
  notices: string[];
}

type Meta = Readonly<Record<string, unknown>>;

function missing(key: string, what: string): TokenizerError {
  return new TokenizerError(
    'missing-key',
    `the model's GGUF metadata has no ${key} (${what}); the tokenizer cannot be built. Re-convert the model with a current llama.cpp convert script.`,
    { key },
  );
}

function badType(key: string, want: string, got: unknown): TokenizerError {
  const desc = Array.isArray(got) ? 'an array' : ArrayBuffer.isView(got) ? `a ${got.constructor.name}` : typeof got;
  return new TokenizerError('bad-key-type', `GGUF metadata ${key} should be ${want}, but it is ${desc}`, { key, want });
}

function optString(meta: Meta, key: string): string | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw badType(key, 'a string', v);
  return v;
}

function optBool(meta: Meta, key: string): boolean | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw badType(key, 'a bool', v);
  return v;
}

/** An integer key; undefined when absent. Stored as any integer type (u32, i32, u64 as bigint). */
function optInt(meta: Meta, key: string): number | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw badType(key, 'an integer', v);
  return n;
}

function stringArray(meta: Meta, key: string, what: string): string[] {
  const v = meta[key];
  if (v === undefined) throw missing(key, what);
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw badType(key, 'an array of strings', v);
  return v as string[];
}

/** A numeric array (typed array or number[]) of at least `n` entries; undefined when absent. */
function optNumbers(meta: Meta, key: string, n: number): ArrayLike<number> | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  const ok = (ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)) ||
    (Array.isArray(v) && v.every((x) => typeof x === 'number'));
  if (!ok) throw badType(key, 'a numeric array', v);
  const arr = v as ArrayLike<number>;
  if (arr.length < n) {
    throw new TokenizerError('bad-vocab', `GGUF metadata ${key} has ${arr.length} entries but there are ${n} tokens`, {
      key,
      entries: arr.length,
      tokens: n,
    });
  }
  return arr;
}

/** Reads the vocabulary from GGUF metadata (`tokenizer.ggml.*`), following llama.cpp's llama_vocab::load. */
export function loadVocab(meta: Meta): Vocab {
  const model = optString(meta, 'tokenizer.ggml.model');
  if (model === undefined) throw missing('tokenizer.ggml.model', "the tokenizer type, 'llama' or 'gpt2'");
  let kind: VocabKind;
  if (model === 'llama') kind = 'spm';
  else if (model === 'gpt2') kind = 'bpe';
  else {
    throw new TokenizerError(
      'unsupported-model',
      `tokenizer.ggml.model is '${model}'; chunklm supports 'llama' (SentencePiece) and 'gpt2' (byte-level BPE) tokenizers`,
      { model },
    );
  }

  const raw = stringArray(meta, 'tokenizer.ggml.tokens', 'the token texts');
  if (raw.length === 0) throw new TokenizerError('bad-vocab', 'tokenizer.ggml.tokens is empty', {});
  const n = raw.length;
  const tokens = new Array<string>(n);
  const tokenToId = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    // llama.cpp renames empty tokens rather than let them match the empty string.
    const text = raw[i] === '' ? `[EMPTY_${i}]` : raw[i];
    const prev = tokenToId.get(text);
    if (prev !== undefined) {
      throw new TokenizerError('bad-vocab', `duplicate token in the vocabulary: ${JSON.stringify(text)} has ids ${prev} and ${i}`, {
        token: text,
        first: prev,
        second: i,
      });
    }
    tokenToId.set(text, i);
    tokens[i] = text;
  }

  const scores = new Float32Array(n);
  const scoreArr = optNumbers(meta, 'tokenizer.ggml.scores', n);
  if (scoreArr) for (let i = 0; i < n; i++) scores[i] = scoreArr[i];

  const attrs = new Uint8Array(n).fill(Attr.normal);
  const typeArr = optNumbers(meta, 'tokenizer.ggml.token_type', n);
  if (typeArr) for (let i = 0; i < n; i++) attrs[i] = attrOfType[typeArr[i]] ?? 0;

  const mergeRanks = new Map<string, number>();
  let pre = '';
  if (kind === 'bpe') {
    const merges = stringArray(meta, 'tokenizer.ggml.merges', 'the BPE merges, "left right" per rank');
    // The merge text is exactly the lookup key "left right": byte-level tokens never contain a space.
    for (let i = 0; i < merges.length; i++) if (!mergeRanks.has(merges[i])) mergeRanks.set(merges[i], i);
    pre = optString(meta, 'tokenizer.ggml.pre') ?? 'default';
  }

  // Defaults as in llama.cpp: SentencePiece vocabs put <unk>, <s>, </s> at 0, 1, 2.
  const special = (key: string, fallback: number): number => {
    const id = optInt(meta, key);
    // Out-of-range ids (0xFFFFFFFF marks "none" in some files) leave the default in place.
    if (id !== undefined && id >= 0 && id < n) return id;
    return fallback >= 0 && fallback < n ? fallback : -1;
  };
  const bosId = special('tokenizer.ggml.bos_token_id', kind === 'spm' ? 1 : -1);
  const eosId = special('tokenizer.ggml.eos_token_id', kind === 'spm' ? 2 : -1);
  const unkId = special('tokenizer.ggml.unknown_token_id', kind === 'spm' ? 0 : -1);
  const eotId = special('tokenizer.ggml.eot_token_id', -1);
  const eomId = special('tokenizer.ggml.eom_token_id', -1);

  // Llama 3 style vocabs want BOS unless told otherwise; other BPE vocabs do not.
  const bosDefault = kind === 'spm' || LLAMA3_PRE_NAMES.has(pre);
  const addBos = optBool(meta, 'tokenizer.ggml.add_bos_token') ?? bosDefault;
  const addSpacePrefix = optBool(meta, 'tokenizer.ggml.add_space_prefix') ?? kind === 'spm';

  // End-of-generation and fill-in-the-middle tokens found by text. A text that names such a token
  // should never turn into it unless special tokens are parsed, so llama.cpp adds the control type
  // to any of them the vocabulary types otherwise (a user-defined `</s>` or `<|end|>`), with a
  // warning: so does this.
  const notices: string[] = [];
  const makeControl = (id: number): void => {
    if (attrs[id] & Attr.control) return;
    attrs[id] |= Attr.control;
    notices.push(`token ${id} ${JSON.stringify(tokens[id])} looks like a control token but the vocabulary does not type it so; it is treated as one, as llama.cpp does`);
  };
  const eogIds = new Set<number>();
  for (let i = 0; i < n; i++) {
    if (EOG_TEXTS.has(tokens[i])) {
      eogIds.add(i);
      makeControl(i);
    }
  }
  for (const fim of FIM_TOKENS) {
    const given = fim.keys.map((k) => optInt(meta, k)).find((id) => id !== undefined && id >= 0 && id < n);
    const id = given ?? fim.texts.map((t) => tokenToId.get(t)).find((i) => i !== undefined);
    if (id === undefined) continue;
    if (given === undefined) makeControl(id);
    if (fim.endsGeneration) eogIds.add(id);
  }
  for (const id of [eosId, eotId, eomId]) if (id >= 0) eogIds.add(id);

  const specialIds: number[] = [];
  for (let i = 0; i < n; i++) if (attrs[i] & (Attr.control | Attr.userDefined | Attr.unknown)) specialIds.push(i);
  specialIds.sort((a, b) => tokens[b].length - tokens[a].length || a - b);

  // Phi-3 strips the whitespace that follows its chat markers; llama.cpp keys this on the model name.
  const name = (optString(meta, 'general.name') ?? '').toLowerCase();
  if (name.includes('phi-3') || name.includes('phi3')) {
    for (const id of specialIds) attrs[id] |= Attr.rstrip;
    const set = (text: string, on: boolean): void => {
      const id = tokenToId.get(text);
      if (id !== undefined) attrs[id] = on ? attrs[id] | Attr.rstrip : attrs[id] & ~Attr.rstrip;
    };
    set('</s>', true);
    for (const text of ['<unk>', '<s>', '<|endoftext|>']) set(text, false);
  }

  return { kind, pre, tokens, tokenToId, scores, attrs, mergeRanks, bosId, eosId, unkId, eogIds, addBos, addSpacePrefix, specialIds, notices };
}

