// End-to-end model benchmarks through the Engine: load time, prefill and decode tok/s, and the
// decode bandwidth (bytes each decode token must read, times tok/s) against the copy kernel.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../src/engine/engine.ts';
import type { GenerationResult } from '../src/engine/types.ts';
import type { GpuFeatures } from '../src/gpu/context.ts';
import type { ShaderSources } from '../src/gpu/shaders.ts';
import { FileSource } from '../src/gguf/node-file-source.ts';
import { ggmlTypeName } from '../src/gguf/quant.ts';
import { parseGGUF, type GGUFFile } from '../src/gguf/reader.ts';
import { configFromGGUF, type ModelConfig } from '../src/model/config.ts';
import { makeSyntheticModel, SYNTHETIC_PRESETS, type SyntheticPreset } from '../src/model/synthetic.ts';
import { median } from './timing.ts';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cacheDir = join(projectRoot, '.cache', 'bench');

export interface ModelRunPlan {
  promptTokens: number;
  decodeTokens: number;
  /** Measured generations (after the warm-up); medians are reported. */
  runs: number;
  /** Warm-up generation before the measured ones: the full prompt (GPU), a short one, or none where even that is too slow. */
  warmup?: { promptTokens: number; decodeTokens: number };
  /** Why this model is not run with this plan (it is reported as skipped). */
  skip?: string;
}

export interface ModelResult {
  name: string;
  file: string;
  skipped?: string;
  fileBytes?: number;
  weightType?: string;
  shape?: string;
  /** Seconds to write the synthetic model into the cache (absent when it was already there). */
  synthesizeS?: number;
  /** Engine.load: header, weight upload, pipelines. */
  loadMs?: number;
  promptTokens?: number;
  /** Decode steps measured (generated tokens minus the one prefill samples). */
  decodeSteps?: number;
  runs?: number;
  ttftMs?: number;
  prefillTokPerS?: number;
  decodeTokPerS?: number;
  /** prefill tok/s over decode tok/s; the target is ≥ 10. */
  prefillOverDecode?: number;
  /** Arithmetic of the prompt pass (matrices, attention, the output head once) over its time. */
  prefillGflopPerS?: number;
  /** What one decode token reads at best: every weight it uses once, and the KV cache up to its position (mean over the decode). */
  decodeBytesPerToken?: { weights: number; kv: number; total: number };
  decodeGbPerS?: number;
  decodeFractionOfCopy?: number;
  /** Decode tok/s if every token read decodeBytesPerToken at the copy kernel's bandwidth: the bound. */
  decodeBoundTokPerS?: number;
  /** How decode was timed: 'engine' (Engine.complete's metrics) or 'model' (GpuModel steps, when greedy output hit EOS early). */
  decodeTimedBy?: 'engine' | 'model';
  runsDetail?: { ttftMs: number; prefillTokPerS: number; decodeTokPerS: number; generated: number; finishReason: string }[];
}

export interface EngineSetup {
  device: GPUDevice;
  shaders: ShaderSources;
  features: GpuFeatures;
  adapterInfo: string;
}

/**
 * The GGUF of a synthetic preset in .cache/bench, written on first use. The name carries a hash of
 * the spec and of synthetic.ts, so a changed generator writes a new file instead of reusing a stale one.
 */
export function syntheticModelPath(preset: SyntheticPreset, weightType: number, log: (s: string) => void, recipe?: 'Q4_K_M'): { path: string; synthesizeS?: number } {
  const spec = { ...SYNTHETIC_PRESETS[preset], weightType, ...(recipe ? { recipe } : {}) };
  const generator = readFileSync(join(projectRoot, 'src/model/synthetic.ts'), 'utf8');
  const hash = createHash('sha256').update(JSON.stringify(spec)).update(generator).digest('hex').slice(0, 10);
  const path = join(cacheDir, `${preset}-${(recipe ?? ggmlTypeName(weightType)).toLowerCase()}-${hash}.gguf`);
  if (existsSync(path)) return { path };
  log(`  writing ${relative(projectRoot, path)} (once; later runs reuse it)`);
  const t0 = performance.now();
  const bytes = makeSyntheticModel(spec);
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(`${path}.tmp`, bytes);
  renameSync(`${path}.tmp`, path);
  return { path, synthesizeS: (performance.now() - t0) / 1000 };
}

/** Prompt ids: BOS, then a fixed pseudo-random walk over ordinary tokens (ids past the control tokens). */
function promptIds(n: number, vocabSize: number, bos: number): number[] {
  const lo = Math.min(3, vocabSize - 1);
  const ids = [bos];
  let s = 12345;
  while (ids.length < n) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    ids.push(lo + ((s >>> 8) % (vocabSize - lo)));
  }
  return ids;
}

/** Weight bytes one decode token reads: all of them, except that an untied embedding table is only looked up (one row). */
function decodeWeightBytes(file: GGUFFile, packedWeightBytes: number): number {
  const embd = file.tensorIndex.get('token_embd.weight');
  if (!embd || !file.tensorIndex.has('output.weight')) return packedWeightBytes;
  const rows = embd.shape[1] ?? 1;
  return packedWeightBytes - embd.byteLength + embd.byteLength / rows;
}

/** FLOPs of a prompt pass of T tokens: 2 per weight per token in the layers, causal attention, the head on the last token. */
function prefillFlops(file: GGUFFile, c: ModelConfig, T: number): number {
  let layerParams = 0;
  for (const t of file.tensors) if (t.name.startsWith('blk.') && t.shape.length === 2) layerParams += t.nElements;
  const headParams = c.vocabSize * c.dim;
  // Scores and weighted values: 2 × 2 × headDim per (query head, key) pair, keys 1..t for token t.
  const attention = c.nLayers * 4 * c.nHeads * c.headDim * ((T * (T + 1)) / 2);
  return 2 * T * layerParams + attention + 2 * headParams;
}

export async function benchModel(
  setup: EngineSetup,
  name: string,
  path: string,
  plan: ModelRunPlan,
  copyGbPerS: number,
  log: (s: string) => void,
): Promise<ModelResult> {
  const source = await FileSource.open(path);
  const file = await parseGGUF(source);
  const config = configFromGGUF(file);
  const base: ModelResult = {
    name,
    file: relative(projectRoot, path),
    fileBytes: source.size,
    weightType: ggmlTypeName(config.weightType),
    shape: `${config.nLayers}L dim ${config.dim} ffn ${config.ffnDim} heads ${config.nHeads}/${config.nKvHeads}×${config.headDim} vocab ${config.vocabSize}`,
  };
  const engine = new Engine(setup.device, { shaders: setup.shaders, features: setup.features, adapterInfo: setup.adapterInfo });
  try {
    const maxContext = Math.min(config.contextLength, Math.ceil((plan.promptTokens + plan.decodeTokens + 16) / 16) * 16);
    const t0 = performance.now();
    await engine.load(source, { maxContext });
    await setup.device.queue.onSubmittedWorkDone();
    const loadMs = performance.now() - t0;
    log(`  loaded in ${(loadMs / 1000).toFixed(2)} s (${(source.size / 1048576).toFixed(1)} MiB, ${base.weightType})`);

    const tok = engine.tokenizer;
    const vocab = Math.min(tok.vocabSize, config.vocabSize);
    const prompt = promptIds(plan.promptTokens, vocab, tok.bosId >= 0 ? tok.bosId : 1);
    const greedy = { temperature: 0 };
    if (plan.warmup) {
      await engine.complete({ tokens: prompt.slice(0, plan.warmup.promptTokens) }, { ...greedy, maxTokens: plan.warmup.decodeTokens + 1 });
    }

    const runs: GenerationResult[] = [];
    for (let i = 0; i < plan.runs; i++) {
      const r = await engine.complete({ tokens: prompt }, { ...greedy, maxTokens: plan.decodeTokens + 1 });
      runs.push(r);
      log(
        `  run ${i + 1}/${plan.runs}: prefill ${r.prefillTokPerS.toFixed(1)} tok/s (ttft ${r.ttftMs.toFixed(0)} ms), ` +
          `decode ${r.decodeTokPerS.toFixed(2)} tok/s over ${Math.max(0, r.tokens.length - 1)} steps (${r.finishReason})`,
      );
    }
    const prefillTokPerS = median(runs.map((r) => r.prefillTokPerS));
    const ttftMs = median(runs.map((r) => r.ttftMs));
    let decodeTokPerS = median(runs.map((r) => r.decodeTokPerS));
    let decodeSteps = Math.min(...runs.map((r) => Math.max(0, r.tokens.length - 1)));
    let decodeTimedBy: 'engine' | 'model' = 'engine';
    if (decodeSteps < plan.decodeTokens / 2) {
      // Greedy output reached EOS early; time the same steps on the forward pass, which does not stop there.
      const model = engine.model;
      const sampling = { temperature: 0, topK: 0, topP: 1, seed: 0 };
      await model.beginSequence();
      await model.prefill(prompt, sampling);
      await model.decode(sampling, false);
      const td = performance.now();
      for (let i = 0; i < plan.decodeTokens; i++) await model.decode(sampling, i + 1 < plan.decodeTokens);
      decodeTokPerS = (plan.decodeTokens / (performance.now() - td)) * 1000;
      decodeSteps = plan.decodeTokens;
      decodeTimedBy = 'model';
      await model.beginSequence();
      log(`  greedy output ended early: decode timed on the forward pass: ${decodeTokPerS.toFixed(2)} tok/s over ${decodeSteps} steps`);
    }

    const weights = decodeWeightBytes(file, engine.model.weightBytes);
    const meanPosition = plan.promptTokens + decodeSteps / 2;
    const kv = config.nLayers * meanPosition * 2 * config.nKvHeads * config.headDim * 4; // f32 K and V
    const decodeGbPerS = ((weights + kv) * decodeTokPerS) / 1e9;
    return {
      ...base,
      loadMs,
      promptTokens: prompt.length,
      decodeSteps,
      runs: runs.length,
      ttftMs,
      prefillTokPerS,
      decodeTokPerS,
      prefillOverDecode: decodeTokPerS > 0 ? prefillTokPerS / decodeTokPerS : 0,
      prefillGflopPerS: (prefillFlops(file, config, prompt.length) * prefillTokPerS) / prompt.length / 1e9,
      decodeBytesPerToken: { weights, kv, total: weights + kv },
      decodeGbPerS,
      decodeFractionOfCopy: copyGbPerS > 0 ? decodeGbPerS / copyGbPerS : 0,
      decodeBoundTokPerS: (copyGbPerS * 1e9) / (weights + kv),
      decodeTimedBy,
      runsDetail: runs.map((r) => ({
        ttftMs: r.ttftMs,
        prefillTokPerS: r.prefillTokPerS,
        decodeTokPerS: r.decodeTokPerS,
        generated: r.tokens.length,
        finishReason: r.finishReason,
      })),
    };
  } finally {
    engine.unload();
    await source.close();
  }
}
