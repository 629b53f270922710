// The streaming decoder: generated tokens arrive one by one, and a character whose UTF-8 bytes are
// spread over several tokens (SentencePiece byte tokens, byte-level BPE pieces) must come out
// whole, once, when its last byte arrives.
import { describe, expect, it } from 'vitest';
import { createTokenizer, TokenType, type DecodeOptions, type Tokenizer } from '../../src/tokenizer/index.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';
import { hasVectors, readVectors, vocabMetadata } from './fixtures.ts';

/** Pushes ids one at a time; returns each push's text and the flush. */
function stream(tok: Tokenizer, ids: number[], opts?: DecodeOptions): { pieces: string[]; rest: string } {
  const d = tok.createStreamDecoder(opts);
  const pieces = ids.map((id) => d.push(id));
  return { pieces, rest: d.flush() };
}

const TEXT = '🦙 日本語のテキスト ✅ 😶‍🌫️ naïve Ελληνικά';

/** A SentencePiece vocab with only the byte tokens and U+2581, so every character goes through bytes. */
function bytesOnlySpm(): Tokenizer {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types: number[] = [TokenType.unknown, TokenType.control, TokenType.control];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TokenType.byte);
  }
  tokens.push('\u2581');
  types.push(TokenType.normal);
  return createTokenizer({
    'tokenizer.ggml.model': 'llama',
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.scores': new Float32Array(tokens.length),
    'tokenizer.ggml.token_type': Int32Array.from(types),
  });
}

describe('stream decoder on byte tokens (tiny SentencePiece vocab)', () => {
  const tok = bytesOnlySpm();

  it('holds back partial characters and emits each one when its last byte arrives', () => {
    const ids = tok.encode('日🦙');
    // ▁, then E6 97 A5 for 日 and F0 9F A6 99 for 🦙.
    expect(ids).toHaveLength(8);
    const { pieces, rest } = stream(tok, ids);
    expect(pieces).toEqual(['', '', '', '日', '', '', '', '🦙']);
    expect(rest).toBe('');
  });

  it('concatenated pushes and the flush equal decode(), with and without the space prefix', () => {
    const ids = tok.encode(TEXT, { addBos: true });
    for (const opts of [{}, { stripLeadingSpace: false }, { skipSpecial: true }] as DecodeOptions[]) {
      const { pieces, rest } = stream(tok, ids, opts);
      expect(pieces.join('') + rest).toBe(tok.decode(ids, opts));
      expect(pieces.join('')).not.toContain('\uFFFD');
    }
    expect(tok.decode(ids, { skipSpecial: true })).toBe(TEXT);
    expect(tok.decode(ids, { skipSpecial: true, stripLeadingSpace: false })).toBe(` ${TEXT}`);
  });

  it('turns a character cut short by the end of the stream into U+FFFD on flush, as decode() does', () => {
    const ids = tok.encode('a🦙').slice(0, -1); // ▁ a F0 9F A6
    const { pieces, rest } = stream(tok, ids);
    expect(pieces.join('')).toBe('a');
    expect(rest).toBe('\uFFFD');
    expect(tok.decode(ids)).toBe('a\uFFFD');
  });

  it('replaces a stray continuation byte at once instead of waiting', () => {
    const stray = tok.encode('é').slice(-1); // only the A9 of C3 A9
    const ids = [...tok.encode('x'), ...stray, ...tok.encode('y').slice(1)];
    const { pieces, rest } = stream(tok, ids);
    expect(pieces.join('') + rest).toBe('x\uFFFDy');
    expect(tok.decode(ids)).toBe('x\uFFFDy');
  });

  it('can start again after a flush', () => {
    const d = tok.createStreamDecoder();
    const ids = tok.encode('本本'); // ▁ E6 9C AC E6 9C AC
    let out = '';
    for (const id of ids.slice(0, 3)) out += d.push(id);
    out += d.flush();
    for (const id of ids.slice(4)) out += d.push(id);
    out += d.flush();
    expect(out).toBe('\uFFFD本');
  });
});

const realVocabs = ['llama-spm', 'phi-3', 'gpt-2', 'deepseek-coder', 'falcon'].filter((n) => sharedFile(`vocab/ggml-vocab-${n}.gguf`) && hasVectors(n));

describe.skipIf(realVocabs.length === 0)(realVocabs.length ? `stream decoder on real vocabs (${realVocabs.join(', ')})` : missingShared('vocab'), () => {
  it.each(realVocabs)('%s: emoji and CJK come out whole, and the stream equals decode() for all 46 vectors', async (name) => {
    const tok = createTokenizer(await vocabMetadata(name));
    const ids = tok.encode(TEXT);
    const { pieces, rest } = stream(tok, ids);
    expect(pieces.join('') + rest).toBe(TEXT);
    expect(pieces.every((p) => !p.includes('\uFFFD'))).toBe(true);
    // Some token of these texts ends inside a character, so some push is empty.
    expect(pieces.some((p) => p === '')).toBe(true);
    for (const c of readVectors(name)) {
      const s = stream(tok, c.ids);
      expect(s.pieces.join('') + s.rest).toBe(tok.decode(c.ids));
    }
  });

  it.skipIf(!realVocabs.includes('gpt-2'))('gpt-2: a byte-level token that ends mid-character is held until the next one completes it', async () => {
    const tok = createTokenizer(await vocabMetadata('gpt-2'));
    const ids = tok.encode('🦙');
    expect(ids.length).toBeGreaterThan(1);
    const { pieces } = stream(tok, ids);
    expect(pieces.slice(0, -1).join('')).toBe('');
    expect(pieces.at(-1)).toBe('🦙');
  });
});
