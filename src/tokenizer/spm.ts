// SentencePiece-style tokenization (GGUF `tokenizer.ggml.model` = 'llama'): the text with spaces
// as U+2581 is split into characters, then the adjacent pair whose concatenation is the
// highest-scoring vocabulary piece is merged until none is left (ties: leftmost); pieces not in
// the vocabulary fall back to their UTF-8 bytes as <0xXX> tokens.
import { MinHeap } from './heap.ts';
import type { Vocab } from './vocab.ts';

interface Symbol {
  text: string;
  prev: number;
  next: number;
  /** Length when queued bigrams were made; 0 once merged away. */
  alive: boolean;
}

interface Bigram {
  left: number;
  right: number;
  score: number;
  text: string;
}

export class SpmModel {
  private readonly byteIds: Int32Array;

  constructor(private readonly vocab: Vocab) {
    this.byteIds = new Int32Array(256).fill(-1);
    for (let b = 0; b < 256; b++) {
      const id = vocab.ids.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      if (id !== undefined) this.byteIds[b] = id;
    }
  }

  /** Tokenizes a fragment that has already had its space prefix added and spaces escaped. */
  encode(text: string, out: number[]): void {
    if (text.length === 0) return;
    const chars = Array.from(text);
    const syms: Symbol[] = chars.map((c, i) => ({ text: c, prev: i - 1, next: i + 1 < chars.length ? i + 1 : -1, alive: true }));
    const heap = new MinHeap<Bigram>((a, b) => a.score > b.score || (a.score === b.score && a.left < b.left));
    const tryAdd = (left: number, right: number) => {
      if (left < 0 || right < 0) return;
      const text = syms[left].text + syms[right].text;
      const id = this.vocab.ids.get(text);
      if (id === undefined) return;
      heap.push({ left, right, score: this.vocab.scores ? this.vocab.scores[id] : 0, text });
    };
    for (let i = 1; i < syms.length; i++) tryAdd(i - 1, i);
    while (heap.size > 0) {
      const b = heap.pop()!;
      const l = syms[b.left];
      const r = syms[b.right];
      // Stale: one side was merged since this bigram was queued.
      if (!l.alive || !r.alive || l.next !== b.right || l.text + r.text !== b.text) continue;
      l.text = b.text;
      r.alive = false;
      l.next = r.next;
      if (r.next >= 0) syms[r.next].prev = b.left;
      tryAdd(l.prev, b.left);
      tryAdd(b.left, l.next);
    }
    for (let i = 0; i >= 0; i = syms[i].next) {
      const s = syms[i];
      const id = this.vocab.ids.get(s.text);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      for (const byte of new TextEncoder().encode(s.text)) {
        const bid = this.byteIds[byte];
        out.push(bid >= 0 ? bid : this.vocab.unkId);
      }
    }
  }

  /** The bytes a token stands for (control tokens stand for nothing). */
  tokenBytes(id: number, byteType: boolean): Uint8Array | number {
    const piece = this.vocab.tokens[id];
    if (byteType) {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
      if (m) return parseInt(m[1], 16);
    }
    return new TextEncoder().encode(piece.replace(/\u2581/g, ' '));
  }
}
