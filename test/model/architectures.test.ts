// Every architecture from its GGUF metadata alone: what synthetic.ts writes for each one (the keys
// and tensors llama.cpp loads), the config read back from it, and the tensor table's errors.
import { describe, expect, it } from 'vitest';
import { GGMLType, tensorByteLength } from '../../src/gguf/quant.ts';
import { parseGGUF, type GGUFFile } from '../../src/gguf/reader.ts';
import { MemorySource } from '../../src/gguf/source.ts';
import { metadataFromFile, writeGGUF, type GGUFWriteTensor } from '../../src/gguf/writer.ts';
import { configFromGGUF } from '../../src/model/config.ts';
import { attnlinkIndices, cpuComputeChunk, cpuPrefillLinked } from '../../src/model/cpu-link.ts';
import { CpuModel } from '../../src/model/cpu-reference.ts';
import { llama3RopeFactors, makeSyntheticModel, SYNTHETIC_PRESETS, syntheticLongRope, type SyntheticSpec } from '../../src/model/synthetic.ts';
import { familyTensors, resolveTensors } from '../../src/model/tensors.ts';
import { withMetadata, withTensors } from './files.ts';

async function parse(bytes: Uint8Array): Promise<GGUFFile> {
  return parseGGUF(new MemorySource(bytes));
}

const tiny = (name: keyof typeof SYNTHETIC_PRESETS, extra: Partial<SyntheticSpec> = {}): SyntheticSpec => ({ ...SYNTHETIC_PRESETS[name], ...extra });

/** Layer 0's tensor names without the `blk.0.` prefix, sorted. */
function layerNames(file: GGUFFile): string[] {
  return file.tensors
    .filter((t) => t.name.startsWith('blk.0.'))
    .map((t) => t.name.slice(6))
    .sort();
}

describe('synthetic models of every architecture', () => {
  it('llama 3: rope_freqs.weight holds the converter factors (1 for short wavelengths, the factor for long ones)', async () => {
    const spec = tiny('tiny-llama3');
    const file = await parse(makeSyntheticModel(spec));
    const t = file.tensorIndex.get('rope_freqs.weight')!;
    expect(t.shape).toEqual([spec.headDim / 2]);
    const f = llama3RopeFactors(spec.headDim, spec.ropeBase!, spec.llama3Rope!);
    // base 500000 over 16 pairs: wavelength 2π·500000^(2i/32) from 6.3 up; original context 64 puts
    // the short ones (< 16) at 1, the long ones (> 64) at the factor 8, and one pair in between.
    expect(f[0]).toBe(1);
    expect(f[15]).toBe(8);
    const between = [...f].filter((x) => x > 1 && x < 8);
    expect(between.length).toBeGreaterThanOrEqual(1);
    for (let i = 1; i < f.length; i++) expect(f[i]).toBeGreaterThanOrEqual(f[i - 1]);
    expect(layerNames(file)).toEqual(['attn_k.weight', 'attn_norm.weight', 'attn_output.weight', 'attn_q.weight', 'attn_v.weight', 'ffn_down.weight', 'ffn_gate.weight', 'ffn_norm.weight', 'ffn_up.weight']);
  });

  it('llama 3.2 1B: the factors of its published scaling (factor 32, original context 8192)', () => {
    const f = llama3RopeFactors(64, 500000, SYNTHETIC_PRESETS['llama-3.2-1b'].llama3Rope);
    expect(f[0]).toBe(1);
    expect(f[31]).toBe(32);
    // The smooth band: wavelengths between 8192/4 and 8192.
    const smooth = [...f].map((x, i) => [x, 2 * Math.PI * Math.pow(500000, (2 * i) / 64)]).filter(([x]) => x > 1 && x < 32);
    for (const [x, wavelen] of smooth) {
      expect(wavelen).toBeGreaterThanOrEqual(2048);
      expect(wavelen).toBeLessThanOrEqual(8192);
      const s = (8192 / wavelen - 1) / 3;
      expect(x).toBeCloseTo(1 / ((1 - s) / 32 + s), 5);
    }
  });

  it('qwen3: per-head Q/K norms of the head size, no biases, a query wider than the embedding', async () => {
    const spec = tiny('tiny-qwen3');
    const file = await parse(makeSyntheticModel(spec));
    expect(layerNames(file)).toEqual([
      'attn_k.weight',
      'attn_k_norm.weight',
      'attn_norm.weight',
      'attn_output.weight',
      'attn_q.weight',
      'attn_q_norm.weight',
      'attn_v.weight',
      'ffn_down.weight',
      'ffn_gate.weight',
      'ffn_norm.weight',
      'ffn_up.weight',
    ]);
    expect(file.tensorIndex.get('blk.0.attn_q_norm.weight')!.shape).toEqual([64]);
    expect(file.tensorIndex.get('blk.0.attn_q.weight')!.shape).toEqual([128, 256]);
    expect(file.metadata['qwen3.attention.key_length']).toBe(64);
    expect(file.tensorIndex.has('output.weight')).toBe(false);
  });

  it('gemma3: Q/K norms, post-attention and post-FFN norms, sliding-window keys, linear RoPE scaling', async () => {
    const spec = tiny('tiny-gemma3');
    const file = await parse(makeSyntheticModel(spec));
    expect(layerNames(file)).toEqual([
      'attn_k.weight',
      'attn_k_norm.weight',
      'attn_norm.weight',
      'attn_output.weight',
      'attn_q.weight',
      'attn_q_norm.weight',
      'attn_v.weight',
      'ffn_down.weight',
      'ffn_gate.weight',
      'ffn_norm.weight',
      'ffn_up.weight',
      'post_attention_norm.weight',
      'post_ffw_norm.weight',
    ]);
    const m = file.metadata;
    expect(m['gemma3.attention.sliding_window']).toBe(8);
    expect(m['gemma3.attention.sliding_window_pattern']).toBe(3);
    expect(m['gemma3.rope.scaling.type']).toBe('linear');
    expect(m['gemma3.rope.scaling.factor']).toBe(4);
    expect(m['gemma3.final_logit_softcapping']).toBeUndefined();
    // The real shape's file writes the window but leaves the pattern to llama.cpp's default.
    expect(SYNTHETIC_PRESETS['gemma-3-1b']).toMatchObject({ nLayers: 26, dim: 1152, nHeads: 4, nKvHeads: 1, headDim: 256, slidingWindow: 512 });
    expect(SYNTHETIC_PRESETS['gemma-3-1b']).not.toHaveProperty('slidingWindowPattern');
  });

  it('phi3: fused attn_qkv and ffn_up, LongRoPE factors with their attention factor and original context', async () => {
    const spec = tiny('tiny-phi3');
    const file = await parse(makeSyntheticModel(spec));
    expect(layerNames(file)).toEqual(['attn_norm.weight', 'attn_output.weight', 'attn_qkv.weight', 'ffn_down.weight', 'ffn_norm.weight', 'ffn_up.weight']);
    expect(file.tensorIndex.get('blk.0.attn_qkv.weight')!.shape).toEqual([128, 128 + 2 * 64]);
    expect(file.tensorIndex.get('blk.0.ffn_up.weight')!.shape).toEqual([128, 2 * 256]);
    expect(file.tensorIndex.get('rope_factors_long.weight')!.shape).toEqual([16]);
    expect(file.tensorIndex.get('rope_factors_short.weight')!.shape).toEqual([16]);
    const m = file.metadata;
    // sqrt(1 + ln(1024/64) / ln(64)), as the converter computes it.
    expect(m['phi3.rope.scaling.attn_factor']).toBeCloseTo(Math.sqrt(1 + Math.log(16) / Math.log(64)), 6);
    expect(m['phi3.rope.scaling.original_context_length']).toBe(64);
    expect(m['phi3.attention.sliding_window']).toBe(32);
    // llama.cpp looks this control token up by its text for a model named Phi-3.
    const tokens = m['tokenizer.ggml.tokens'] as string[];
    expect(tokens[319]).toBe('<|endoftext|>');
    expect((m['tokenizer.ggml.token_type'] as Int32Array)[319]).toBe(3);
    const lr = syntheticLongRope(96, 4096, 131072);
    expect(lr.attnFactor).toBeCloseTo(1.1902380714238083, 9); // Phi-3-mini-128k's published value
  });

  it('refuses architecture-specific options on other architectures', () => {
    expect(() => makeSyntheticModel(tiny('tiny-qwen3', { llama3Rope: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 64 } }))).toThrow(/rope_freqs/);
    expect(() => makeSyntheticModel(tiny('tiny-llama3', { llama3Rope: undefined, longRopeOriginalContext: 64 }))).toThrow(/phi3 only/);
    expect(() => makeSyntheticModel(tiny('tiny-phi3', { headDim: 16 }))).toThrow(/must equal dim/);
    expect(() => makeSyntheticModel(tiny('tiny-gemma3', { slidingWindow: undefined }))).toThrow(/slidingWindowPattern/);
  });

  it('writes every tiny preset with a GGMLType llama.cpp reads for its norms (F32)', async () => {
    for (const name of ['tiny-llama3', 'tiny-qwen3', 'tiny-gemma3', 'tiny-phi3'] as const) {
      const file = await parse(makeSyntheticModel(tiny(name)));
      for (const t of file.tensors) if (t.shape.length === 1) expect(t.type).toBe(GGMLType.F32);
      expect(file.metadata['general.architecture']).toBe(SYNTHETIC_PRESETS[name].architecture);
    }
  });
});

/** The config of the tiny preset `name` (with `extra`), one layer fewer where that keeps it small. */
async function configOf(name: keyof typeof SYNTHETIC_PRESETS, extra: Partial<SyntheticSpec> = {}) {
  const file = await parse(makeSyntheticModel(tiny(name, extra)));
  return { file, c: configFromGGUF(file) };
}

describe('config of every architecture, from its metadata alone', () => {
  it('llama 3: NORM RoPE, rope_freqs, no scaling keys', async () => {
    const { c } = await configOf('tiny-llama3');
    expect(c).toMatchObject({
      architecture: 'llama',
      family: 'llama',
      ropeMode: 'norm',
      ropeBase: 500000,
      hasRopeFreqs: true,
      hasLongRopeFactors: false,
      ropeFreqScale: 1,
      ropeAttnFactor: 1,
      qkNorm: false,
      qkvBias: false,
      fusedQkv: false,
      slidingWindow: 0,
      localLayers: [false, false],
      embeddingScale: 1,
      finalLogitSoftcap: 0,
    });
    expect(c.attentionScale).toBe(1 / Math.sqrt(32));
  });

  it('SmolLM2 and Mistral ride on llama: 9/3 heads of 64, tied; a sliding_window key is not read', async () => {
    const { file, c } = await configOf('smollm2-135m', { nLayers: 1, vocabSize: 512, weightType: GGMLType.Q8_0 });
    expect(c).toMatchObject({ architecture: 'llama', family: 'llama', dim: 576, nHeads: 9, nKvHeads: 3, headDim: 64, ffnDim: 1536, tiedOutput: true, ropeBase: 100000 });
    const mistral = configFromGGUF(withMetadata(file, { 'llama.attention.sliding_window': 4096, 'llama.rope.freq_base': 1e6 }));
    expect(mistral).toMatchObject({ slidingWindow: 0, localLayers: [false], ropeBase: 1e6 });
  });

  it('qwen3: NEOX RoPE, per-head Q/K norms, head size from key_length (64 where dim/heads is 32)', async () => {
    const { c } = await configOf('tiny-qwen3');
    expect(c).toMatchObject({ architecture: 'qwen3', family: 'llama', ropeMode: 'neox', qkNorm: true, qkvBias: false, headDim: 64, ropeDim: 64, dim: 128, nHeads: 4, tiedOutput: true });
    expect(c.attentionScale).toBe(1 / 8);
  });

  it('qwen3 refuses a RoPE dimension other than its head size, as llama.cpp asserts', async () => {
    const { file } = await configOf('tiny-qwen3');
    expect(() => configFromGGUF(withMetadata(file, { 'qwen3.rope.dimension_count': 32 }))).toThrow(
      expect.objectContaining({ code: 'bad-config', message: expect.stringMatching(/RoPE dimension 32 must equal the head size 64 for qwen3/) }),
    );
  });

  it('gemma3: embedding scale, local layers by the pattern key, their RoPE base, linear scaling of global layers', async () => {
    const { file, c } = await configOf('tiny-gemma3');
    expect(c).toMatchObject({
      architecture: 'gemma3',
      family: 'gemma3',
      ropeMode: 'neox',
      qkNorm: true,
      slidingWindow: 8,
      localLayers: [true, true, false],
      ropeBase: 1e6,
      ropeBaseLocal: 10000, // no rope.freq_base_swa: llama.cpp's 10000
      ropeFreqScale: 0.25,
      finalLogitSoftcap: 0,
    });
    expect(c.embeddingScale).toBe(Math.fround(Math.sqrt(128)));
    expect(c.attentionScale).toBe(1 / Math.sqrt(64));
    expect(configFromGGUF(withMetadata(file, { 'gemma3.rope.freq_base_swa': 20000 })).ropeBaseLocal).toBe(20000);
    // Per-layer pattern arrays (true: local) are read as they are.
    expect(configFromGGUF(withMetadata(file, { 'gemma3.attention.sliding_window_pattern': [false, true, true] })).localLayers).toEqual([false, true, true]);
    expect(() => configFromGGUF(withMetadata(file, { 'gemma3.attention.sliding_window_pattern': [true, false] }))).toThrow(/2 entries for 3 layers/);
  });

  it("gemma3 without a pattern key: llama.cpp's period 6 (every sixth layer global); without a window: no local layers, softcap read", async () => {
    const { file } = await configOf('tiny-gemma3', { nLayers: 13 });
    const six = configFromGGUF(withMetadata(file, { 'gemma3.attention.sliding_window_pattern': undefined }));
    expect(six.localLayers.map((x, l) => (x ? -1 : l)).filter((l) => l >= 0)).toEqual([5, 11]);
    const none = configFromGGUF(withMetadata(file, { 'gemma3.attention.sliding_window': undefined, 'gemma3.attention.sliding_window_pattern': undefined, 'gemma3.final_logit_softcapping': 30 }));
    expect(none.localLayers.some(Boolean)).toBe(false);
    expect(none.finalLogitSoftcap).toBe(30);
    // With a window llama.cpp's graph does not softcap.
    expect(configFromGGUF(withMetadata(file, { 'gemma3.final_logit_softcapping': 30 })).finalLogitSoftcap).toBe(0);
  });

  it("gemma3's 62-layer 27B scales scores by 1/sqrt(dim/heads), as llama.cpp does", async () => {
    const { file } = await configOf('tiny-gemma3');
    const big = configFromGGUF(withMetadata(file, { 'gemma3.block_count': 62 }));
    expect(big.attentionScale).toBe(1 / Math.sqrt(128 / 4));
    expect(big.localLayers).toHaveLength(62);
  });

  it('phi3: fused QKV, LongRoPE factors with their attention factor and original context; its sliding window is ignored', async () => {
    const { c } = await configOf('tiny-phi3');
    expect(c).toMatchObject({ architecture: 'phi3', family: 'phi3', ropeMode: 'neox', fusedQkv: true, hasLongRopeFactors: true, ropeOrigContext: 64, slidingWindow: 0, localLayers: [false, false] });
    expect(c.ropeAttnFactor).toBeCloseTo(Math.sqrt(1 + Math.log(16) / Math.log(64)), 6);
  });

  it('reads rope.scaling: linear factors (and the old scale_linear key), none, and refuses YaRN', async () => {
    const { file } = await configOf('tiny-qwen3');
    expect(configFromGGUF(withMetadata(file, { 'qwen3.rope.scaling.type': 'linear', 'qwen3.rope.scaling.factor': 8 })).ropeFreqScale).toBe(1 / 8);
    expect(configFromGGUF(withMetadata(file, { 'qwen3.rope.scale_linear': 2 })).ropeFreqScale).toBe(1 / 2);
    expect(configFromGGUF(withMetadata(file, { 'qwen3.rope.scaling.type': 'none', 'qwen3.rope.scaling.factor': 8 })).ropeFreqScale).toBe(1);
    expect(() => configFromGGUF(withMetadata(file, { 'qwen3.rope.scaling.type': 'yarn', 'qwen3.rope.scaling.factor': 4 }))).toThrow(
      expect.objectContaining({ name: 'UnsupportedModelError', code: 'unsupported-rope-scaling', fields: { scaling: 'yarn' } }),
    );
  });

  it('the real-shape presets parse with their published shapes', async () => {
    const shapes = {
      'qwen3-0.6b': { headDim: 128, nHeads: 16, nKvHeads: 8, dim: 1024, qkNorm: true },
      'gemma-3-1b': { headDim: 256, nHeads: 4, nKvHeads: 1, dim: 1152, slidingWindow: 512 },
      'phi-3-mini': { headDim: 96, nHeads: 32, nKvHeads: 32, dim: 3072, fusedQkv: true, ropeOrigContext: 4096 },
    } as const;
    for (const [name, want] of Object.entries(shapes)) {
      // One layer, a small vocabulary: the shapes and keys are what is checked.
      const { c } = await configOf(name as keyof typeof SYNTHETIC_PRESETS, { nLayers: 1, vocabSize: 300 });
      expect(c, name).toMatchObject(want);
    }
  });
});

describe('tensor table of every architecture', () => {
  const drop = (file: GGUFFile, name: string) => withTensors(file, (t) => (t.name === name ? undefined : t));
  const missing = (file: GGUFFile, tensor: string, message: RegExp) =>
    expect(() => resolveTensors(file, configFromGGUF(file))).toThrow(
      expect.objectContaining({ name: 'UnsupportedModelError', code: 'missing-tensor', fields: { tensor }, message: expect.stringMatching(message) }),
    );

  it('names the missing tensor of each family', async () => {
    missing(drop((await configOf('tiny-qwen3')).file, 'blk.1.attn_k_norm.weight'), 'blk.1.attn_k_norm.weight', /which qwen3 needs/);
    missing(drop((await configOf('tiny-gemma3')).file, 'blk.2.post_ffw_norm.weight'), 'blk.2.post_ffw_norm.weight', /which gemma3 needs/);
    missing(drop((await configOf('tiny-gemma3')).file, 'blk.0.post_attention_norm.weight'), 'blk.0.post_attention_norm.weight', /gemma3/);
    missing(drop((await configOf('tiny-phi3')).file, 'rope_factors_short.weight'), 'rope_factors_short.weight', /which phi3 needs/);
    missing(drop((await configOf('tiny-phi3')).file, 'blk.1.ffn_down.weight'), 'blk.1.ffn_down.weight', /phi3/);
    // A layer without attn_qkv (layer 0 decides that Q/K/V are fused) names it.
    missing(drop((await configOf('tiny-phi3')).file, 'blk.1.attn_qkv.weight'), 'blk.1.attn_qkv.weight', /phi3/);
    // Without any fused QKV the separate matrices are required, and the message says either will do.
    const { file } = await configOf('tiny-phi3');
    missing(drop(drop(file, 'blk.0.attn_qkv.weight'), 'blk.1.attn_qkv.weight'), 'blk.0.attn_q.weight', /or a fused 'blk\.0\.attn_qkv\.weight'/);
  });

  it('checks the shapes of Q/K norms and fused matrices against the config', async () => {
    const { file } = await configOf('tiny-gemma3');
    const bad = withTensors(file, (t) => (t.name === 'blk.0.attn_q_norm.weight' ? { ...t, shape: [128] } : t));
    expect(() => resolveTensors(bad, configFromGGUF(bad))).toThrow(
      expect.objectContaining({ code: 'bad-shape', fields: { tensor: 'blk.0.attn_q_norm.weight', shape: '128', expected: '64' } }),
    );
    const phi = (await configOf('tiny-phi3')).file;
    const fused = withTensors(phi, (t) => (t.name === 'blk.0.ffn_up.weight' ? { ...t, shape: [128, 256] } : t));
    expect(() => resolveTensors(fused, configFromGGUF(fused))).toThrow(expect.objectContaining({ code: 'bad-shape', fields: { tensor: 'blk.0.ffn_up.weight', shape: '128x256', expected: '128x512' } }));
  });

  it('resolves what each family reads: gemma3 its norms, phi3 its LongRoPE factors and fused QKV, and no other family\'s roles', async () => {
    const g = resolveTensors((await configOf('tiny-gemma3')).file, (await configOf('tiny-gemma3')).c);
    expect(g.family).toBe('gemma3');
    const gemma = familyTensors(g, 'gemma3');
    expect(gemma.layers[2].ffnPostNorm.shape).toEqual([128]);
    expect(gemma.layers[0].qNorm?.shape).toEqual([64]);
    const p = await configOf('tiny-phi3');
    const phi = familyTensors(resolveTensors(p.file, p.c), 'phi3');
    expect(phi.ropeFactorsLong?.shape).toEqual([16]);
    expect(phi.layers[0].wqkv?.shape).toEqual([128, 256]);
    expect(phi.layers[0].wq).toBeUndefined();
    expect(() => familyTensors(g, 'llama')).toThrow(expect.objectContaining({ code: 'bad-family' }));
  });

  it('splits fused matrices by rows at load: the CPU reference of phi3 equals one with Q, K and V apart', async () => {
    // The same weights written separately (llama.cpp reads either form for phi3).
    const bytes = makeSyntheticModel(tiny('tiny-phi3'));
    const file = await parse(bytes);
    const tensors: GGUFWriteTensor[] = [];
    for (const t of file.tensors) {
      const data = bytes.subarray(t.offset, t.offset + t.byteLength);
      const rowBytes = tensorByteLength(t.type, t.shape[0]);
      const rows = (name: string, from: number, n: number) => ({ name, shape: [t.shape[0], n], type: t.type, data: data.subarray(from * rowBytes, (from + n) * rowBytes) });
      if (t.name.endsWith('attn_qkv.weight')) {
        const p = t.name.replace('attn_qkv.weight', '');
        tensors.push(rows(`${p}attn_q.weight`, 0, 128), rows(`${p}attn_k.weight`, 128, 64), rows(`${p}attn_v.weight`, 192, 64));
      } else tensors.push({ name: t.name, shape: t.shape, type: t.type, data });
    }
    const apart = writeGGUF({ metadata: metadataFromFile(file), tensors });
    const a = await CpuModel.load(new MemorySource(bytes), undefined, 64);
    const b = await CpuModel.load(new MemorySource(apart), undefined, 64);
    expect(a.config.fusedQkv).toBe(true);
    expect(b.config.fusedQkv).toBe(false);
    const prompt = [1, 300, 301, 302, 310];
    expect(b.forward(prompt)).toEqual(a.forward(prompt));
  });
});


describe('chunk linking on the CPU reference of every architecture', () => {
  for (const name of ['tiny-llama3', 'tiny-qwen3', 'tiny-gemma3', 'tiny-phi3'] as const) {
    it(`${name}: recomputing every chunk token equals the full forward pass; naive reuse does not`, async () => {
      const model = await CpuModel.load(new MemorySource(makeSyntheticModel(tiny(name))), undefined, 64);
      const prefix = [1, 300];
      const a = Array.from({ length: 12 }, (_, i) => 260 + ((i * 7) % 50));
      const b = Array.from({ length: 10 }, (_, i) => 270 + ((i * 5) % 40));
      const q = [280, 281, 282];
      const full = model.forwardAll([...prefix, ...a, ...b, ...q]).slice(-q.length);
      const chunks = [cpuComputeChunk(model, a), cpuComputeChunk(model, b)];
      const all = cpuPrefillLinked(model, { prefix, chunks, question: q, recompute: attnlinkIndices(chunks, 100) });
      all.forEach((row, i) => expect(Math.max(...row.map((v, j) => Math.abs(v - full[i][j])))).toBeLessThan(1e-4));
      const naive = cpuPrefillLinked(model, { prefix, chunks, question: q, recompute: [[], []] });
      expect(Math.max(...naive[0].map((v, j) => Math.abs(v - full[0][j])))).toBeGreaterThan(1e-3);
    });
  }
});
