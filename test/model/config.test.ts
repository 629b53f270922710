// Model config from GGUF metadata: stories260K against the facts in PROVENANCE.md, synthetic
// models of both architectures, the documented defaults, and typed errors for what cannot run.
import { beforeAll, describe, expect, it } from 'vitest';
import { FileSource } from '../../src/gguf/node-file-source.ts';
import { GGMLType } from '../../src/gguf/quant.ts';
import { parseGGUF, type GGUFFile } from '../../src/gguf/reader.ts';
import { configFromGGUF, describeConfig, type ModelConfig } from '../../src/model/config.ts';
import { makeSyntheticModel, SYNTHETIC_PRESETS } from '../../src/model/synthetic.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';
import { openBytes, withMetadata, withTensors } from './files.ts';

const STORIES = 'models/stories260K.gguf';
const stories = sharedFile(STORIES);
const GPT2_VOCAB = 'vocab/ggml-vocab-gpt-2.gguf';
const gpt2Vocab = sharedFile(GPT2_VOCAB);

describe.skipIf(!stories)(stories ? 'config of stories260K' : missingShared(STORIES), () => {
  it('matches PROVENANCE.md', async () => {
    const source = await FileSource.open(stories!);
    const file = await parseGGUF(source);
    await source.close();
    const expected: ModelConfig = {
      architecture: 'llama',
      family: 'llama',
      name: 'llama',
      nLayers: 5,
      dim: 64,
      nHeads: 8,
      nKvHeads: 4, // GQA 2:1
      headDim: 8,
      ffnDim: 172,
      vocabSize: 512, // from token_embd's shape: there is no llama.vocab_size key
      contextLength: 2048,
      ropeBase: 10000, // no freq_base key: llama.cpp's default
      ropeMode: 'norm',
      ropeDim: 8,
      ropeFreqScale: 1, // no rope.scaling keys
      ropeAttnFactor: 1,
      ropeOrigContext: 2048, // = the context length
      rmsEps: Math.fround(1e-5), // stored as float32 9.9999997e-06
      tiedOutput: false, // output.weight is its own tensor
      qkvBias: false,
      qkNorm: false,
      fusedQkv: false,
      hasRopeFreqs: false,
      hasLongRopeFactors: false,
      slidingWindow: 0,
      localLayers: [false, false, false, false, false],
      ropeBaseLocal: 10000,
      attentionScale: 1 / Math.sqrt(8),
      embeddingScale: 1,
      finalLogitSoftcap: 0,
      weightType: GGMLType.F32,
    };
    expect(configFromGGUF(file)).toEqual(expected);
  });
});

describe('config of synthetic models', () => {
  let qwen: GGUFFile;
  let llama: GGUFFile;
  beforeAll(async () => {
    qwen = (await openBytes(makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-qwen2-gqa7-h64'], nLayers: 1, weightType: GGMLType.F16 }))).file;
    llama = (await openBytes(makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-gqa4-h64'], nLayers: 1, weightType: GGMLType.Q8_0 }))).file;
  });

  it('qwen2: NEOX RoPE, QKV biases, tied head, its own RoPE base', () => {
    const p = SYNTHETIC_PRESETS['tiny-qwen2-gqa7-h64'];
    const c = configFromGGUF(qwen);
    expect(c).toMatchObject({
      architecture: 'qwen2',
      nLayers: 1,
      dim: p.dim,
      nHeads: 14,
      nKvHeads: 2,
      headDim: 64,
      ffnDim: p.ffnDim,
      vocabSize: p.vocabSize,
      ropeMode: 'neox',
      ropeDim: 64,
      ropeBase: 1e6,
      tiedOutput: true,
      qkvBias: true,
      hasRopeFreqs: false,
      weightType: GGMLType.F16,
    });
    expect(describeConfig(c)).toBe('qwen2 1L dim 448 heads 14/2×64 ffn 640 vocab 512 F16');
  });

  it('llama: NORM RoPE, no biases, untied head, the dominant matrix type', () => {
    const c = configFromGGUF(llama);
    expect(c).toMatchObject({ architecture: 'llama', ropeMode: 'norm', qkvBias: false, tiedOutput: false, nHeads: 8, nKvHeads: 2 });
    expect(c.weightType).toBe(GGMLType.Q8_0); // norms are F32 but the matrices hold the bytes
  });

  it('uses the documented defaults for optional keys', () => {
    const a = 'llama';
    const c = configFromGGUF(
      withMetadata(llama, {
        [`${a}.attention.head_count_kv`]: undefined, // = head_count
        [`${a}.attention.key_length`]: undefined, // = dim / head_count
        [`${a}.attention.value_length`]: undefined, // = key length
        [`${a}.rope.dimension_count`]: undefined, // = head size
        [`${a}.rope.freq_base`]: undefined, // = 10000
        [`${a}.attention.layer_norm_rms_epsilon`]: undefined, // = 1e-5
        [`${a}.context_length`]: undefined, // = 2048
        'general.name': undefined, // = the architecture
      }),
    );
    expect(c).toMatchObject({ nKvHeads: 8, headDim: 256 / 8, ropeDim: 256 / 8, ropeBase: 10000, rmsEps: 1e-5, contextLength: 2048, name: 'llama' });
  });

  it('names an unsupported architecture and the supported ones', () => {
    const f = withMetadata(llama, { 'general.architecture': 'mamba' });
    expect(() => configFromGGUF(f)).toThrow(
      expect.objectContaining({
        name: 'UnsupportedModelError',
        code: 'unsupported-architecture',
        fields: { architecture: 'mamba' },
        message: expect.stringMatching(/'mamba'.*llama, qwen2, qwen3, gemma3, phi3/),
      }),
    );
  });

  it('rejects inconsistent hyper-parameters with bad-config', () => {
    const bad = (patch: Parameters<typeof withMetadata>[1], pattern: RegExp) =>
      expect(() => configFromGGUF(withMetadata(llama, patch))).toThrow(
        expect.objectContaining({ name: 'UnsupportedModelError', code: 'bad-config', message: expect.stringMatching(pattern) }),
      );
    bad({ 'llama.attention.head_count_kv': 3 }, /8 query heads cannot be grouped over 3 KV heads/);
    bad({ 'llama.attention.head_count_kv': 0 }, /not positive/);
    bad({ 'llama.block_count': 0 }, /block_count 0/);
    bad({ 'llama.rope.dimension_count': 7 }, /RoPE dimension 7/);
    bad({ 'llama.rope.dimension_count': 128 }, /RoPE dimension 128 .* head size 64/);
    bad({ 'llama.attention.value_length': 32 }, /value head size 32/);
    bad({ 'llama.embedding_length': 128 }, /token_embd.weight has shape \[256,384\] but the embedding length is 128/);
    bad({ 'llama.attention.layer_norm_rms_epsilon': 0 }, /epsilon 0/);
  });

  it('names a missing required key', () => {
    expect(() => configFromGGUF(withMetadata(llama, { 'llama.block_count': undefined }))).toThrow(
      expect.objectContaining({ name: 'GGUFError', code: 'missing-key', fields: { key: 'llama.block_count' } }),
    );
  });

  it('fails with missing-tensor when there is no token_embd.weight to size the vocabulary', () => {
    const f = withTensors(llama, (t) => (t.name === 'token_embd.weight' ? undefined : t));
    expect(() => configFromGGUF(f)).toThrow(expect.objectContaining({ code: 'missing-tensor', fields: { tensor: 'token_embd.weight' } }));
  });
});

describe.skipIf(!gpt2Vocab)(gpt2Vocab ? 'config of a real file of another architecture' : missingShared(GPT2_VOCAB), () => {
  it("the gpt2 vocab GGUF is refused as 'gpt2'", async () => {
    const source = await FileSource.open(gpt2Vocab!);
    const file = await parseGGUF(source);
    await source.close();
    expect(() => configFromGGUF(file)).toThrow(expect.objectContaining({ code: 'unsupported-architecture', fields: { architecture: 'gpt2' } }));
  });
});
