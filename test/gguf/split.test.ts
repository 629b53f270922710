// Split GGUF models (gguf-split's layout): part names, writing a model as parts, and reading the
// parts back as one tensor index over one byte source, with every way a set of parts can be wrong.
import { describe, expect, it } from 'vitest';
import { GGUFError } from '../../src/errors.ts';
import {
  ConcatSource,
  GGMLType,
  MemorySource,
  SPLIT_KEYS,
  gguf,
  openGGUF,
  parseGGUF,
  parseSplitName,
  quantize,
  readTensorBytes,
  splitGGUFBytes,
  splitInfo,
  splitPartNames,
  writeGGUF,
  writeSplitGGUF,
  type GGUFWriteInput,
} from '../../src/gguf/index.ts';
import { randomF32 } from '../helpers/gpu.ts';

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GGUFError);
    return (err as GGUFError).code;
  }
  return undefined;
}

/** Seven tensors of different sizes and types, and enough metadata to tell the first part apart. */
function modelInput(seed = 1): GGUFWriteInput {
  const t = (name: string, shape: number[], type: GGMLType, s: number) => ({
    name,
    shape,
    type,
    data: quantize(type, randomF32(shape.reduce((a, b) => a * b, 1), seed * 100 + s)),
  });
  return {
    metadata: {
      'general.architecture': gguf.string('llama'),
      'general.name': gguf.string(`split-test-${seed}`),
      'llama.block_count': gguf.u32(2),
      'tokenizer.ggml.tokens': gguf.array('string', ['a', 'b', 'c']),
    },
    tensors: [
      t('token_embd.weight', [64, 96], GGMLType.Q8_0, 1),
      t('output_norm.weight', [64], GGMLType.F32, 2),
      t('blk.0.attn_q.weight', [64, 64], GGMLType.Q4_0, 3),
      t('blk.0.ffn_up.weight', [64, 128], GGMLType.F16, 4),
      t('blk.1.attn_q.weight', [64, 64], GGMLType.Q4_0, 5),
      t('blk.1.ffn_up.weight', [64, 128], GGMLType.F16, 6),
      t('blk.1.ffn_norm.weight', [64], GGMLType.F32, 7),
    ],
  };
}

const sources = (files: Uint8Array[], prefix = 'm') =>
  files.map((bytes, i) => new MemorySource(bytes, `${prefix}-${String(i + 1).padStart(5, '0')}-of-${String(files.length).padStart(5, '0')}.gguf`));

describe('split part names', () => {
  it('reads the part number and count from names and URLs', () => {
    expect(parseSplitName('Qwen2.5-7B-Instruct-Q4_K_M-00002-of-00003.gguf')).toEqual({ index: 1, count: 3 });
    expect(parseSplitName('https://huggingface.co/org/repo/resolve/main/m-00001-of-00002.gguf?download=true')).toEqual({ index: 0, count: 2 });
    expect(parseSplitName('model.gguf')).toBeUndefined();
    expect(parseSplitName('m-00004-of-00003.gguf')).toBeUndefined();
    expect(parseSplitName('m-00001-of-00003.gguf.part')).toBeUndefined();
  });

  it('lists every part of the split a name belongs to, keeping the query', () => {
    expect(splitPartNames('https://h/o/r/resolve/main/big-00002-of-00003.gguf?download=1')).toEqual([
      'https://h/o/r/resolve/main/big-00001-of-00003.gguf?download=1',
      'https://h/o/r/resolve/main/big-00002-of-00003.gguf?download=1',
      'https://h/o/r/resolve/main/big-00003-of-00003.gguf?download=1',
    ]);
    expect(splitPartNames('one.gguf')).toEqual(['one.gguf']);
  });
});

describe('writeSplitGGUF and openGGUF', () => {
  it('writes gguf-split parts: all metadata first, split keys everywhere, tensors spread by bytes', async () => {
    const parts = writeSplitGGUF(modelInput(), 3);
    expect(parts).toHaveLength(3);
    const parsed = await Promise.all(parts.map((p) => parseGGUF(new MemorySource(p))));
    parsed.forEach((f, i) => {
      expect(splitInfo(f), `part ${i}`).toEqual({ no: i, count: 3, tensors: 7 });
      expect(f.tensors.length, `part ${i} holds tensors`).toBeGreaterThan(0);
    });
    expect(parsed[0].metadata['general.name']).toBe('split-test-1');
    expect(Object.keys(parsed[1].metadata).sort()).toEqual([SPLIT_KEYS.count, SPLIT_KEYS.no, SPLIT_KEYS.tensors]);
    // gguf-split's types: u16, u16, i32.
    expect(parsed[0].metadataTypes[SPLIT_KEYS.no]).toBe(2);
    expect(parsed[0].metadataTypes[SPLIT_KEYS.count]).toBe(2);
    expect(parsed[0].metadataTypes[SPLIT_KEYS.tensors]).toBe(5);
    expect(parsed.flatMap((f) => f.tensors.map((t) => t.name))).toEqual(modelInput().tensors.map((t) => t.name));
  });

  it('presents the parts as one tensor index over one source, given in any order', async () => {
    const input = modelInput();
    const whole = writeGGUF(input);
    const single = await parseGGUF(new MemorySource(whole));
    const parts = sources(writeSplitGGUF(input, 3));
    const opened = await openGGUF([parts[2], parts[0], parts[1]]);
    expect(opened.parts).toEqual(parts);
    expect(opened.source.size).toBe(parts.reduce((s, p) => s + p.size, 0));
    expect(opened.file.fileSize).toBe(opened.source.size);
    expect(opened.file.metadata['general.name']).toBe('split-test-1');
    expect(opened.file.tensors.map((t) => [t.name, t.type, t.shape])).toEqual(single.tensors.map((t) => [t.name, t.type, t.shape]));
    for (const t of opened.file.tensors) {
      const want = input.tensors.find((w) => w.name === t.name)!.data;
      expect(Buffer.compare(await readTensorBytes(opened.source, t), want), t.name).toBe(0);
      expect(opened.file.tensorIndex.get(t.name)).toBe(t);
    }
  });

  it('splits the bytes of a single-file model into parts that read back the same', async () => {
    const whole = writeGGUF(modelInput(2));
    const opened = await openGGUF(sources(await splitGGUFBytes(whole, 2)));
    const single = await parseGGUF(new MemorySource(whole));
    for (const t of single.tensors) {
      const got = await readTensorBytes(opened.source, opened.file.tensorIndex.get(t.name)!);
      expect(Buffer.compare(got, whole.subarray(t.offset, t.offset + t.byteLength)), t.name).toBe(0);
    }
  });

  it('reads a split whose first part holds only metadata (gguf-split --no-tensor-first-split)', async () => {
    const input = modelInput(3);
    const split = (no: number) => ({ [SPLIT_KEYS.no]: gguf.u16(no), [SPLIT_KEYS.count]: gguf.u16(2), [SPLIT_KEYS.tensors]: gguf.i32(input.tensors.length) });
    const first = writeGGUF({ metadata: { ...input.metadata, ...split(0) }, tensors: [] });
    const second = writeGGUF({ metadata: split(1), tensors: input.tensors });
    const opened = await openGGUF(sources([first, second]));
    expect(opened.file.tensors).toHaveLength(input.tensors.length);
    const t = opened.file.tensorIndex.get('token_embd.weight')!;
    expect(Buffer.compare(await readTensorBytes(opened.source, t), input.tensors[0].data)).toBe(0);
  });

  it('refuses a part given alone, missing or doubled parts, parts of two splits, and a plain file among parts', async () => {
    const parts = sources(writeSplitGGUF(modelInput(), 3));
    const other = sources(writeSplitGGUF(modelInput(4), 2), 'o');
    const plain = new MemorySource(writeGGUF(modelInput()), 'plain.gguf');
    expect(await codeOf(openGGUF(parts[1]))).toBe('split-incomplete');
    expect(await codeOf(openGGUF([parts[0], parts[2]]))).toBe('split-incomplete');
    expect(await codeOf(openGGUF([parts[0], parts[1], parts[1]]))).toBe('split-mismatch');
    expect(await codeOf(openGGUF([parts[0], other[1]]))).toBe('split-mismatch');
    expect(await codeOf(openGGUF([parts[0], plain]))).toBe('bad-split');
    await expect(openGGUF(parts[1])).rejects.toThrow(/part 2 of a model split in 3 files/);
    // split.tensors.count that does not match the tensors found.
    const input = modelInput();
    const lying = writeSplitGGUF(input, 2).map((bytes) => bytes);
    const f0 = await parseGGUF(new MemorySource(lying[0]));
    const rewritten = writeGGUF({
      metadata: { ...input.metadata, [SPLIT_KEYS.no]: gguf.u16(0), [SPLIT_KEYS.count]: gguf.u16(2), [SPLIT_KEYS.tensors]: gguf.i32(8) },
      tensors: f0.tensors.map((t) => ({ name: t.name, shape: t.shape, type: t.type, data: lying[0].subarray(t.offset, t.offset + t.byteLength) })),
    });
    const f1 = await parseGGUF(new MemorySource(lying[1]));
    const second = writeGGUF({
      metadata: { [SPLIT_KEYS.no]: gguf.u16(1), [SPLIT_KEYS.count]: gguf.u16(2), [SPLIT_KEYS.tensors]: gguf.i32(8) },
      tensors: f1.tensors.map((t) => ({ name: t.name, shape: t.shape, type: t.type, data: lying[1].subarray(t.offset, t.offset + t.byteLength) })),
    });
    expect(await codeOf(openGGUF(sources([rewritten, second])))).toBe('split-mismatch');
    expect(() => writeSplitGGUF(input, 8)).toThrow(GGUFError);
  });

  it('a single plain file opens as itself', async () => {
    const plain = new MemorySource(writeGGUF(modelInput()), 'plain.gguf');
    const opened = await openGGUF(plain);
    expect(opened.source).toBe(plain);
    expect(opened.parts).toEqual([plain]);
  });
});

describe('ConcatSource', () => {
  it('reads ranges inside and across parts, skipping empty parts', async () => {
    const bytes = Uint8Array.from({ length: 100 }, (_, i) => i);
    const cuts = [0, 10, 10, 55, 100];
    const parts = cuts.slice(1).map((end, i) => new MemorySource(bytes.slice(cuts[i], end)));
    const src = new ConcatSource(parts);
    expect(src.size).toBe(100);
    for (const [off, len] of [
      [0, 100],
      [5, 10],
      [10, 1],
      [9, 2],
      [54, 2],
      [60, 40],
      [99, 1],
      [100, 0],
    ]) {
      expect([...(await src.read(off, len))], `${off}+${len}`).toEqual([...bytes.subarray(off, off + len)]);
    }
    expect(await codeOf(src.read(95, 6))).toBe('truncated');
  });
});
