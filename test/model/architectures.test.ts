// Every architecture from its GGUF metadata alone: what synthetic.ts writes for each one (the keys
// and tensors llama.cpp loads), the config read back from it, and the tensor table's errors.
import { describe, expect, it } from 'vitest';
import { GGMLType } from '../../src/gguf/quant.ts';
import { parseGGUF, type GGUFFile } from '../../src/gguf/reader.ts';
import { MemorySource } from '../../src/gguf/source.ts';
import { llama3RopeFactors, makeSyntheticModel, SYNTHETIC_PRESETS, syntheticLongRope, type SyntheticSpec } from '../../src/model/synthetic.ts';

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
