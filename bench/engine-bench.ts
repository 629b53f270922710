// chunklm engine benchmark (`npm run bench`): on one adapter, in one run,
//   1. the copy kernel's bandwidth, the baseline,
//   2. every kernel family's throughput as a fraction of it (decode matvec and prefill matmul
//      per weight type, decode attention, rmsnorm, embedding),
//   3. whole models through the Engine: load time, prefill and decode tok/s, decode bandwidth,
// then the targets (decode matvec ≥ 60% of copy, prefill ≥ 10× decode tok/s) as pass/short.
// Writes bench/results/engine-<adapter>.json and prints a table. See bench/README.md.
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { GpuContext } from '../src/gpu/context.ts';
import { GGMLType, ggmlTypeName } from '../src/gguf/quant.ts';
import { acquireNodeDevice } from '../src/node/gpu.ts';
import { fsShaderSources } from '../src/node/shaders-fs.ts';
import { checkResult, fmt, fmtPercent, KernelBench, line, type KernelResult, type KernelSizes } from './kernels.ts';
import { benchModel, projectRoot, syntheticModelPath, type ModelResult, type ModelRunPlan } from './models.ts';
import { KernelTimer, type TimingBudget } from './timing.ts';

const USAGE = `usage: npm run bench -- [--quick] [--skip-models] [--out FILE]
  --quick        small sizes and few repetitions: a smoke run (writes engine-<adapter>-quick.json)
  --skip-models  kernels only, no end-to-end models
  --out FILE     write the JSON here instead of bench/results/engine-<adapter>.json`;

interface Args {
  quick: boolean;
  skipModels: boolean;
  out?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, skipModels: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') args.quick = true;
    else if (a === '--skip-models') args.skipModels = true;
    else if (a === '--out' && i + 1 < argv.length) args.out = argv[++i];
    else if (a.startsWith('--out=')) args.out = a.slice('--out='.length);
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else {
      console.error(`unknown argument '${a}'\n${USAGE}`);
      process.exit(2);
    }
  }
  return args;
}

const MIB = 1 << 20;
/** Qwen2.5-0.5B's MLP matrices, rows (out) × cols (in), and its attention heads. */
const QWEN_FFN = { dim: 896, ffn: 4864 };
const QWEN_ATTENTION = { nHeads: 14, nKvHeads: 2, headDim: 64 };

interface Profile {
  sizes: KernelSizes;
  budget: TimingBudget;
  models: { stories: ModelRunPlan; q4: ModelRunPlan; q8: ModelRunPlan; q4km: ModelRunPlan };
}

/**
 * Sizes per adapter. A GPU gets the real shapes (prefill of 512 tokens, KV up to 4K) and data
 * beyond any cache. SwiftShader runs every invocation on the CPU, where a 4864×896 Q4_0 matvec
 * takes a sizeable fraction of a second and matmuls run near 0.1 GFLOP/s: it gets a quarter of
 * the MLP width, small batches and few repetitions, and the 0.5B model only a short prompt
 * (a 512-token prefill of it would take most of an hour there).
 */
function profile(isSwiftShader: boolean, quick: boolean): Profile {
  const ffn = (scale: number) => {
    const f = Math.round(QWEN_FFN.ffn / scale / 32) * 32;
    return [
      { name: 'ffn_up', rows: f, cols: QWEN_FFN.dim, gateUp: true },
      { name: 'ffn_down', rows: QWEN_FFN.dim, cols: f },
    ];
  };
  const common = { attention: QWEN_ATTENTION, normCols: QWEN_FFN.dim };
  if (!isSwiftShader) {
    const full: ModelRunPlan = { promptTokens: 512, decodeTokens: quick ? 16 : 64, runs: quick ? 1 : 3, warmup: { promptTokens: 512, decodeTokens: 4 } };
    return {
      sizes: {
        ...common,
        maxCopies: 64,
        copyBytes: (quick ? 64 : 256) * MIB,
        rotationBytes: (quick ? 64 : 256) * MIB,
        matrices: ffn(1),
        prefillTokens: 512,
        kvLengths: quick ? [1024] : [1024, 4096],
        embeddingTokens: 8192,
        normRows: Math.floor(((quick ? 64 : 256) * MIB) / (2 * QWEN_FFN.dim * 4)),
      },
      budget: quick ? { targetTrialMs: 20, trials: 3, maxReps: 1000 } : { targetTrialMs: 50, trials: 7, maxReps: 4000 },
      models: { stories: full, q4: full, q8: full, q4km: full },
    };
  }
  const slow = 'skipped on SwiftShader to keep the run within minutes; the Q4_0 model stands for the 0.5B shape there';
  return {
    sizes: {
      ...common,
      maxCopies: quick ? 2 : 4,
      copyBytes: (quick ? 8 : 32) * MIB,
      rotationBytes: (quick ? 4 : 16) * MIB,
      matrices: ffn(quick ? 8 : 4),
      prefillTokens: quick ? 16 : 32,
      kvLengths: quick ? [256] : [1024],
      embeddingTokens: quick ? 256 : 1024,
      normRows: quick ? 64 : 256,
    },
    budget: quick ? { targetTrialMs: 20, trials: 1, maxReps: 10 } : { targetTrialMs: 150, trials: 3, maxReps: 50 },
    models: {
      stories: quick
        ? { promptTokens: 128, decodeTokens: 8, runs: 1, warmup: { promptTokens: 8, decodeTokens: 1 } }
        : { promptTokens: 512, decodeTokens: 32, runs: 1, warmup: { promptTokens: 16, decodeTokens: 2 } },
      // 16 tokens fill one matmul tile (fewer cost as much); there they take minutes, a decode step half of one.
      q4: quick ? { promptTokens: 1, decodeTokens: 1, runs: 1 } : { promptTokens: 16, decodeTokens: 2, runs: 1 },
      q8: { promptTokens: 16, decodeTokens: 2, runs: 1, skip: slow },
      // The mix a downloaded Qwen2.5-0.5B "Q4_K_M" file has (mostly Q5_0 and Q8_0, K-quants in
      // ffn_down): its load time is the row asked for; one token each way keeps it short here.
      q4km: { promptTokens: 1, decodeTokens: 1, runs: 1 },
    },
  };
}

interface Target {
  name: string;
  /** What is compared, in words. */
  measure: string;
  goal: number;
  value: number;
  pass: boolean;
}

function slug(info: GPUAdapterInfo | undefined, fallback: string): string {
  const words = info ? [info.vendor, info.architecture, info.description].join(' ') : fallback;
  const seen = new Set<string>();
  // Version numbers and filler words make long, unstable names; the rest names the adapter.
  const parts = words
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => /[a-z]/.test(w) && w !== 'driver' && !seen.has(w) && seen.add(w));
  return parts.join('-').slice(0, 60).replace(/-+$/, '') || 'unknown-adapter';
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;
  const log = (s: string) => console.log(s);

  const node = await acquireNodeDevice();
  const info = (node.device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  const shaders = fsShaderSources();
  const prof = profile(node.isSwiftShader, args.quick);
  const outPath = resolve(args.out ?? join(projectRoot, 'bench/results', `engine-${slug(info, node.adapterInfo)}${args.quick ? '-quick' : ''}.json`));
  const note = node.isSwiftShader
    ? 'SwiftShader is a CPU implementation of Vulkan: every number here is CPU time on this machine, not GPU time. ' +
      'Sizes and repetitions are reduced; fractions of copy bandwidth compare kernels with each other on this CPU and say little about a GPU.'
    : undefined;

  log(`chunklm engine bench — ${node.adapterInfo}${args.quick ? ' (quick)' : ''}`);
  log(`features: subgroups ${node.features.subgroups}, shader-f16 ${node.features.shaderF16}, timestamp-query ${node.features.timestampQuery}`);
  if (note) log(`NOTE: ${note}`);

  // Kernels run on their own context (own uniform arena), on the same device as the models.
  const ctx = new GpuContext(node.device, node.features, shaders);
  const timer = new KernelTimer(ctx, prof.budget);
  const kb = new KernelBench(ctx, timer, prof.sizes, (s) => log(`  ${s}`));

  log(`\n[1] copy kernel (${elapsed()})`);
  const copy = await kb.copy();
  checkResult(copy);
  log(`  ${line(copy)}`);
  const copyGbPerS = copy.gbPerS;
  if (copy.gpuMs !== undefined) log(`  timestamp queries: ${fmt(copy.bytes / (copy.gpuMs * 1e6))} GB/s (GPU time of the pass)`);

  log(`\n[2] kernels as a fraction of copy bandwidth (rows × cols; ${elapsed()})`);
  const kernels: KernelResult[] = [];
  kernels.push(...(await kb.matrices(copyGbPerS)));
  kernels.push(...(await kb.attention(copyGbPerS)));
  kernels.push(...(await kb.rmsnormAndEmbedding(copyGbPerS)));
  for (const k of kernels) checkResult(k);

  const models: ModelResult[] = [];
  if (!args.skipModels) {
    log(`\n[3] models through the Engine (${elapsed()})`);
    const setup = { device: node.device, shaders, features: node.features, adapterInfo: node.adapterInfo };
    const storiesPath = resolve(projectRoot, '../shared/models/stories260K.gguf');
    if (existsSync(storiesPath)) {
      log(`  stories260K`);
      models.push(await benchModel(setup, 'stories260K', storiesPath, prof.models.stories, copyGbPerS, (s) => log(`  ${s}`)));
    } else {
      const skipped = `${storiesPath} is absent (the shared test data beside the project root)`;
      log(`  stories260K skipped: ${skipped}`);
      models.push({ name: 'stories260K', file: relative(projectRoot, storiesPath), skipped });
    }
    for (const [type, plan, recipe] of [
      [GGMLType.Q4_0, prof.models.q4, undefined],
      [GGMLType.Q8_0, prof.models.q8, undefined],
      [GGMLType.Q4_K, prof.models.q4km, 'Q4_K_M'],
    ] as const) {
      const name = `synthetic qwen2.5-0.5b ${recipe ?? ggmlTypeName(type)}`;
      if (plan.skip) {
        log(`  ${name} skipped: ${plan.skip}`);
        models.push({ name, file: '', skipped: plan.skip });
        continue;
      }
      log(`  ${name} (${elapsed()})`);
      const { path, synthesizeS } = syntheticModelPath('qwen2.5-0.5b', type, (s) => log(`  ${s}`), recipe);
      const r = await benchModel(setup, name, path, plan, copyGbPerS, (s) => log(`  ${s}`));
      models.push(synthesizeS !== undefined ? { ...r, synthesizeS } : r);
    }
  }

  // Targets.
  const targets: Target[] = [];
  for (const k of kernels.filter((k) => k.family === 'matvec' || k.family === 'gate-up')) {
    const measure = `${k.name} ${k.weightType} ${k.shape}: ${fmt(k.gbPerS)} GB/s over copy ${fmt(copyGbPerS)} GB/s`;
    targets.push({ name: `decode ${k.family} ≥ 60% of copy`, measure, goal: 0.6, value: k.fractionOfCopy, pass: k.fractionOfCopy >= 0.6 });
  }
  for (const m of models) {
    if (m.skipped || m.prefillOverDecode === undefined) continue;
    const measure = `${m.name}: prefill ${fmt(m.prefillTokPerS!)} tok/s over decode ${fmt(m.decodeTokPerS!)} tok/s`;
    targets.push({ name: `prefill(${m.promptTokens}) ≥ 10× decode tok/s`, measure, goal: 10, value: m.prefillOverDecode, pass: m.prefillOverDecode >= 10 });
  }

  printSummary(copyGbPerS, kernels, models, targets, log);
  const seconds = (performance.now() - started) / 1000;
  log(`\ntotal ${seconds.toFixed(0)} s`);

  const report = {
    schema: 1,
    date: new Date().toISOString(),
    quick: args.quick,
    adapter: {
      description: node.adapterInfo,
      vendor: info?.vendor,
      architecture: info?.architecture,
      device: info?.device,
      isFallbackAdapter: (info as (GPUAdapterInfo & { isFallbackAdapter?: boolean }) | undefined)?.isFallbackAdapter,
      isSwiftShader: node.isSwiftShader,
      features: node.features,
      limits: {
        maxStorageBufferBindingSize: node.device.limits.maxStorageBufferBindingSize,
        maxComputeWorkgroupStorageSize: node.device.limits.maxComputeWorkgroupStorageSize,
      },
    },
    note,
    host: { node: process.version, platform: `${process.platform}-${process.arch}` },
    settings: { sizes: prof.sizes, timing: prof.budget, models: prof.models },
    copy,
    kernels,
    models,
    targets,
    seconds,
  };
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(`${outPath}.tmp`, JSON.stringify(report, null, 2) + '\n');
  renameSync(`${outPath}.tmp`, outPath);
  log(`wrote ${relative(process.cwd(), outPath)}`);
  node.device.destroy();
}

function printSummary(copyGbPerS: number, kernels: KernelResult[], models: ModelResult[], targets: Target[], log: (s: string) => void): void {
  log(`\n== summary: copy ${fmt(copyGbPerS)} GB/s ==`);
  log('decode matvec, fraction of copy bandwidth:');
  const byType = groupBy(
    kernels.filter((k) => k.family === 'matvec' || k.family === 'gate-up'),
    (k) => k.weightType!,
  );
  for (const [type, ks] of byType) log(`  ${type.padEnd(5)} ${ks.map((k) => `${k.name} ${fmtPercent(k.fractionOfCopy)}`).join(', ')}`);
  const mm = kernels.filter((k) => k.family === 'matmul');
  if (mm.length > 0) {
    log(`prefill matmul (${mm[0].shape.replace(/^.*, /, '')}), GFLOP/s:`);
    for (const [type, ks] of groupBy(mm, (k) => k.weightType!)) {
      log(`  ${type.padEnd(5)} ${ks.map((k) => `${k.name.replace('matmul ', '')} ${fmt(k.gflopPerS!)} (weights ${fmt(k.weightGbPerS!)} GB/s)`).join(', ')}`);
    }
  }
  for (const k of kernels.filter((k) => k.family === 'attention' || k.family === 'rmsnorm' || k.family === 'embedding')) {
    log(`${k.name}${k.weightType ? ` ${k.weightType}` : ''} ${k.shape}: ${fmt(k.gbPerS)} GB/s, ${fmtPercent(k.fractionOfCopy)} of copy`);
  }
  if (models.length > 0) {
    log('\nmodel                          load s  prompt  prefill tok/s  decode tok/s  ratio  decode GB/s  of copy  bound tok/s');
    for (const m of models) {
      if (m.skipped) {
        log(`${m.name.padEnd(30)} skipped: ${m.skipped}`);
        continue;
      }
      log(
        [
          m.name.padEnd(30),
          fmt(m.loadMs! / 1000).padStart(6),
          String(m.promptTokens).padStart(7),
          fmt(m.prefillTokPerS!).padStart(14),
          fmt(m.decodeTokPerS!).padStart(13),
          fmt(m.prefillOverDecode!).padStart(6),
          fmt(m.decodeGbPerS!).padStart(12),
          fmtPercent(m.decodeFractionOfCopy!).padStart(8),
          fmt(m.decodeBoundTokPerS!).padStart(12),
        ].join(' '),
      );
    }
    log('(ratio: prefill over decode tok/s; bound: decode tok/s if every token read its bytes at copy bandwidth)');
  }
  log('\ntargets:');
  for (const t of targets) {
    const value = t.goal < 1 ? fmtPercent(t.value) : `${fmt(t.value)}×`;
    log(`  ${t.pass ? 'PASS ' : 'SHORT'} ${t.name}: ${value} — ${t.measure}`);
  }
  const short = targets.filter((t) => !t.pass);
  if (short.length > 0) log(`${short.length} of ${targets.length} targets fall short.`);
  else if (targets.length > 0) log(`all ${targets.length} targets pass.`);
}

function groupBy<T>(xs: readonly T[], key: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of xs) m.set(key(x), [...(m.get(key(x)) ?? []), x]);
  return m;
}

try {
  await main();
} catch (err) {
  const e = err as Error & { code?: string };
  console.error(`bench failed: ${e.name}${e.code ? ` (${e.code})` : ''}: ${e.message}`);
  process.exit(1);
}
