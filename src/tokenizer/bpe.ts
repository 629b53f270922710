// Byte-level BPE (`tokenizer.ggml.model` = 'gpt2'), as llama.cpp's llm_tokenizer_bpe does it: the
// pre-tokenizer cuts the text into words, each word's UTF-8 bytes become printable characters
// through GPT-2's byte-to-unicode table, and the adjacent pair with the lowest merge rank is merged
// (ties: the leftmost pair) until no pair has a merge. Results are cached per word.
import { mergeSymbols } from './heap.ts';
import { preTokenize, preTokenizerFor } from './pre-tokenizer.ts';
import type { Vocab } from './vocab.ts';

/**
 * GPT-2's byte-to-unicode table: printable Latin-1 bytes stand for themselves, the other 68
 * bytes (controls, space, 0x7F-0xA0, 0xAD) take U+0100 onwards in byte order.
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const map = new Array<string>(256);
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCharCode(printable(b) ? b : 0x100 + n++);
  return map;
})();

/** The inverse table, indexed by char code (all codes are below 0x144). */
const CHAR_TO_BYTE: Int16Array = (() => {
  const inv = new Int16Array(0x144).fill(-1);
  BYTE_TO_CHAR.forEach((c, b) => (inv[c.charCodeAt(0)] = b));
  return inv;
})();

const utf8 = new TextEncoder();

/** The bytes a byte-level token text stands for; characters outside the table keep their own UTF-8. */
export function byteLevelBytes(text: string): Uint8Array {
  const out: number[] = [];
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    const b = code < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[code] : -1;
    if (b >= 0) out.push(b);
    else for (const x of utf8.encode(ch)) out.push(x);
  }
  return Uint8Array.from(out);
}

/** Words cached before the cache is cleared; enough for any prompt, bounded for long sessions. */
const CACHE_LIMIT = 50_000;

export class BpeEncoder {
  private readonly regexes: RegExp[];
  private readonly ignoreMerges: boolean;
  private readonly cache = new Map<string, readonly number[]>();

  constructor(private readonly vocab: Vocab) {
    const pre = preTokenizerFor(vocab.pre);
    this.regexes = pre.regexes;
    this.ignoreMerges = pre.ignoreMerges;
  }

  /** Appends the ids of `text` (a fragment with no special tokens) to `out`. */
  encode(text: string, out: number[]): void {
    for (const word of preTokenize(text, this.regexes)) {
      let ids = this.cache.get(word);
      if (ids === undefined) {
        ids = this.encodeWord(word);
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  private encodeWord(word: string): number[] {
    const { tokenToId, mergeRanks } = this.vocab;
    let mapped = '';
    for (const b of utf8.encode(word)) mapped += BYTE_TO_CHAR[b];
    if (this.ignoreMerges) {
      const whole = tokenToId.get(mapped);
      if (whole !== undefined) return [whole];
    }

    // Every mapped character is one UTF-16 unit, so symbol i starts at i; `len` grows by merging.
    const n = mapped.length;
    const len = new Int32Array(n).fill(1);
    const next = mergeSymbols(len, (left, right) => mergeRanks.get(`${mapped.substr(left, len[left])} ${mapped.substr(right, len[right])}`));

    const ids: number[] = [];
    for (let i = n > 0 ? 0 : -1; i !== -1; i = next[i]) {
      const piece = mapped.substr(i, len[i]);
      const id = tokenToId.get(piece);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      // A merge whose result is not a token: fall back to its characters (one byte each). llama.cpp
      // tries the same but only finds ASCII ones; a vocab missing a byte character loses that byte.
      for (const ch of piece) {
        const cid = tokenToId.get(ch);
        if (cid !== undefined) ids.push(cid);
        else if (this.vocab.unkId >= 0) ids.push(this.vocab.unkId);
      }
    }
    return ids;
  }
}
