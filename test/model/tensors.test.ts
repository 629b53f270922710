// The tensor-name table: what resolves on real and synthetic models, and the error that names the
// first missing tensor, the wrong shape (expected vs actual) or a type the kernels cannot run.
import { beforeAll, describe, expect, it } from 'vitest';
import { FileSource } from '../../src/gguf/node-file-source.ts';
import { GGMLType, quantize, tensorByteLength, type GGMLType as GGMLTypeId } from '../../src/gguf/quant.ts';
import { parseGGUF, type GGUFFile } from '../../src/gguf/reader.ts';
import type { ByteSource } from '../../src/gguf/source.ts';
import { configFromGGUF } from '../../src/model/config.ts';
import { makeSyntheticModel, SYNTHETIC_PRESETS } from '../../src/model/synthetic.ts';
import { familyTensors, resolveTensors } from '../../src/model/tensors.ts';
import { WEIGHT_TYPES } from '../../src/gpu/weights.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';
import { openBytes, rewriteGGUF, withTensors } from './files.ts';

const STORIES = 'models/stories260K.gguf';
const stories = sharedFile(STORIES);

/** resolveTensors on `file` with its own config (every model here is of the llama family). */
const resolve = (file: GGUFFile) => familyTensors(resolveTensors(file, configFromGGUF(file)), 'llama');

describe.skipIf(!stories)(stories ? 'tensors of stories260K' : missingShared(STORIES), () => {
  it('resolves all 48 tensors: an untied head, no biases, no rope_freqs', async () => {
    const source = await FileSource.open(stories!);
    const file = await parseGGUF(source);
    await source.close();
    const t = resolve(file);
    expect(t.layers).toHaveLength(5);
    expect(t.tokenEmbd.shape).toEqual([64, 512]);
    expect(t.output?.shape).toEqual([64, 512]);
    expect(t.ropeFreqs).toBeUndefined();
    const names = [t.tokenEmbd, t.outputNorm, t.output].map((x) => x?.name);
    for (const l of t.layers) {
      expect(l.bq).toBeUndefined();
      expect(l.wk!.shape).toEqual([64, 32]); // 4 KV heads of 8
      expect(l.wDown.shape).toEqual([172, 64]);
      names.push(...[l.attnNorm, l.wq, l.wk, l.wv, l.wo, l.ffnNorm, l.wGate, l.wUp, l.wDown].map((x) => x!.name));
    }
    expect(new Set(names)).toEqual(new Set(file.tensors.map((x) => x.name)));
  });
});

describe('tensor table on synthetic models', () => {
  let llama: { source: ByteSource; file: GGUFFile };
  let qwen: { source: ByteSource; file: GGUFFile };
  beforeAll(async () => {
    llama = await openBytes(makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-gqa2-h128'], weightType: GGMLType.F32 }));
    qwen = await openBytes(makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-qwen2-gqa7-h64'], nLayers: 1, weightType: GGMLType.Q4_0 }));
  });

  it('qwen2 resolves its biases and a tied head', () => {
    const t = resolve(qwen.file);
    expect(t.output).toBeUndefined();
    expect(t.layers[0].bq?.shape).toEqual([14 * 64]);
    expect(t.layers[0].bk?.shape).toEqual([2 * 64]);
    expect(t.layers[0].bv?.shape).toEqual([2 * 64]);
  });

  it('names the missing tensor, the first one in table order', async () => {
    const bytes = await rewriteGGUF(llama.source, llama.file, { drop: ['blk.1.ffn_up.weight', 'blk.1.attn_v.weight'] });
    const { file } = await openBytes(bytes);
    expect(() => resolve(file)).toThrow(
      expect.objectContaining({
        name: 'UnsupportedModelError',
        code: 'missing-tensor',
        fields: { tensor: 'blk.1.attn_v.weight' },
        message: expect.stringContaining("'blk.1.attn_v.weight'"),
      }),
    );
    const noNorm = withTensors(llama.file, (t) => (t.name === 'output_norm.weight' ? undefined : t));
    expect(() => resolve(noNorm)).toThrow(expect.objectContaining({ code: 'missing-tensor', fields: { tensor: 'output_norm.weight' } }));
  });

  it('requires the QKV biases of qwen2', () => {
    const f = withTensors(qwen.file, (t) => (t.name === 'blk.0.attn_k.bias' ? undefined : t));
    expect(() => resolve(f)).toThrow(expect.objectContaining({ code: 'missing-tensor', fields: { tensor: 'blk.0.attn_k.bias' } }));
  });

  it('names expected and actual shapes', async () => {
    // K projection with 64 outputs where 2 KV heads of 128 need 256.
    const data = quantize(GGMLType.F32, new Float32Array(256 * 64));
    const bytes = await rewriteGGUF(llama.source, llama.file, { tensors: [{ name: 'blk.0.attn_k.weight', shape: [256, 64], type: GGMLType.F32, data }] });
    const { file } = await openBytes(bytes);
    expect(() => resolve(file)).toThrow(
      expect.objectContaining({
        name: 'UnsupportedModelError',
        code: 'bad-shape',
        fields: { tensor: 'blk.0.attn_k.weight', shape: '256x64', expected: '256x256' },
        message: expect.stringMatching(/'blk.0.attn_k.weight' has shape \[256,64\] but the config implies \[256,256\]/),
      }),
    );
  });

  it('checks the optional tensors too: rope_freqs holds ropeDim/2 factors', async () => {
    const freqs = (n: number) => ({ name: 'rope_freqs.weight', shape: [n], type: GGMLType.F32, data: quantize(GGMLType.F32, new Float32Array(n).fill(1)) });
    const good = (await openBytes(await rewriteGGUF(llama.source, llama.file, { tensors: [freqs(64)] }))).file;
    expect(resolve(good).ropeFreqs?.shape).toEqual([64]);
    expect(configFromGGUF(good).hasRopeFreqs).toBe(true);
    const bad = (await openBytes(await rewriteGGUF(llama.source, llama.file, { tensors: [freqs(128)] }))).file;
    expect(() => resolve(bad)).toThrow(expect.objectContaining({ code: 'bad-shape', fields: { tensor: 'rope_freqs.weight', shape: '128', expected: '64' } }));
  });

  it('refuses matrix types the kernels do not read, naming the type', async () => {
    // A real Q3_K tensor (zeros are valid blocks) written and parsed back.
    const q3k = { name: 'blk.0.attn_q.weight', shape: [256, 512], type: GGMLType.Q3_K, data: new Uint8Array(tensorByteLength(GGMLType.Q3_K, 256 * 512)) };
    const { file } = await openBytes(await rewriteGGUF(llama.source, llama.file, { tensors: [q3k] }));
    expect(() => resolve(file)).toThrow(
      expect.objectContaining({
        name: 'UnsupportedModelError',
        code: 'unsupported-tensor-type',
        fields: { tensor: 'blk.0.attn_q.weight', type: 'Q3_K' },
        message: expect.stringMatching(/is Q3_K; chunklm runs F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K matrices/),
      }),
    );
    const retype = (name: string, type: GGMLTypeId) => withTensors(llama.file, (t) => (t.name === name ? { ...t, type } : t));
    for (const type of [GGMLType.Q2_K, GGMLType.IQ4_NL, GGMLType.Q8_1]) {
      expect(() => resolve(retype('blk.1.ffn_down.weight', type))).toThrow(expect.objectContaining({ code: 'unsupported-tensor-type' }));
    }
    for (const type of WEIGHT_TYPES) {
      expect(resolve(retype('blk.1.ffn_down.weight', type)).layers[1].wDown.type).toBe(type);
    }
  });

  it('takes norms and biases only as plain floats', () => {
    const retype = (name: string, type: GGMLTypeId) => withTensors(qwen.file, (t) => (t.name === name ? { ...t, type } : t));
    expect(() => resolve(retype('blk.0.ffn_norm.weight', GGMLType.Q8_0))).toThrow(
      expect.objectContaining({ code: 'unsupported-tensor-type', fields: { tensor: 'blk.0.ffn_norm.weight', type: 'Q8_0' } }),
    );
    expect(() => resolve(retype('blk.0.attn_q.bias', GGMLType.Q4_0))).toThrow(expect.objectContaining({ code: 'unsupported-tensor-type' }));
    expect(resolve(retype('blk.0.attn_norm.weight', GGMLType.F16)).layers[0].attnNorm.type).toBe(GGMLType.F16);
  });
});
