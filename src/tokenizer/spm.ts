// SentencePiece-style encoding (`tokenizer.ggml.model` = 'llama'), as llama.cpp's
// llm_tokenizer_spm does it: the text, spaces already turned into U+2581, starts as one symbol per
// character; the adjacent pair whose concatenation is the best-scoring vocabulary token is merged
// (ties: the leftmost pair) until no pair forms a token. A final symbol that is not a token falls
// back to its UTF-8 bytes as <0xXX> tokens, or to <unk> when the vocabulary has no byte tokens.
//
// llama.cpp also keeps a "rev_merge" table to split untokenizable symbols back into their parts;
// a merged symbol is always a token by construction, so that path never runs and is left out.
import { TokenizerError } from '../errors.ts';
import { mergeSymbols } from './heap.ts';
import type { Vocab } from './vocab.ts';

const utf8 = new TextEncoder();

export class SpmEncoder {
  /** Token id per byte value (<0xXX>, or the one-character token for ASCII), -1 when absent. */
  private readonly byteIds = new Int32Array(256).fill(-1);

  constructor(private readonly vocab: Vocab) {
    for (let b = 0; b < 256; b++) {
      const hex = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      const id = vocab.tokenToId.get(hex) ?? (b < 0x80 ? vocab.tokenToId.get(String.fromCharCode(b)) : undefined);
      if (id !== undefined) this.byteIds[b] = id;
    }
  }

  /** Appends the ids of `text` (space prefix added and spaces escaped already) to `out`. */
  encode(text: string, out: number[]): void {
    const { tokenToId, scores } = this.vocab;
    // One symbol per code point, as (start, len) into `text`, in a doubly linked list.
    const n0 = text.length;
    const start = new Int32Array(n0);
    const len = new Int32Array(n0);
    let n = 0;
    for (let i = 0; i < n0; ) {
      const c = text.charCodeAt(i);
      const w = c >= 0xd800 && c < 0xdc00 && i + 1 < n0 ? 2 : 1;
      start[n] = i;
      len[n] = w;
      n++;
      i += w;
    }
    if (n === 0) return;
    // Best score first: keys are negated scores.
    const next = mergeSymbols(len.subarray(0, n), (left, right) => {
      const id = tokenToId.get(text.substr(start[left], len[left] + len[right]));
      return id === undefined ? undefined : -scores[id];
    });

    for (let i = 0; i !== -1; i = next[i]) {
      const piece = text.substr(start[i], len[i]);
      const id = tokenToId.get(piece);
      if (id !== undefined) out.push(id);
      else this.byteFallback(piece, out);
    }
  }

  private byteFallback(piece: string, out: number[]): void {
    const bytes = utf8.encode(piece);
    const ids: number[] = [];
    for (const b of bytes) {
      if (this.byteIds[b] < 0) {
        const unk = this.vocab.unkId;
        if (unk < 0) {
          throw new TokenizerError(
            'unencodable',
            `cannot encode ${JSON.stringify(piece)}: it is not in the vocabulary, which has neither byte tokens nor an unknown token`,
            { text: piece },
          );
        }
        out.push(unk);
        return;
      }
      ids.push(this.byteIds[b]);
    }
    for (const id of ids) out.push(id);
  }
}
