// Byte-level BPE (GGUF `tokenizer.ggml.model` = 'gpt2'): the text is split into words by the
// pre-tokenizer regexes that `tokenizer.ggml.pre` names, each word's UTF-8 bytes are mapped to
// printable characters (GPT-2's byte-to-unicode table), and adjacent symbols are merged by
// merge rank (lowest first, ties leftmost).
import { TokenizerError } from '../errors.ts';
import { MinHeap } from './heap.ts';
import type { Vocab } from './vocab.ts';

const CONTRACTIONS_CI = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/**
 * Pre-tokenizers by GGUF name: regexes applied in sequence, each splitting every fragment the
 * previous ones produced (text between matches stays a fragment of its own), as llama.cpp does.
 */
export const PRE_TOKENIZERS: Record<string, string[]> = {
  default: [GPT2],
  'gpt-2': [GPT2],
  gpt2: [GPT2],
  'llama-bpe': [`${CONTRACTIONS_CI}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`],
  qwen2: [`${CONTRACTIONS_CI}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`],
  smollm: ['\\p{N}', GPT2],
  'deepseek-coder': ['[\\r\\n]', '\\s?\\p{L}+', '\\s?\\p{P}+', '[\\u4e00-\\u9fa5\\u0800-\\u4e00\\uac00-\\ud7ff]+', '\\p{N}'],
  falcon: ['[\\p{P}\\$\\+<=>\\^~\\|`]+', GPT2, '[0-9][0-9][0-9]'],
};
PRE_TOKENIZERS.llama3 = PRE_TOKENIZERS['llama-bpe'];

/** GPT-2's reversible map from bytes to printable unicode characters. */
function byteToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const map: string[] = new Array(256);
  for (const b of bs) map[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (map[b] === undefined) map[b] = String.fromCodePoint(256 + n++);
  }
  return map;
}

export const BYTE_TO_UNICODE = byteToUnicode();
export const UNICODE_TO_BYTE = new Map(BYTE_TO_UNICODE.map((c, b) => [c, b]));

export function splitByRegexes(text: string, regexes: RegExp[]): string[] {
  let fragments = [text];
  for (const re of regexes) {
    const next: string[] = [];
    for (const f of fragments) {
      let last = 0;
      re.lastIndex = 0;
      for (const m of f.matchAll(re)) {
        if (m[0].length === 0) continue;
        if (m.index > last) next.push(f.slice(last, m.index));
        next.push(m[0]);
        last = m.index + m[0].length;
      }
      if (last < f.length) next.push(f.slice(last));
    }
    fragments = next;
  }
  return fragments;
}

interface Bigram {
  left: number;
  right: number;
  rank: number;
  text: string;
}

export class BpeModel {
  private readonly regexes: RegExp[];
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();
  /** Llama 3 looks a whole word up before merging. */
  private readonly ignoreMerges: boolean;

  constructor(
    private readonly vocab: Vocab,
    merges: string[],
    pre: string,
  ) {
    const exprs = PRE_TOKENIZERS[pre];
    if (!exprs) {
      throw new TokenizerError('unsupported-pre', `pre-tokenizer '${pre}' is not supported; chunklm knows ${Object.keys(PRE_TOKENIZERS).join(', ')}`, { pre });
    }
    this.regexes = exprs.map((e) => new RegExp(e, 'gu'));
    merges.forEach((m, i) => this.ranks.set(m, i));
    this.ignoreMerges = pre === 'llama-bpe' || pre === 'llama3';
  }

  encode(text: string, out: number[]): void {
    for (const word of splitByRegexes(text, this.regexes)) {
      let ids = this.cache.get(word);
      if (!ids) {
        ids = this.encodeWord(word);
        if (this.cache.size < 100_000) this.cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  private encodeWord(word: string): number[] {
    let mapped = '';
    for (const b of new TextEncoder().encode(word)) mapped += BYTE_TO_UNICODE[b];
    const whole = this.vocab.ids.get(mapped);
    if (this.ignoreMerges && whole !== undefined) return [whole];
    const syms = Array.from(mapped).map((text, i, a) => ({ text, next: i + 1 < a.length ? i + 1 : -1, prev: i - 1, alive: true }));
    const heap = new MinHeap<Bigram>((a, b) => a.rank < b.rank || (a.rank === b.rank && a.left < b.left));
    const tryAdd = (left: number, right: number) => {
      if (left < 0 || right < 0) return;
      const rank = this.ranks.get(`${syms[left].text} ${syms[right].text}`);
      if (rank !== undefined) heap.push({ left, right, rank, text: syms[left].text + syms[right].text });
    };
    for (let i = 1; i < syms.length; i++) tryAdd(i - 1, i);
    while (heap.size > 0) {
      const b = heap.pop()!;
      const l = syms[b.left];
      const r = syms[b.right];
      if (!l.alive || !r.alive || l.next !== b.right || l.text + r.text !== b.text) continue;
      l.text = b.text;
      r.alive = false;
      l.next = r.next;
      if (r.next >= 0) syms[r.next].prev = b.left;
      tryAdd(l.prev, b.left);
      tryAdd(b.left, l.next);
    }
    const ids: number[] = [];
    for (let i = syms.length > 0 ? 0 : -1; i >= 0; i = syms[i].next) {
      const id = this.vocab.ids.get(syms[i].text);
      if (id !== undefined) ids.push(id);
      else {
        // A symbol with no token of its own: its characters one by one (each a byte).
        for (const c of syms[i].text) {
          const cid = this.vocab.ids.get(c);
          ids.push(cid ?? this.vocab.unkId);
        }
      }
    }
    return ids;
  }

  /** The bytes a token stands for. */
  tokenBytes(id: number): Uint8Array {
    const piece = this.vocab.tokens[id];
    const bytes: number[] = [];
    for (const c of piece) {
      const b = UNICODE_TO_BYTE.get(c);
      if (b !== undefined) bytes.push(b);
      else bytes.push(...new TextEncoder().encode(c));
    }
    return new Uint8Array(bytes);
  }
}
