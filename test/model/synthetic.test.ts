// Synthetic models round-trip through the GGUF parser, config and tensor table; the table and the
// config refuse broken files with typed errors naming what is wrong.
import { describe, expect, it } from 'vitest';
import { FileSource } from '../../src/gguf/node-file-source.ts';
import { dequantize, GGMLType, tensorByteLength } from '../../src/gguf/quant.ts';
import { parseGGUF, type GGUFFile } from '../../src/gguf/reader.ts';
import { MemorySource } from '../../src/gguf/source.ts';
import { gguf, metadataFromFile, writeGGUF, type GGUFWriteTensor } from '../../src/gguf/writer.ts';
import { configFromGGUF } from '../../src/model/config.ts';
import { CpuModel, greedyArgmax } from '../../src/model/cpu-reference.ts';
import { makeSyntheticModel, SYNTHETIC_PRESETS, type SyntheticSpec } from '../../src/model/synthetic.ts';
import { familyTensors, resolveTensors } from '../../src/model/tensors.ts';
import { createTokenizer } from '../../src/tokenizer/tokenizer.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';

const small = (architecture: 'llama' | 'qwen2', weightType: number, extra: Partial<SyntheticSpec> = {}): SyntheticSpec => ({
  architecture,
  nLayers: 2,
  dim: 64,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 32,
  ffnDim: 96,
  vocabSize: 300,
  contextLength: 128,
  weightType,
  seed: 7,
  ...extra,
});

async function parse(bytes: Uint8Array): Promise<GGUFFile> {
  return parseGGUF(new MemorySource(bytes));
}

/** The file's tensors with `edit` applied: return undefined to drop one, or a replacement. */
async function rewrite(bytes: Uint8Array, edit: (t: GGUFWriteTensor) => GGUFWriteTensor | undefined): Promise<GGUFFile> {
  const file = await parse(bytes);
  const tensors: GGUFWriteTensor[] = [];
  for (const t of file.tensors) {
    const e = edit({ name: t.name, shape: t.shape, type: t.type, data: bytes.subarray(t.offset, t.offset + t.byteLength) });
    if (e) tensors.push(e);
  }
  return parse(writeGGUF({ metadata: metadataFromFile(file), tensors }));
}

const TYPES = [
  ['F32', GGMLType.F32],
  ['F16', GGMLType.F16],
  ['Q8_0', GGMLType.Q8_0],
  ['Q4_0', GGMLType.Q4_0],
] as const;

describe('synthetic models round-trip', () => {
  for (const arch of ['llama', 'qwen2'] as const) {
    for (const [typeName, type] of TYPES) {
      it(`${arch} ${typeName}: config, tensor table and finite, non-degenerate logits`, async () => {
        const spec = small(arch, type, { tiedOutput: arch === 'qwen2', ropeBase: 50000 });
        const bytes = makeSyntheticModel(spec);
        const file = await parse(bytes);
        const c = configFromGGUF(file);
        expect(c).toMatchObject({
          architecture: arch,
          nLayers: 2,
          dim: 64,
          nHeads: 4,
          nKvHeads: 2,
          headDim: 32,
          ffnDim: 96,
          vocabSize: 300,
          contextLength: 128,
          ropeBase: 50000,
          ropeDim: 32,
          ropeMode: arch === 'qwen2' ? 'neox' : 'norm',
          tiedOutput: arch === 'qwen2',
          qkvBias: arch === 'qwen2',
          weightType: type,
        });
        const t = familyTensors(resolveTensors(file, c), 'llama');
        expect(t.layers).toHaveLength(2);
        expect(t.layers[1].wDown.shape).toEqual([96, 64]);
        expect(t.layers[0].wq!.type).toBe(type);
        expect(t.layers[0].attnNorm.type).toBe(GGMLType.F32);
        expect(t.output === undefined).toBe(arch === 'qwen2');
        expect(t.layers[0].bk?.shape).toEqual(arch === 'qwen2' ? [64] : undefined);

        const model = await CpuModel.load(new MemorySource(bytes), file);
        let logits = model.forward([1, 100, 200]);
        const argmaxes = new Set<number>();
        for (let step = 0; step < 6; step++) {
          expect(logits.every(Number.isFinite)).toBe(true);
          const mean = logits.reduce((a, v) => a + v, 0) / logits.length;
          const std = Math.sqrt(logits.reduce((a, v) => a + (v - mean) ** 2, 0) / logits.length);
          expect(std).toBeGreaterThan(1); // ~3 by construction
          expect(std).toBeLessThan(10);
          const next = greedyArgmax(logits);
          argmaxes.add(next);
          logits = model.forward([next]);
        }
        expect(argmaxes.size).toBeGreaterThan(1); // the output does not stick to one token
      });
    }
  }

  it('is deterministic for a seed and differs between seeds', () => {
    const a = makeSyntheticModel(small('llama', GGMLType.Q4_0));
    const b = makeSyntheticModel(small('llama', GGMLType.Q4_0));
    const c = makeSyntheticModel(small('llama', GGMLType.Q4_0, { seed: 8 }));
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(Buffer.from(a).equals(Buffer.from(c))).toBe(false);
    expect(a.length).toBe(c.length);
  });

  it('writes the documented metadata keys and a tokenizer that can encode text', async () => {
    const file = await parse(makeSyntheticModel(small('qwen2', GGMLType.F16, { name: 'tiny' })));
    const m = file.metadata;
    expect(m['general.architecture']).toBe('qwen2');
    expect(m['general.name']).toBe('tiny');
    expect(m['qwen2.attention.key_length']).toBe(32);
    expect(m['qwen2.attention.value_length']).toBe(32);
    expect(m['qwen2.rope.dimension_count']).toBe(32);
    expect(m['qwen2.attention.layer_norm_rms_epsilon']).toBeCloseTo(1e-6, 12);
    const tokens = m['tokenizer.ggml.tokens'] as string[];
    expect(tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(tokens[258]).toBe('<0xFF>');
    expect(tokens).toHaveLength(300);
    const tok = createTokenizer(m);
    const ids = tok.encode('the rain, 42!', { addBos: false });
    expect(ids.every((id) => id >= 3 && id < 300)).toBe(true);
    expect(tok.decode(ids)).toBe('the rain, 42!');
  });

  it('every small preset loads, with GQA ratios 1, 2, 4, 7, 8 and head sizes 32, 64, 128', async () => {
    const ratios = new Set<number>();
    const heads = new Set<number>();
    for (const [name, spec] of Object.entries(SYNTHETIC_PRESETS)) {
      if (spec.nLayers > 3) continue;
      expect(spec.dim, name).toBeLessThanOrEqual(512);
      expect(spec.ffnDim, name).toBeLessThanOrEqual(1024);
      const file = await parse(makeSyntheticModel({ ...spec, nLayers: 1 }));
      const c = configFromGGUF(file);
      resolveTensors(file, c);
      ratios.add(c.nHeads / c.nKvHeads);
      heads.add(c.headDim);
    }
    expect([...ratios].sort((a, b) => a - b)).toEqual([1, 2, 4, 7, 8]);
    expect([...heads].sort((a, b) => a - b)).toEqual([32, 64, 128]);
  });

  it('the big presets have the shapes of Qwen2.5-0.5B and Llama-3.2-1B', () => {
    expect(SYNTHETIC_PRESETS['qwen2.5-0.5b']).toMatchObject({ architecture: 'qwen2', nLayers: 24, dim: 896, nHeads: 14, nKvHeads: 2, headDim: 64, ffnDim: 4864, vocabSize: 151936, tiedOutput: true, ropeBase: 1e6, contextLength: 32768 });
    expect(SYNTHETIC_PRESETS['llama-3.2-1b']).toMatchObject({ architecture: 'llama', nLayers: 16, dim: 2048, nHeads: 32, nKvHeads: 8, headDim: 64, ffnDim: 8192, vocabSize: 128256, tiedOutput: true, ropeBase: 500000, contextLength: 131072 });
  });

  it('pools quantized blocks for big matrices without ties between rows', async () => {
    // 4096 x 1100 > the pool threshold: the embedding is assembled from pooled runs of blocks.
    const spec = small('llama', GGMLType.Q8_0, { nLayers: 1, vocabSize: 4096, dim: 1088, nHeads: 2, nKvHeads: 1, headDim: 32, ffnDim: 64 });
    const bytes = makeSyntheticModel(spec);
    const file = await parse(bytes);
    const embd = file.tensorIndex.get('token_embd.weight')!;
    const rowBytes = tensorByteLength(GGMLType.Q8_0, spec.dim);
    const rows = new Set<string>();
    for (let r = 0; r < 4096; r++) rows.add(Buffer.from(bytes.subarray(embd.offset + r * rowBytes, embd.offset + (r + 1) * rowBytes)).toString('base64'));
    expect(rows.size).toBe(4096);
  });

  // Rows of 256 so every block format fits; the values' spread says the blocks decode to what was asked.
  const wide = (weightType: number, extra: Partial<SyntheticSpec> = {}) =>
    small('llama', weightType, { nLayers: 1, dim: 256, nHeads: 4, nKvHeads: 2, headDim: 64, ffnDim: 256, ...extra });
  const stdOf = (v: Float32Array) => Math.sqrt(v.reduce((a, x) => a + x * x, 0) / v.length);

  for (const [typeName, type] of [
    ['BF16', GGMLType.BF16],
    ['Q4_1', GGMLType.Q4_1],
    ['Q5_0', GGMLType.Q5_0],
    ['Q5_1', GGMLType.Q5_1],
    ['Q4_K', GGMLType.Q4_K],
    ['Q5_K', GGMLType.Q5_K],
    ['Q6_K', GGMLType.Q6_K],
  ] as const) {
    it(`writes ${typeName} matrices that parse and decode to their standard deviation`, async () => {
      const bytes = makeSyntheticModel(wide(type));
      const file = await parse(bytes);
      expect(configFromGGUF(file).weightType).toBe(type);
      const wq = file.tensorIndex.get('blk.0.attn_q.weight')!;
      expect(wq.type).toBe(type);
      expect(wq.byteLength).toBe(tensorByteLength(type, 256 * 256));
      const values = dequantize(type, bytes.subarray(wq.offset, wq.offset + wq.byteLength), 256 * 256);
      expect(stdOf(values) / (1 / 16)).toBeGreaterThan(0.9); // std 1/√dim
      expect(stdOf(values) / (1 / 16)).toBeLessThan(1.1);
      expect(file.tensorIndex.get('blk.0.attn_norm.weight')!.type).toBe(GGMLType.F32);
    });
  }

  for (const [typeName, type] of [
    ['Q4_1', GGMLType.Q4_1], // a min beside the scale
    ['Q6_K', GGMLType.Q6_K], // the scale at the end of the block
  ] as const) {
    it(`scales pooled ${typeName} blocks to the matrix's standard deviation`, async () => {
      // 16400 x 256 values > the pool threshold: the embedding is made of pooled blocks.
      const spec = wide(type, { vocabSize: 16400 });
      const bytes = makeSyntheticModel(spec);
      const embd = (await parse(bytes)).tensorIndex.get('token_embd.weight')!;
      const values = dequantize(type, bytes.subarray(embd.offset, embd.offset + embd.byteLength), 16400 * 256);
      const want = 0.1 / Math.sqrt(256);
      expect(stdOf(values) / want).toBeGreaterThan(0.9);
      expect(stdOf(values) / want).toBeLessThan(1.1);
      let mean = 0;
      for (const v of values) mean += v / values.length;
      expect(Math.abs(mean)).toBeLessThan(0.05 * want);
    });
  }

  it('rejects specs it cannot write with InvalidRequestError bad-spec', () => {
    const bad = (extra: Partial<SyntheticSpec>) => () => makeSyntheticModel(small('llama', GGMLType.Q4_0, extra));
    expect(bad({ nKvHeads: 3 })).toThrow(expect.objectContaining({ name: 'InvalidRequestError', code: 'bad-spec' }));
    expect(bad({ dim: 80 })).toThrow(/multiple of 32/);
    expect(bad({ weightType: GGMLType.Q4_K })).toThrow(/dim = 64 must be a multiple of 256: Q4_K rows are whole K-quant super-blocks of 256 values/);
    expect(bad({ weightType: GGMLType.Q2_K })).toThrow(/weightType Q2_K is not one of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K/);
    expect(bad({ nLayers: 0 })).toThrow(/nLayers/);
    expect(bad({ vocab: {} })).toThrow(/tokenizer\.ggml\.tokens/);
  });
});

const SPM = 'vocab/ggml-vocab-llama-spm.gguf';
const spm = sharedFile(SPM);

describe.skipIf(!spm)(spm ? 'synthetic model with a real vocabulary' : missingShared(SPM), () => {
  it('takes its token count and tokenizer keys, and keeps its own architecture keys', async () => {
    const vocabFile = await parseGGUF(await FileSource.open(spm!));
    const file = await parse(makeSyntheticModel(small('qwen2', GGMLType.Q8_0, { nLayers: 1, vocabSize: 1, vocab: metadataFromFile(vocabFile) })));
    const c = configFromGGUF(file);
    expect(c.architecture).toBe('qwen2');
    expect(c.vocabSize).toBe(32000);
    expect(file.metadata['tokenizer.ggml.model']).toBe('llama');
    expect(createTokenizer(file.metadata).encode('Hello world', { addBos: true })).toEqual([1, 15043, 3186]);
  });
});

describe('tensor table errors', () => {
  const base = makeSyntheticModel(small('llama', GGMLType.F32, { ffnDim: 256 }));

  it('names a missing required tensor', async () => {
    const file = await rewrite(base, (t) => (t.name === 'blk.1.ffn_up.weight' ? undefined : t));
    expect(() => resolveTensors(file, configFromGGUF(file))).toThrow(
      expect.objectContaining({ name: 'UnsupportedModelError', code: 'missing-tensor', fields: { tensor: 'blk.1.ffn_up.weight' } }),
    );
    expect(() => resolveTensors(file, configFromGGUF(file))).toThrow(/blk\.1\.ffn_up\.weight/);
  });

  it('requires the Q/K/V biases of qwen2', async () => {
    const bytes = makeSyntheticModel(small('qwen2', GGMLType.F32));
    const file = await rewrite(bytes, (t) => (t.name === 'blk.0.attn_k.bias' ? undefined : t));
    expect(() => resolveTensors(file, configFromGGUF(file))).toThrow(expect.objectContaining({ code: 'missing-tensor', fields: { tensor: 'blk.0.attn_k.bias' } }));
  });

  it('names a tensor whose shape disagrees with the config', async () => {
    const file = await rewrite(base, (t) =>
      t.name === 'blk.0.attn_k.weight' ? { ...t, shape: [64, 128], data: new Uint8Array(64 * 128 * 4) } : t,
    );
    expect(() => resolveTensors(file, configFromGGUF(file))).toThrow(
      expect.objectContaining({ code: 'bad-shape', fields: { tensor: 'blk.0.attn_k.weight', shape: '64x128', expected: '64x64' } }),
    );
  });

  it('refuses a matrix type the kernels do not run (Q3_K)', async () => {
    const file = await rewrite(base, (t) =>
      t.name === 'blk.1.ffn_down.weight' ? { ...t, type: GGMLType.Q3_K, data: new Uint8Array(tensorByteLength(GGMLType.Q3_K, 256 * 64)) } : t,
    );
    expect(() => resolveTensors(file, configFromGGUF(file))).toThrow(
      expect.objectContaining({ name: 'UnsupportedModelError', code: 'unsupported-tensor-type', fields: { tensor: 'blk.1.ffn_down.weight', type: 'Q3_K' } }),
    );
  });
});

describe('config errors', () => {
  for (const arch of ['gpt2', 'mamba']) {
    it(`refuses architecture '${arch}' and says which ones run`, async () => {
      const file = await parse(makeSyntheticModel(small('llama', GGMLType.F32)));
      const renamed = await parse(writeGGUF({ metadata: { ...metadataFromFile(file), 'general.architecture': gguf.string(arch) }, tensors: [] }));
      expect(() => configFromGGUF(renamed)).toThrow(
        expect.objectContaining({ name: 'UnsupportedModelError', code: 'unsupported-architecture', fields: { architecture: arch } }),
      );
      expect(() => configFromGGUF(renamed)).toThrow(/llama, qwen2/);
    });
  }

  it('refuses query heads that do not group over the KV heads', async () => {
    const file = await parse(makeSyntheticModel(small('llama', GGMLType.F32)));
    const meta = { ...metadataFromFile(file), 'llama.attention.head_count_kv': gguf.u32(3) };
    const embd = file.tensorIndex.get('token_embd.weight')!;
    const broken = await parse(writeGGUF({ metadata: meta, tensors: [{ name: embd.name, shape: embd.shape, type: embd.type, data: new Uint8Array(embd.byteLength) }] }));
    expect(() => configFromGGUF(broken)).toThrow(expect.objectContaining({ code: 'bad-config' }));
  });
});
