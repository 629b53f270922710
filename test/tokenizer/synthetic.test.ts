// Tiny hand-made vocabularies that pin down the merge rules, byte fallback and metadata errors
// without the shared vocab files, so these run everywhere.
import { describe, expect, it } from 'vitest';
import { TokenizerError } from '../../src/errors.ts';
import { createTokenizer, TokenType } from '../../src/tokenizer/index.ts';

const hex = (b: number): string => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

/** SentencePiece-style metadata: <unk> <s> </s>, optionally the 256 byte tokens, then `pieces` with their scores. */
function spmMetadata(pieces: [text: string, score: number][], opts: { byteTokens?: boolean; extra?: Record<string, unknown> } = {}): Record<string, unknown> {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types: number[] = [TokenType.unknown, TokenType.control, TokenType.control];
  const scores = [0, 0, 0];
  if (opts.byteTokens ?? true) {
    for (let b = 0; b < 256; b++) {
      tokens.push(hex(b));
      types.push(TokenType.byte);
      scores.push(0);
    }
  }
  for (const [text, score] of pieces) {
    tokens.push(text);
    types.push(TokenType.normal);
    scores.push(score);
  }
  return {
    'tokenizer.ggml.model': 'llama',
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.scores': Float32Array.from(scores),
    'tokenizer.ggml.token_type': Int32Array.from(types),
    ...opts.extra,
  };
}

/** Byte-level BPE metadata: the 256 GPT-2 byte characters, then merged tokens, and the merges in rank order. */
function bpeMetadata(merges: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const byteChars: string[] = [];
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) byteChars.push(String.fromCharCode(printable(b) ? b : 0x100 + n++));
  const tokens = [...byteChars, ...merges.map((m) => m.replace(' ', '')), '<|endoftext|>'];
  const types = tokens.map((_, i) => (i === tokens.length - 1 ? TokenType.control : TokenType.normal));
  return {
    'tokenizer.ggml.model': 'gpt2',
    'tokenizer.ggml.pre': 'gpt-2',
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.token_type': Int32Array.from(types),
    'tokenizer.ggml.merges': merges,
    'tokenizer.ggml.eos_token_id': tokens.length - 1,
    ...extra,
  };
}

const texts = (tok: ReturnType<typeof createTokenizer>, ids: number[]): string[] => ids.map((id) => tok.tokenText(id));

describe('SentencePiece-style encoding on a tiny vocab', () => {
  it('merges the best-scoring pair first, not the leftmost', () => {
    const tok = createTokenizer(spmMetadata([['▁', -10], ['a', -1], ['b', -1], ['c', -1], ['ab', -5], ['bc', -2]], { extra: { 'tokenizer.ggml.add_space_prefix': false } }));
    expect(texts(tok, tok.encode('abc'))).toEqual(['a', 'bc']);
  });

  it('breaks score ties by taking the leftmost pair', () => {
    const tok = createTokenizer(spmMetadata([['a', -1], ['aa', -2]], { extra: { 'tokenizer.ggml.add_space_prefix': false } }));
    expect(texts(tok, tok.encode('aaa'))).toEqual(['aa', 'a']);
  });

  it('puts a space before the text and turns spaces into U+2581', () => {
    const tok = createTokenizer(spmMetadata([['▁', -10], ['a', -1], ['▁a', -2]]));
    expect(tok.addBos).toBe(true);
    expect(texts(tok, tok.encode('a a'))).toEqual(['▁a', '▁a']);
    expect(tok.decode(tok.encode('a a'))).toBe('a a');
    expect(tok.decode(tok.encode('a a', { addBos: true }))).toBe('<s>a a');
  });

  it('falls back to <0xXX> byte tokens for pieces outside the vocabulary, and decodes them back', () => {
    const tok = createTokenizer(spmMetadata([['▁', -10], ['a', -1]]));
    const ids = tok.encode('aé');
    expect(texts(tok, ids)).toEqual(['▁', 'a', '<0xC3>', '<0xA9>']);
    expect(tok.decode(ids)).toBe('aé');
  });

  it('falls back to <unk> when the vocab has no byte tokens', () => {
    const tok = createTokenizer(spmMetadata([['▁', -10], ['a', -1]], { byteTokens: false }));
    expect(tok.encode('aé')).toEqual([tok.encode('a')[0], tok.encode('a')[1], 0]);
  });

  it('defaults BOS, EOS and unknown to 1, 2 and 0, and EOS ends turns', () => {
    const tok = createTokenizer(spmMetadata([]));
    expect([tok.bosId, tok.eosId]).toEqual([1, 2]);
    expect([...tok.eotIds]).toEqual([2]);
    expect([tok.isSpecial(0), tok.isSpecial(1), tok.isSpecial(3)]).toEqual([true, true, false]);
  });

  it('respects add_bos_token = false', () => {
    expect(createTokenizer(spmMetadata([], { extra: { 'tokenizer.ggml.add_bos_token': false } })).addBos).toBe(false);
  });
});

describe('byte-level BPE encoding on a tiny vocab', () => {
  it('applies merges by rank, lowest first', () => {
    // "e l" outranks "h e", so "hel" becomes h + el, never he + l.
    const tok = createTokenizer(bpeMetadata(['e l', 'h e', 'h el']));
    expect(texts(tok, tok.encode('hel'))).toEqual(['hel']);
    const tok2 = createTokenizer(bpeMetadata(['e l', 'h e', 'he l']));
    expect(texts(tok2, tok2.encode('hel'))).toEqual(['h', 'el']);
  });

  it('cuts words with the pre-tokenizer before merging, keeping the space on the next word', () => {
    const tok = createTokenizer(bpeMetadata(['Ġ h', 'Ġh i', 'h i']));
    expect(texts(tok, tok.encode('hi hi'))).toEqual(['hi', 'Ġhi']);
    expect(tok.decode(tok.encode('hi hi'))).toBe('hi hi');
  });

  it('encodes any text through the byte characters and decodes it back', () => {
    const tok = createTokenizer(bpeMetadata([]));
    const text = 'naïve 🦙 日本\n\t';
    expect(tok.encode(text)).toHaveLength(new TextEncoder().encode(text).length);
    expect(tok.decode(tok.encode(text))).toBe(text);
  });

  it('has no BOS unless the file names one, and refuses addBos without one', () => {
    const tok = createTokenizer(bpeMetadata([]));
    expect(tok.bosId).toBe(-1);
    expect(tok.addBos).toBe(false);
    expect(() => tok.encode('x', { addBos: true })).toThrow(expect.objectContaining({ name: 'TokenizerError', code: 'no-bos' }));
  });

  it('matches control tokens only with parseSpecial', () => {
    const tok = createTokenizer(bpeMetadata([]));
    expect(tok.encode('a<|endoftext|>', { parseSpecial: true })).toEqual([...tok.encode('a'), tok.eosId]);
    expect(tok.encode('a<|endoftext|>')).not.toContain(tok.eosId);
    expect(tok.decode([tok.eosId])).toBe('<|endoftext|>');
    expect(tok.decode([tok.eosId], { skipSpecial: true })).toBe('');
  });
});

describe('metadata errors', () => {
  const code = (f: () => unknown): string => {
    try {
      f();
    } catch (err) {
      expect(err).toBeInstanceOf(TokenizerError);
      return (err as TokenizerError).code;
    }
    throw new Error('expected a TokenizerError');
  };

  it('names the problem with a TokenizerError code', () => {
    expect(code(() => createTokenizer({ ...spmMetadata([]), 'tokenizer.ggml.model': 'bert' }))).toBe('unsupported-model');
    expect(code(() => createTokenizer(bpeMetadata([], { 'tokenizer.ggml.pre': 'no-such-pre' })))).toBe('unsupported-pre');
    expect(code(() => createTokenizer({}))).toBe('missing-key');
    expect(code(() => createTokenizer({ 'tokenizer.ggml.model': 'llama' }))).toBe('missing-key');
    expect(code(() => createTokenizer({ ...bpeMetadata([]), 'tokenizer.ggml.merges': undefined }))).toBe('missing-key');
    expect(code(() => createTokenizer({ ...spmMetadata([]), 'tokenizer.ggml.scores': new Float32Array(2) }))).toBe('bad-vocab');
    expect(code(() => createTokenizer({ ...spmMetadata([]), 'tokenizer.ggml.tokens': 'abc' }))).toBe('bad-key-type');
  });

  it('rejects token ids outside the vocabulary', () => {
    const tok = createTokenizer(spmMetadata([]));
    expect(code(() => tok.decode([tok.vocabSize]))).toBe('bad-token');
    expect(code(() => tok.tokenText(-1))).toBe('bad-token');
    expect(code(() => tok.createStreamDecoder().push(1.5))).toBe('bad-token');
  });

  it('says which pre-tokenizer it does not know and lists the ones it does', () => {
    expect(() => createTokenizer(bpeMetadata([], { 'tokenizer.ggml.pre': 'no-such-pre' }))).toThrow(/'no-such-pre'.*llama-bpe.*qwen2/);
  });
});
