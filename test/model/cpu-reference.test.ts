// The CPU oracle: golden text on stories260K, incremental = batched forward, and the pre-RoPE key
// cache equal to a plain rotate-then-store forward pass written here independently.
import { beforeAll, describe, expect, it } from 'vitest';
import { FileSource } from '../../src/gguf/node-file-source.ts';
import { dequantize, GGMLType } from '../../src/gguf/quant.ts';
import { parseGGUF, readTensorBytes, type GGUFFile, type GGUFTensorInfo } from '../../src/gguf/reader.ts';
import { MemorySource, type ByteSource } from '../../src/gguf/source.ts';
import { configFromGGUF, type ModelConfig } from '../../src/model/config.ts';
import { CpuModel, cpuGenerateGreedy, greedyArgmax } from '../../src/model/cpu-reference.ts';
import { makeSyntheticModel, SYNTHETIC_PRESETS } from '../../src/model/synthetic.ts';
import { familyTensors, resolveTensors } from '../../src/model/tensors.ts';
import golden from '../fixtures/stories260K-golden.json' with { type: 'json' };
import { spmPiecesToText } from '../helpers/model.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';

const STORIES = 'models/stories260K.gguf';
const stories = sharedFile(STORIES);

/** Largest |a - b| relative to the largest |b|. */
function relMaxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

/**
 * A second forward pass written the textbook way: RoPE angles computed directly from
 * pos·base^(-2i/ropeDim), keys rotated BEFORE they are cached, and no shared code with the oracle
 * beyond the tensor table. Returns the logits after every token of `tokens`.
 */
async function rotateThenStoreLogits(source: ByteSource, file: GGUFFile, tokens: number[]): Promise<Float32Array[]> {
  const c: ModelConfig = configFromGGUF(file);
  const t = familyTensors(resolveTensors(file, c), 'llama');
  const w = async (info: GGUFTensorInfo | undefined) => (info ? dequantize(info.type, await readTensorBytes(source, info), info.nElements) : undefined);
  const must = async (info: GGUFTensorInfo) => (await w(info))!;
  const embd = await must(t.tokenEmbd);
  const out = t.output ? await must(t.output) : embd;
  const outNorm = await must(t.outputNorm);
  const freqFactors = await w(t.ropeFreqs);
  const { dim, nHeads, nKvHeads, headDim, ffnDim, ropeDim } = c;
  const kvDim = nKvHeads * headDim;
  const mv = (m: Float32Array, x: ArrayLike<number>, rows: number, cols: number, b?: Float32Array) =>
    Array.from({ length: rows }, (_, r) => {
      let s = b ? b[r] : 0;
      for (let k = 0; k < cols; k++) s += m[r * cols + k] * x[k];
      return s;
    });
  const norm = (x: number[], g: Float32Array) => {
    const inv = 1 / Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length + c.rmsEps);
    return x.map((v, i) => v * inv * g[i]);
  };
  const rope = (v: number[], off: number, pos: number) => {
    const half = ropeDim / 2;
    for (let i = 0; i < half; i++) {
      const theta = (pos * Math.pow(c.ropeBase, (-2 * i) / ropeDim)) / (freqFactors ? freqFactors[i] : 1);
      const [a, b] = c.ropeMode === 'norm' ? [off + 2 * i, off + 2 * i + 1] : [off + i, off + i + half];
      const [x0, x1] = [v[a], v[b]];
      v[a] = x0 * Math.cos(theta) - x1 * Math.sin(theta);
      v[b] = x0 * Math.sin(theta) + x1 * Math.cos(theta);
    }
  };
  type RefLayer = Record<'an' | 'wq' | 'wk' | 'wv' | 'wo' | 'fn' | 'wg' | 'wu' | 'wd', Float32Array> & Partial<Record<'bq' | 'bk' | 'bv', Float32Array>>;
  const layers: RefLayer[] = [];
  for (const L of t.layers) {
    layers.push({
      an: await must(L.attnNorm), wq: await must(L.wq!), wk: await must(L.wk!), wv: await must(L.wv!),
      bq: await w(L.bq), bk: await w(L.bk), bv: await w(L.bv), wo: await must(L.wo),
      fn: await must(L.ffnNorm), wg: await must(L.wGate), wu: await must(L.wUp), wd: await must(L.wDown),
    });
  }
  const kCache: number[][][] = layers.map(() => []); // (layer, pos, kvDim), rotated
  const vCache: number[][][] = layers.map(() => []);
  const all: Float32Array[] = [];
  tokens.forEach((tok, pos) => {
    let x = Array.from(embd.subarray(tok * dim, (tok + 1) * dim));
    layers.forEach((L, l) => {
      const xn = norm(x, L.an);
      const q = mv(L.wq, xn, nHeads * headDim, dim, L.bq);
      const k = mv(L.wk, xn, kvDim, dim, L.bk);
      for (let h = 0; h < nHeads; h++) rope(q, h * headDim, pos);
      for (let h = 0; h < nKvHeads; h++) rope(k, h * headDim, pos);
      kCache[l].push(k);
      vCache[l].push(mv(L.wv, xn, kvDim, dim, L.bv));
      const att: number[] = [];
      for (let h = 0; h < nHeads; h++) {
        const ko = Math.floor(h / (nHeads / nKvHeads)) * headDim;
        const s = kCache[l].map((kp) => {
          let d = 0;
          for (let i = 0; i < headDim; i++) d += q[h * headDim + i] * kp[ko + i];
          return d / Math.sqrt(headDim);
        });
        const mx = Math.max(...s);
        const e = s.map((v) => Math.exp(v - mx));
        const z = e.reduce((a, v) => a + v, 0);
        for (let i = 0; i < headDim; i++) att.push(vCache[l].reduce((a, vp, p) => a + (e[p] / z) * vp[ko + i], 0));
      }
      const o = mv(L.wo, att, dim, nHeads * headDim);
      x = x.map((v, i) => v + o[i]);
      const xf = norm(x, L.fn);
      const g = mv(L.wg, xf, ffnDim, dim);
      const u = mv(L.wu, xf, ffnDim, dim);
      const d = mv(L.wd, g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]), dim, ffnDim);
      x = x.map((v, i) => v + d[i]);
    });
    all.push(Float32Array.from(mv(out, norm(x, outNorm), c.vocabSize, dim)));
  });
  return all;
}

describe.skipIf(!stories)(stories ? 'CPU reference on stories260K' : missingShared(STORIES), () => {
  let source: ByteSource;
  let file: GGUFFile;
  let model: CpuModel;
  beforeAll(async () => {
    source = await FileSource.open(stories!);
    file = await parseGGUF(source);
    model = await CpuModel.load(source, file);
  });

  it("greedy from BOS reproduces llama2.c's published stories260K sample", () => {
    const ids = cpuGenerateGreedy(model, [1], 60);
    expect(ids).toHaveLength(60);
    expect(model.length).toBe(60); // the prompt and 59 fed-back tokens
    const text = spmPiecesToText(file, ids);
    expect(text.startsWith(' Once upon a time, there was a little girl named Lily. She loved to play outside in the park.')).toBe(true);
    expect(ids).toEqual(golden.fromBos.tokens);
  });

  it("greedy from the prompt 'Once upon a time' gives the golden ids (test/fixtures/stories260K-golden.json)", () => {
    const { promptTokens, maxTokens, tokens } = golden.prompt;
    expect(cpuGenerateGreedy(model, promptTokens, maxTokens)).toEqual(tokens); // no end-of-generation token within maxTokens
  });

  it('one token at a time gives the same last logits as one multi-token forward', () => {
    const prompt = [1, 403, 407, 261, 378, 426, 271, 263, 415];
    model.reset();
    const batched = model.forward(prompt);
    expect(model.length).toBe(prompt.length);
    model.reset();
    let inc: Float32Array = new Float32Array(0);
    for (const t of prompt) inc = model.forward([t]);
    expect(Array.from(inc)).toEqual(Array.from(batched));
    // A split in the middle changes nothing either.
    model.reset();
    model.forward(prompt.slice(0, 4));
    expect(Array.from(model.forward(prompt.slice(4)))).toEqual(Array.from(batched));
  });

  it('forward(tokens, startPos) rewinds: the tail is recomputed as on a fresh sequence', () => {
    model.reset();
    model.forward([1, 403, 407, 261, 378]);
    const rewound = model.forward([300, 301], 2);
    expect(model.length).toBe(4);
    model.reset();
    expect(Array.from(rewound)).toEqual(Array.from(model.forward([1, 403, 300, 301])));
    expect(() => model.forward([1], 5)).toThrow(expect.objectContaining({ code: 'bad-position' }));
  });

  it('keys cached before RoPE equal a rotate-then-store forward pass (norm mode)', async () => {
    const tokens = [1, 403, 407, 261, 378, 426, 271, 263, 415, 300, 280, 290];
    const ref = await rotateThenStoreLogits(source, file, tokens);
    model.reset();
    for (let i = 0; i < tokens.length; i++) {
      const got = model.forward([tokens[i]]);
      expect(relMaxDiff(got, ref[i])).toBeLessThan(1e-4);
      expect(greedyArgmax(got)).toBe(greedyArgmax(ref[i]));
    }
  });

  it('returns a copy of the logits, and reset restarts at position 0', () => {
    model.reset();
    const a = model.forward([1]);
    a.fill(0);
    model.reset();
    const b = model.forward([1]);
    expect(b.some((v) => v !== 0)).toBe(true);
    expect(model.length).toBe(1);
  });

  it('rejects empty input, token ids outside the vocabulary and a full cache with typed errors', async () => {
    model.reset();
    expect(() => model.forward([])).toThrow(expect.objectContaining({ name: 'InvalidRequestError', code: 'empty-input' }));
    expect(() => model.forward([512])).toThrow(expect.objectContaining({ name: 'InvalidRequestError', code: 'bad-token' }));
    expect(() => model.forward([-1])).toThrow(expect.objectContaining({ code: 'bad-token' }));
    const small = await CpuModel.load(source, file, 4);
    expect(small.maxPos).toBe(4);
    small.forward([1, 2, 3]);
    expect(() => small.forward([4, 5])).toThrow(expect.objectContaining({ name: 'KVCacheError', code: 'kv-cache-full' }));
    expect(small.length).toBe(3); // nothing was appended by the refused call
  });
});

describe('CPU reference on synthetic models', () => {
  it('qwen2 (NEOX RoPE, biases, 14/2 heads, tied head): keys cached before RoPE equal rotate-then-store', async () => {
    const spec = { ...SYNTHETIC_PRESETS['tiny-qwen2-gqa7-h64'], nLayers: 2, weightType: GGMLType.F16 };
    const bytes = makeSyntheticModel(spec);
    const source = new MemorySource(bytes);
    const file = await parseGGUF(source);
    const model = await CpuModel.load(source, file);
    expect(model.config.ropeMode).toBe('neox');
    expect(model.config.qkvBias).toBe(true);
    const tokens = [1, 300, 301, 302, 450, 260, 300];
    const ref = await rotateThenStoreLogits(source, file, tokens);
    for (let i = 0; i < tokens.length; i++) expect(relMaxDiff(model.forward([tokens[i]]), ref[i])).toBeLessThan(1e-4);
  });

  it('greedy generation is deterministic and continues the batched forward', async () => {
    const bytes = makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-gqa4-h64'], weightType: GGMLType.Q8_0 });
    const model = await CpuModel.load(new MemorySource(bytes));
    const prompt = [1, 270, 280, 290];
    const a = cpuGenerateGreedy(model, prompt, 8);
    const b = cpuGenerateGreedy(model, prompt, 8);
    expect(a).toEqual(b);
    expect(model.length).toBe(prompt.length + 7);
    model.reset();
    expect(greedyArgmax(model.forward(prompt))).toBe(a[0]);
    expect(cpuGenerateGreedy(model, prompt, 0)).toEqual([]);
  });
});

describe('greedyArgmax', () => {
  it('picks the largest logit, the lowest id on ties', () => {
    expect(greedyArgmax(new Float32Array([0, 3, 1, 3]))).toBe(1);
    expect(greedyArgmax(new Float32Array([-5, -2, -7]))).toBe(1);
    expect(greedyArgmax(new Float32Array([2, 2, 2]))).toBe(0);
  });
});
