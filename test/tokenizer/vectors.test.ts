// Tokenizers against llama.cpp's test vectors (../shared/vocab/*.inp → *.out), encoded with
// add_special = false and parse_special = false as llama.cpp's test-tokenizer-0 does.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FileSource } from '../../src/gguf/node-file-source.ts';
import { parseGGUF } from '../../src/gguf/reader.ts';
import { createTokenizer, type Tokenizer } from '../../src/tokenizer/index.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';

export function readVectors(name: string): { input: string; ids: number[] }[] {
  const inp = readFileSync(sharedFile(`vocab/${name}.inp`)!, 'utf8').split('\n__ggml_vocab_test__\n');
  inp.pop(); // the separator also ends the file
  const out = readFileSync(sharedFile(`vocab/${name}.out`)!, 'utf8').split('\n');
  return inp.map((input, i) => ({ input, ids: out[i].trim() === '' ? [] : out[i].trim().split(/\s+/).map(Number) }));
}

export async function loadTokenizer(name: string): Promise<Tokenizer> {
  const src = await FileSource.open(sharedFile(`vocab/${name}`)!);
  const file = await parseGGUF(src);
  await src.close();
  return createTokenizer(file.metadata);
}

const vocabs = ['ggml-vocab-llama-spm.gguf', 'ggml-vocab-phi-3.gguf', 'ggml-vocab-gpt-2.gguf', 'ggml-vocab-deepseek-coder.gguf', 'ggml-vocab-falcon.gguf'];

for (const name of vocabs) {
  const present = sharedFile(`vocab/${name}`) && sharedFile(`vocab/${name}.inp`);
  describe.skipIf(!present)(present ? `${name} vectors` : missingShared(`vocab/${name}`), () => {
    it('encodes all 46 inputs exactly as llama.cpp', async () => {
      const tok = await loadTokenizer(name);
      const cases = readVectors(name);
      expect(cases.length).toBe(46);
      const wrong = cases.filter((c) => JSON.stringify(tok.encode(c.input)) !== JSON.stringify(c.ids));
      expect(wrong.map((c) => ({ input: c.input, want: c.ids, got: tok.encode(c.input) }))).toEqual([]);
    });

    it('decodes the expected ids back to the input text', async () => {
      const tok = await loadTokenizer(name);
      let roundTrips = 0;
      for (const c of readVectors(name)) {
        const text = tok.decode(c.ids);
        // SentencePiece folds leading spaces into the prefix; compare modulo that.
        if (text === c.input || (tok.model === 'llama' && text === c.input.replace(/^ /, ''))) roundTrips++;
      }
      expect(roundTrips).toBeGreaterThanOrEqual(40);
    });
  });
}
