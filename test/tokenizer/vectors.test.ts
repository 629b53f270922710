// The tokenizers against llama.cpp's test vectors (../shared/vocab/*.inp → *.out), encoded as
// llama.cpp's test-tokenizer-0 does (add_special = false, parse_special = false), plus the
// behaviour around them that the vectors do not cover: BOS, special tokens, decoding.
import { describe, expect, it } from 'vitest';
import { createTokenizer, type Tokenizer } from '../../src/tokenizer/index.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';
import { hasVectors, readVectors, vocabMetadata } from './fixtures.ts';

const VOCABS = ['llama-spm', 'phi-3', 'gpt-2', 'deepseek-coder', 'falcon'] as const;

const tokenizers = new Map<string, Tokenizer>();
async function load(name: string): Promise<Tokenizer> {
  let t = tokenizers.get(name);
  if (!t) {
    t = createTokenizer(await vocabMetadata(name));
    tokenizers.set(name, t);
  }
  return t;
}

for (const name of VOCABS) {
  const file = `vocab/ggml-vocab-${name}.gguf`;
  const present = sharedFile(file) !== undefined && hasVectors(name);
  describe.skipIf(!present)(present ? `${name} vectors` : missingShared(file), () => {
    it('encodes all 46 inputs to llama.cpp ids', async () => {
      const tok = await load(name);
      const cases = readVectors(name);
      expect(cases).toHaveLength(46);
      const wrong = cases
        .map((c) => ({ input: c.input, want: c.ids, got: tok.encode(c.input, { addBos: false, parseSpecial: false }) }))
        .filter((c) => JSON.stringify(c.got) !== JSON.stringify(c.want));
      expect(wrong).toEqual([]);
    });

    it('decodes every encoded input back to the same text', async () => {
      const tok = await load(name);
      const back = readVectors(name).filter((c) => tok.decode(tok.encode(c.input)) !== c.input);
      expect(back.map((c) => c.input)).toEqual([]);
      // And the vector ids themselves decode to the inputs.
      expect(readVectors(name).filter((c) => tok.decode(c.ids) !== c.input)).toEqual([]);
    });
  });
}

describe.skipIf(!sharedFile('vocab/ggml-vocab-llama-spm.gguf'))('llama-spm (SentencePiece) specifics', () => {
  it('adds BOS when asked and by default wants it; decode drops the space prefix after BOS too', async () => {
    const tok = await load('llama-spm');
    expect(tok.addBos).toBe(true);
    expect([tok.bosId, tok.eosId]).toEqual([1, 2]);
    const ids = tok.encode('Hello world', { addBos: true });
    expect(ids[0]).toBe(1);
    expect(ids.slice(1)).toEqual(tok.encode('Hello world'));
    expect(tok.decode(ids)).toBe('<s>Hello world');
    expect(tok.decode(ids, { skipSpecial: true })).toBe('Hello world');
    expect(tok.decode(ids, { stripLeadingSpace: false, skipSpecial: true })).toBe(' Hello world');
  });

  it('matches control-token text only with parseSpecial', async () => {
    const tok = await load('llama-spm');
    expect(tok.encode('<s>', { parseSpecial: true })).toEqual([1]);
    const literal = tok.encode('<s>');
    expect(literal).not.toContain(1);
    expect(tok.decode(literal)).toBe('<s>');
    // The space prefix goes before the text after a special token, as llama.cpp does.
    expect(tok.encode('</s>Hi', { parseSpecial: true })).toEqual([2, ...tok.encode('Hi')]);
  });

  it('falls back to byte tokens for characters outside the vocabulary', async () => {
    const tok = await load('llama-spm');
    const ids = tok.encode('🦙');
    expect(ids.map((id) => tok.tokenText(id))).toEqual(['▁', '<0xF0>', '<0x9F>', '<0xA6>', '<0x99>']);
    expect(tok.decode(ids)).toBe('🦙');
  });

  it('answers tokenText, isSpecial and eotIds from the vocabulary', async () => {
    const tok = await load('llama-spm');
    expect(tok.vocabSize).toBe(32000);
    expect(tok.tokenText(1)).toBe('<s>');
    expect([tok.isSpecial(0), tok.isSpecial(1), tok.isSpecial(2), tok.isSpecial(3), tok.isSpecial(100)]).toEqual([true, true, true, false, false]);
    expect([...tok.eotIds]).toEqual([2]);
    expect(() => tok.decode([32000])).toThrow(/outside the vocabulary/);
  });
});

describe.skipIf(!sharedFile('vocab/ggml-vocab-phi-3.gguf'))('phi-3 specifics', () => {
  it('ends turns at <|endoftext|> and <|end|>', async () => {
    const tok = await load('phi-3');
    expect(tok.eosId).toBe(32000);
    expect(tok.eotIds.has(32000)).toBe(true);
    expect(tok.eotIds.has(32007)).toBe(true);
    expect(tok.tokenText(32007)).toBe('<|end|>');
  });

  it('reads a user-defined </s> as a control token, as llama.cpp does: end-of-generation text encodes literally without parseSpecial', async () => {
    const tok = await load('phi-3');
    // The vocabulary types </s> (id 2) user-defined and <|end|> (32007) control; both end generation.
    expect(tok.notices).toEqual([expect.stringContaining('token 2 "</s>"')]);
    expect(tok.eotIds.has(2)).toBe(true);
    for (const [text, id] of [['</s>', 2], ['<|end|>', 32007]] as const) {
      const literal = tok.encode(text);
      expect(literal).not.toContain(id);
      expect(literal.length).toBeGreaterThan(1);
      expect(tok.decode(literal)).toBe(text);
      expect(tok.encode(text, { parseSpecial: true })).toEqual([id]);
    }
    // llama.cpp's ids for the same texts (llama_tokenize, parse_special false).
    expect(tok.encode('</s>')).toEqual([1533, 29879, 29958]);
    expect(tok.encode('<|end|>')).toEqual([529, 29989, 355, 29989, 29958]);
  });

  it('strips the whitespace after its chat markers, as llama.cpp does for Phi-3', async () => {
    const tok = await load('phi-3');
    const ids = tok.encode('<|user|>\nHi<|end|>\n<|assistant|>\n', { parseSpecial: true });
    expect(ids).toEqual([32010, ...tok.encode('Hi'), 32007, 32001]);
    expect(tok.decode(ids, { skipSpecial: true })).toBe('Hi');
  });
});

describe.skipIf(!sharedFile('vocab/ggml-vocab-deepseek-coder.gguf'))('deepseek-coder specifics', () => {
  it('splits user-defined tokens out of text even without parseSpecial, but not control tokens', async () => {
    const tok = await load('deepseek-coder');
    expect(tok.addBos).toBe(true);
    expect(tok.encode('<|EOT|>')).toEqual([32021]);
    expect(tok.encode('a<pad>b')).toEqual([...tok.encode('a'), 32018, ...tok.encode('b')]);
    const bos = '<｜begin▁of▁sentence｜>';
    expect(tok.encode(bos)).not.toContain(32013);
    expect(tok.encode(bos, { parseSpecial: true })).toEqual([32013]);
    expect(tok.decode([32013, ...tok.encode('x')], { skipSpecial: true })).toBe('x');
  });

  it('reads its user-defined fill-in-the-middle tokens as control tokens, as llama.cpp does', async () => {
    const tok = await load('deepseek-coder');
    const fim = [['<｜fim▁begin｜>', 32016], ['<｜fim▁hole｜>', 32015], ['<｜fim▁end｜>', 32017]] as const;
    expect(tok.notices).toHaveLength(3);
    for (const [text, id] of fim) {
      expect(tok.encode(`a${text}b`)).not.toContain(id);
      expect(tok.encode(`a${text}b`, { parseSpecial: true })).toContain(id);
      expect(tok.eotIds.has(id)).toBe(false);
    }
  });
});

describe.skipIf(!sharedFile('vocab/ggml-vocab-gpt-2.gguf'))('gpt-2 specifics', () => {
  it('has no BOS by default and ends at <|endoftext|>', async () => {
    const tok = await load('gpt-2');
    expect(tok.model).toBe('gpt2');
    expect(tok.addBos).toBe(false);
    expect(tok.eotIds).toEqual(new Set([50256]));
    expect(tok.encode('<|endoftext|>', { parseSpecial: true })).toEqual([50256]);
    expect(tok.encode('<|endoftext|>').length).toBeGreaterThan(1);
    // Byte-level BPE keeps leading spaces: nothing to strip.
    expect(tok.decode(tok.encode(' x'))).toBe(' x');
  });
});

describe.skipIf(!VOCABS.every((n) => sharedFile(`vocab/ggml-vocab-${n}.gguf`) && hasVectors(n)))('speed', () => {
  it('builds the five vocabs and encodes the 5 × 46 vectors in well under a few seconds', async () => {
    const metas = await Promise.all(VOCABS.map((n) => vocabMetadata(n)));
    const t0 = performance.now();
    const toks = metas.map((m) => createTokenizer(m));
    const t1 = performance.now();
    let n = 0;
    for (let i = 0; i < VOCABS.length; i++) for (const c of readVectors(VOCABS[i])) n += toks[i].encode(c.input).length;
    const t2 = performance.now();
    console.log(`tokenizer speed: 5 vocabs built in ${(t1 - t0).toFixed(0)} ms, ${n} tokens from 230 inputs in ${(t2 - t1).toFixed(0)} ms`);
    expect(n).toBeGreaterThan(2000);
    expect(t1 - t0).toBeLessThan(2000);
    expect(t2 - t1).toBeLessThan(2000);
  });
});
