// stories260K.gguf and the vocab GGUFs in ../shared, checked against models/PROVENANCE.md;
// FileSource and BlobSource must agree byte for byte.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AbortedError } from '../../src/errors.ts';
import {
  BlobSource,
  GGMLType,
  GGUFValueType,
  MemorySource,
  dequantize,
  metaF32,
  metaNumberArray,
  metaStringArray,
  metaU32,
  metadataFromFile,
  parseGGUF,
  readTensorBytes,
  writeGGUF,
  type GGUFFile,
} from '../../src/gguf/index.ts';
import { FileSource } from '../../src/gguf/node-file-source.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';

const STORIES = 'models/stories260K.gguf';

/** Byte equality without toEqual's per-element walk (slow on 100 KB arrays). */
function expectSameBytes(a: Uint8Array, b: Uint8Array): void {
  expect(a.length).toBe(b.length);
  expect(Buffer.compare(a, b)).toBe(0);
}
const storiesPath = sharedFile(STORIES);

describe.skipIf(!storiesPath)(`stories260K.gguf (${storiesPath ? 'present' : missingShared(STORIES)})`, () => {
  let fileSource: FileSource;
  let file: GGUFFile;

  beforeAll(async () => {
    fileSource = await FileSource.open(storiesPath!);
    file = await parseGGUF(fileSource);
  });
  afterAll(() => fileSource?.close());

  it('has the header facts of PROVENANCE.md', () => {
    expect(file.version).toBe(3);
    expect(file.fileSize).toBe(1185376);
    expect(file.tensors).toHaveLength(48);
    expect(Object.keys(file.metadata)).toHaveLength(19);
    expect(file.alignment).toBe(32);
    expect(file.dataOffset).toBe(14176);
    const m = file.metadata;
    expect(m['general.architecture']).toBe('llama');
    expect(m['general.name']).toBe('llama');
    expect(m['general.file_type']).toBeUndefined();
    expect(m['llama.rope.freq_base']).toBeUndefined();
    expect(metaU32(m, 'llama.embedding_length')).toBe(64);
    expect(metaU32(m, 'llama.block_count')).toBe(5);
    expect(metaU32(m, 'llama.attention.head_count')).toBe(8);
    expect(metaU32(m, 'llama.attention.head_count_kv')).toBe(4);
    expect(metaU32(m, 'llama.rope.dimension_count')).toBe(8);
    expect(metaU32(m, 'llama.feed_forward_length')).toBe(172);
    expect(metaU32(m, 'llama.context_length')).toBe(2048);
    expect(metaF32(m, 'llama.attention.layer_norm_rms_epsilon')).toBe(Math.fround(1e-5));
    expect(file.metadataTypes['llama.attention.layer_norm_rms_epsilon']).toBe(GGUFValueType.FLOAT32);
    expect(m['tokenizer.ggml.model']).toBe('llama');
    expect(metaU32(m, 'tokenizer.ggml.unknown_token_id')).toBe(0);
    expect(metaU32(m, 'tokenizer.ggml.bos_token_id')).toBe(1);
    expect(metaU32(m, 'tokenizer.ggml.eos_token_id')).toBe(2);
    expect(metaU32(m, 'tokenizer.ggml.padding_token_id')).toBe(4294967295);
  });

  it('has the tokenizer arrays of PROVENANCE.md', () => {
    const m = file.metadata;
    const tokens = metaStringArray(m, 'tokenizer.ggml.tokens');
    const scores = metaNumberArray(m, 'tokenizer.ggml.scores');
    const types = metaNumberArray(m, 'tokenizer.ggml.token_type');
    expect(tokens).toHaveLength(512);
    expect(scores).toBeInstanceOf(Float32Array);
    expect(types).toBeInstanceOf(Int32Array);
    expect(scores).toHaveLength(512);
    expect(tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(tokens[258]).toBe('<0xFF>');
    expect(tokens[13]).toBe('<0x0A>');
    expect(tokens[410]).toBe('▁');
    expect(Array.from(types.slice(0, 4))).toEqual([2, 3, 3, 6]);
    expect(Array.from(types).filter((t) => t === 6)).toHaveLength(256);
    expect(Object.is(scores[259], -0)).toBe(true);
    expect(scores[511]).toBe(-252);
  });

  it('has the tensor index of PROVENANCE.md', () => {
    const byName = file.tensorIndex;
    const rel = (name: string) => byName.get(name)!.offset - file.dataOffset;
    expect(file.tensors.every((t) => t.type === GGMLType.F32)).toBe(true);
    expect(byName.get('token_embd.weight')!.shape).toEqual([64, 512]);
    expect(rel('token_embd.weight')).toBe(0);
    expect(byName.get('output_norm.weight')!.shape).toEqual([64]);
    expect(rel('output_norm.weight')).toBe(131072);
    expect(byName.get('output.weight')!.shape).toEqual([64, 512]);
    expect(rel('output.weight')).toBe(131328);
    expect(rel('blk.0.attn_q.weight')).toBe(262400);
    const perBlock: [string, number[]][] = [
      ['attn_q', [64, 64]],
      ['attn_k', [64, 32]],
      ['attn_v', [64, 32]],
      ['attn_output', [64, 64]],
      ['attn_norm', [64]],
      ['ffn_gate', [64, 172]],
      ['ffn_down', [172, 64]],
      ['ffn_up', [64, 172]],
      ['ffn_norm', [64]],
    ];
    for (let b = 0; b < 5; b++) {
      let expected = 262400 + b * 181760;
      for (const [part, shape] of perBlock) {
        const t = byName.get(`blk.${b}.${part}.weight`)!;
        expect(t.shape).toEqual(shape);
        expect(rel(t.name)).toBe(expected);
        expect(t.byteLength).toBe(4 * shape.reduce((x, y) => x * y, 1));
        expected += t.byteLength;
      }
    }
    expect(rel('blk.4.ffn_norm.weight')).toBe(1170944);
    const last = file.tensors.at(-1)!;
    expect(last.offset + last.byteLength).toBe(file.fileSize);
  });

  it('FileSource, BlobSource and MemorySource agree', async () => {
    const bytes = new Uint8Array(readFileSync(storiesPath!));
    const blob = new BlobSource(new Blob([bytes]), 'stories260K.gguf');
    const mem = new MemorySource(bytes);
    const fromBlob = await parseGGUF(blob);
    const fromMem = await parseGGUF(mem);
    for (const other of [fromBlob, fromMem]) {
      expect(other.tensors).toEqual(file.tensors);
      expect(other.metadata).toEqual(file.metadata);
      expect(other.dataOffset).toBe(file.dataOffset);
    }
    for (const name of ['token_embd.weight', 'blk.2.ffn_down.weight', 'blk.4.ffn_norm.weight']) {
      const t = file.tensorIndex.get(name)!;
      const a = await readTensorBytes(fileSource, t);
      expectSameBytes(await readTensorBytes(blob, t), a);
      expectSameBytes(a, bytes.subarray(t.offset, t.offset + t.byteLength));
    }
    const norm = dequantize(GGMLType.F32, await readTensorBytes(fileSource, file.tensorIndex.get('output_norm.weight')!), 64);
    expect(norm.every((x) => Number.isFinite(x) && x !== 0)).toBe(true);
  });

  it('reads a tensor in chunks with progress and cancellation', async () => {
    const t = file.tensorIndex.get('token_embd.weight')!;
    const progress: [number, number][] = [];
    const whole = await readTensorBytes(fileSource, t);
    const chunked = await readTensorBytes(fileSource, t, { chunkSize: 40000, onProgress: (l, n) => progress.push([l, n]) });
    expectSameBytes(chunked, whole);
    expect(progress).toEqual([
      [40000, 131072],
      [80000, 131072],
      [120000, 131072],
      [131072, 131072],
    ]);
    const ac = new AbortController();
    const read = readTensorBytes(fileSource, t, { chunkSize: 40000, signal: ac.signal, onProgress: () => ac.abort() });
    await expect(read).rejects.toBeInstanceOf(AbortedError);
  });

  it('is re-written byte for byte from its parsed form', async () => {
    const tensors = await Promise.all(
      file.tensors.map(async (t) => ({ name: t.name, shape: t.shape, type: t.type, data: await readTensorBytes(fileSource, t) })),
    );
    const out = writeGGUF({ version: 3, metadata: metadataFromFile(file), tensors });
    expectSameBytes(out, readFileSync(storiesPath!));
  });
});

const VOCABS = ['llama-spm', 'phi-3', 'gpt-2', 'deepseek-coder', 'falcon'];
const vocabPaths = VOCABS.map((v) => sharedFile(`vocab/ggml-vocab-${v}.gguf`));

describe.skipIf(vocabPaths.some((p) => !p))(`vocab GGUFs (${vocabPaths.every(Boolean) ? 'present' : missingShared('vocab/')})`, () => {
  it.each(VOCABS.map((v, i) => [v, vocabPaths[i]!]))('parses %s quickly with no tensors', async (_, path) => {
    const src = await FileSource.open(path);
    try {
      const t0 = performance.now();
      const f = await parseGGUF(src);
      const ms = performance.now() - t0;
      expect(f.tensors).toEqual([]);
      const tokens = metaStringArray(f.metadata, 'tokenizer.ggml.tokens');
      expect(tokens.length).toBeGreaterThanOrEqual(32000);
      expect(metaNumberArray(f.metadata, 'tokenizer.ggml.token_type')).toHaveLength(tokens.length);
      expect(ms).toBeLessThan(2000);
    } finally {
      await src.close();
    }
  });
});
