// Every architecture on the GPU against the CPU reference, on the tiny synthetic model of each
// (the reference runs the same family's program written independently on the CPU): logits after a
// prompt prefilled in several passes and after every decode step. Then chunk linking on each
// architecture: with everything recomputed, a linked request equals a full prefill, including a
// gemma3 whose window is smaller than a chunk (the chunk's keys outside a local layer's window are
// masked like any other key).
import { describe, expect, it } from 'vitest';
import { GGMLType } from '../../src/gguf/quant.ts';
import { parseGGUF } from '../../src/gguf/reader.ts';
import { MemorySource } from '../../src/gguf/source.ts';
import { CpuModel, greedy } from '../../src/model/cpu-reference.ts';
import type { GpuModel } from '../../src/model/gpu-model.ts';
import { makeSyntheticModel, SYNTHETIC_PRESETS, type SyntheticSpec } from '../../src/model/synthetic.ts';
import { testContext } from '../helpers/gpu.ts';
import { GREEDY, loadGpuModel } from '../helpers/model.ts';

/** Largest |a - b| relative to the largest |b|. */
function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / s;
}

const preset = (name: keyof typeof SYNTHETIC_PRESETS, extra: Partial<SyntheticSpec> = {}): SyntheticSpec => ({ ...SYNTHETIC_PRESETS[name], ...extra });

/** The prompt: 21 tokens, so passes of at most 8 split it three ways and the gemma3 window (8) slides. */
const PROMPT = Array.from({ length: 21 }, (_, i) => (i * 37 + 11) % 320);

const cases: [string, SyntheticSpec, number][] = [
  // name, spec, the GPU's maxContext (= the CPU's positions: LongRoPE picks its factors by it)
  ['llama 3 (rope_freqs scaling)', preset('tiny-llama3'), 64],
  ['qwen3 (Q/K norms, head 64 over dim 128, tied)', preset('tiny-qwen3'), 64],
  ['gemma3 (window 8 on layers 0-1, linear-scaled global layer 2, GEGLU, post-norms)', preset('tiny-gemma3'), 64],
  ['gemma3 without a window (final logit softcap 5)', preset('tiny-gemma3', { slidingWindow: undefined, slidingWindowPattern: undefined, finalLogitSoftcap: 5 }), 64],
  ['phi3 (fused QKV and gate/up, LongRoPE short factors)', preset('tiny-phi3'), 64],
  ['phi3 (LongRoPE long factors: context above the original 64)', preset('tiny-phi3'), 96],
  ['gemma3 F16, head 256 (tiles of fewer keys)', preset('tiny-gemma3', { weightType: GGMLType.F16, nHeads: 2, nKvHeads: 1, headDim: 256, nLayers: 2, slidingWindowPattern: 2 }), 64],
];

describe('every architecture: GPU equals the CPU reference', () => {
  it.each(cases)('%s: prefill in three passes, then 6 decode steps', async (_, spec, maxContext) => {
    const bytes = makeSyntheticModel(spec);
    const ctx = await testContext();
    const { model } = await loadGpuModel(ctx, bytes, maxContext, 8);
    const cpu = await CpuModel.load(new MemorySource(bytes), await parseGGUF(new MemorySource(bytes)), maxContext);
    let next = await model.prefill(PROMPT, GREEDY);
    let want = cpu.forward(PROMPT);
    const errors: number[] = [];
    for (let step = 0; step < 7; step++) {
      const got = await model.readLogits();
      errors.push(relErr(got, want));
      // Greedy ids agree wherever the CPU's top two are apart by more than the tolerance.
      const top = greedy(want);
      const sorted = [...want].sort((a, b) => b - a);
      if (sorted[0] - sorted[1] > 1e-3 * Math.abs(sorted[0])) expect(next, `step ${step}`).toBe(top);
      if (step === 6) break;
      want = cpu.forward([next]);
      next = await model.decode(GREEDY);
    }
    expect(Math.max(...errors)).toBeLessThan(2e-4);
    model.destroy();
  });

  it('the window and the LongRoPE choice matter: the CPU reference without them differs', async () => {
    // A gemma3 with every layer global, and a phi3 held at its short factors, give other logits:
    // the comparisons above would catch a GPU that ignored either.
    const windowed = makeSyntheticModel(preset('tiny-gemma3'));
    const global = makeSyntheticModel(preset('tiny-gemma3', { slidingWindow: 100000, slidingWindowPattern: 3 }));
    const a = (await CpuModel.load(new MemorySource(windowed), undefined, 64)).forward(PROMPT);
    const b = (await CpuModel.load(new MemorySource(global), undefined, 64)).forward(PROMPT);
    expect(relErr(a, b)).toBeGreaterThan(1e-3);
    const phi = makeSyntheticModel(preset('tiny-phi3'));
    const short = (await CpuModel.load(new MemorySource(phi), undefined, 64)).forward(PROMPT);
    const long = (await CpuModel.load(new MemorySource(phi), undefined, 96)).forward(PROMPT);
    expect(relErr(short, long)).toBeGreaterThan(1e-3);
  });
});

async function readLogitsAfter(model: GpuModel, run: () => Promise<unknown>): Promise<Float32Array> {
  await run();
  return model.readLogits();
}

const linkCases: [string, SyntheticSpec][] = [
  ['llama 3', preset('tiny-llama3')],
  ['qwen3', preset('tiny-qwen3')],
  ['gemma3, window 8 smaller than the chunks', preset('tiny-gemma3')],
  ['phi3', preset('tiny-phi3')],
];

describe('chunk linking on every architecture', () => {
  it.each(linkCases)('%s: everything recomputed equals full prefill; one chunk at 0 reuses exactly', async (_, spec) => {
    const ctx = await testContext();
    const { model } = await loadGpuModel(ctx, makeSyntheticModel(spec), 64, 16);
    const prefix = [1, 300, 301];
    const a = Array.from({ length: 13 }, (_, i) => 260 + ((i * 7) % 50));
    const b = Array.from({ length: 11 }, (_, i) => 270 + ((i * 5) % 40));
    const q = [280, 281, 282, 283];
    await model.beginSequence();
    const full = await readLogitsAfter(model, () => model.prefill([...prefix, ...a, ...b, ...q], GREEDY));
    const ca = await model.computeChunk(a);
    const cb = await model.computeChunk(b);
    // k past every chunk's length: each chunk token runs again at its place, attending to all before it.
    const all = await readLogitsAfter(model, () => model.prefillLinked({ prefix, chunks: [ca, cb], question: q, k: 100 }, GREEDY));
    expect(relErr(all, full)).toBeLessThan(1e-4);
    // Naive reuse differs (chunk b's KV was computed without a before it), so the check above has teeth.
    const naive = await readLogitsAfter(model, () => model.prefillLinked({ prefix, chunks: [ca, cb], question: q, k: 0 }, GREEDY));
    expect(relErr(naive, full)).toBeGreaterThan(1e-3);
    // A chunk placed at position 0 with nothing before it is exactly its full prefill.
    await model.beginSequence();
    const alone = await readLogitsAfter(model, () => model.prefill([...a, ...q], GREEDY));
    const placed = await readLogitsAfter(model, () => model.prefillLinked({ prefix: [], chunks: [ca], question: q, k: 0 }, GREEDY));
    expect(relErr(placed, alone)).toBeLessThan(1e-5);
    ca.release();
    cb.release();
    model.destroy();
  });
});
