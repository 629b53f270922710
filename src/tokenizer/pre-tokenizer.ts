// Pre-tokenizers of byte-level BPE vocabs, selected by `tokenizer.ggml.pre`: the regexes that
// cut text into words before merging. They reproduce llama.cpp's llm_tokenizer_bpe table.
//
// Where llama.cpp lists several regexes they run in sequence, each one cutting every piece the
// previous ones left: a match becomes a piece, and so does the text between two matches (it is
// never dropped). llama.cpp runs most patterns through std::regex on a text where each non-ASCII
// character stands for its Unicode category; JS regexes with \p{..} escapes on the real text
// split the same way.
import { TokenizerError } from '../errors.ts';

// llama.cpp's whitespace is the Unicode White_Space set. JS's \s differs: it lacks U+0085 and
// adds U+FEFF, so the patterns below use this class instead.
const WS = String.raw`\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000`;
const S = `[${WS}]`;
const NOT_S = `[^${WS}]`;

// GPT-2's pattern. llama.cpp's copy lacks the final `\s+`, but its hand-written matcher for this
// pattern behaves as if it were there.
const GPT2 = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^${WS}\p{L}\p{N}]+|${S}+(?!${NOT_S})|${S}+`;

// The tokenizer.json patterns start with (?i:'s|'t|...); llama.cpp spells the case-insensitive
// group out, which is what JS needs too (an inline (?i:) group is not portable).
const CONTRACTIONS = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])`;
const llama3Like = (digits: string): string =>
  String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}${digits}| ?[^${WS}\p{L}\p{N}]+[\r\n]*|${S}*[\r\n]+|${S}+(?!${NOT_S})|${S}+`;

export interface PreTokenizerSpec {
  /** Applied in order; see the file comment. */
  regexes: readonly string[];
  /** A word that is itself a token is taken whole, without merging (Llama 3's `ignore_merges`). */
  ignoreMerges: boolean;
}

const spec = (regexes: string[], ignoreMerges = false): PreTokenizerSpec => ({ regexes, ignoreMerges });

const DEFAULT = spec([String.raw`[\p{P}\$\+<=>\^~\|]+`, GPT2, String.raw`\p{N}+`, '[0-9][0-9][0-9]']);
const GPT2_SPEC = spec([GPT2]);
const LLAMA3 = spec([llama3Like('{1,3}')], true);
const LLAMA3_MERGING = spec([llama3Like('{1,3}')]);
const QWEN2 = spec([llama3Like('')]);
const SMOLLM = spec([String.raw`\p{N}`, GPT2]);
// The CJK class is llama.cpp's literal ranges 一-龥, ࠀ-一 and 가-퟿.
const DEEPSEEK_CODER = spec([String.raw`[\r\n]`, String.raw`${S}?\p{L}+`, String.raw`${S}?\p{P}+`, String.raw`[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+`, String.raw`\p{N}`]);
const FALCON = spec([String.raw`[\p{P}\$\+<=>\^~\|\x60]+`, GPT2, '[0-9][0-9][0-9]']);

/** Pre-tokenizer names as converters write them, with the aliases llama.cpp maps to the same regexes. */
const PRE_TOKENIZERS: Readonly<Record<string, PreTokenizerSpec>> = {
  default: DEFAULT,
  'gpt-2': GPT2_SPEC,
  gpt2: GPT2_SPEC,
  'phi-2': GPT2_SPEC,
  mpt: GPT2_SPEC,
  olmo: GPT2_SPEC,
  jais: GPT2_SPEC,
  'roberta-bpe': GPT2_SPEC,
  'llama-bpe': LLAMA3,
  llama3: LLAMA3,
  'llama-v3': LLAMA3,
  falcon3: LLAMA3,
  pixtral: LLAMA3,
  dbrx: LLAMA3_MERGING,
  'smaug-bpe': LLAMA3_MERGING,
  qwen2: QWEN2,
  'deepseek-r1-qwen': QWEN2,
  megrez: QWEN2,
  stablelm2: QWEN2,
  smollm: SMOLLM,
  starcoder: SMOLLM,
  refact: SMOLLM,
  'command-r': SMOLLM,
  codeshell: SMOLLM,
  exaone: SMOLLM,
  'minerva-7b': SMOLLM,
  'deepseek-coder': DEEPSEEK_CODER,
  falcon: FALCON,
};

/** Pre-tokenizer names that llama.cpp treats as Llama 3, which also add BOS unless the file says not to. */
export const LLAMA3_PRE_NAMES: ReadonlySet<string> = new Set(
  Object.entries(PRE_TOKENIZERS)
    .filter(([, s]) => s === LLAMA3)
    .map(([name]) => name),
);

export const PRE_TOKENIZER_NAMES: readonly string[] = Object.keys(PRE_TOKENIZERS);

/** The compiled regexes for a `tokenizer.ggml.pre` name; unknown names throw with the list of known ones. */
export function preTokenizerFor(pre: string): { regexes: RegExp[]; ignoreMerges: boolean } {
  const s = Object.hasOwn(PRE_TOKENIZERS, pre) ? PRE_TOKENIZERS[pre] : undefined;
  if (!s) {
    throw new TokenizerError(
      'unsupported-pre',
      `the BPE pre-tokenizer '${pre}' (tokenizer.ggml.pre) is not supported; chunklm knows ${PRE_TOKENIZER_NAMES.join(', ')}`,
      { pre },
    );
  }
  return { regexes: s.regexes.map((r) => new RegExp(r, 'gu')), ignoreMerges: s.ignoreMerges };
}

/** Cuts text into words with the regexes in sequence (see the file comment). */
export function preTokenize(text: string, regexes: readonly RegExp[]): string[] {
  let pieces = text.length > 0 ? [text] : [];
  for (const re of regexes) {
    const next: string[] = [];
    for (const piece of pieces) {
      let last = 0;
      re.lastIndex = 0;
      for (let m = re.exec(piece); m !== null; m = re.exec(piece)) {
        // None of the patterns matches the empty string; guard anyway so a bad one cannot spin.
        if (m[0].length === 0) {
          re.lastIndex++;
          continue;
        }
        if (m.index > last) next.push(piece.slice(last, m.index));
        next.push(m[0]);
        last = m.index + m[0].length;
      }
      if (last < piece.length) next.push(piece.slice(last));
    }
    pieces = next;
  }
  return pieces;
}
