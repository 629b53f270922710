// Position-independent chunk cache benchmark (`npm run bench:pic`), on one adapter in one run:
//   1. quality of naive reuse, AttnLink (k in 1..32), CacheBlend and prefix reuse against full
//      prefill on stories260K, on the CPU reference (src/model/cpu-link.ts: hundreds of prompts in
//      minutes), on stories the model wrote itself cut by KVSplit at several chunk sizes, with and
//      without a BOS in front of each chunk; the default k is chosen from these numbers; on the
//      plain cut, each chunk context (lead-in, previous tokens) against none and each KV storage
//      format (f32, f16, int8 records, an emulated f16 pool) against f32, with paired statistics;
//      the first prompt(s) are cross-checked on the GPU;
//   2. time to first token of full prefill, naive reuse and AttnLink with that k, as the number of
//      cached chunks and their length grow, on stories260K and a synthetic model;
// then writes bench/results/pic-<adapter>.json and .md (tables and text charts; pic-<adapter>-quality.*
// with --skip-speed).
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { DEFAULT_CONTEXT_TOKENS } from '../src/engine/doc-layout.ts';
import { GpuContext } from '../src/gpu/context.ts';
import { DEFAULT_BLEND_LAYER, DEFAULT_BLEND_RATIO } from '../src/kv/cacheblend.ts';
import { FileSource } from '../src/gguf/node-file-source.ts';
import { parseGGUF, type GGUFFile } from '../src/gguf/reader.ts';
import { MemorySource, type ByteSource } from '../src/gguf/source.ts';
import { configFromGGUF } from '../src/model/config.ts';
import { GpuModel } from '../src/model/gpu-model.ts';
import { makeSyntheticModel, SYNTHETIC_PRESETS, type SyntheticSpec } from '../src/model/synthetic.ts';
import { acquireNodeDevice } from '../src/node/gpu.ts';
import { fsShaderSources } from '../src/node/shaders-fs.ts';
import { createTokenizer } from '../src/tokenizer/index.ts';
import { projectRoot } from './models.ts';
import { renderMarkdown, renderQualityTable, renderSpeedTable } from './pic-report.ts';
import { runQuality, type QualityPlan, type QualityResult } from './pic-quality.ts';
import { runSpeed, type SpeedPlan, type SpeedRow, type SpeedSkip } from './pic-speed.ts';

const USAGE = `usage: npm run bench:pic -- [--quick] [--json] [--out DIR] [--k N] [--quality-seconds S] [--quality-prompts N] [--min-prompts N] [--skip-speed]
  --quick              a dozen quality prompts and small speed grids: a smoke run (writes pic-<adapter>-quick.*)
  --json               print the JSON report on stdout (progress goes to stderr)
  --out DIR            write pic-<adapter>.json/.md into DIR instead of bench/results
  --k N                AttnLink k for the speed runs instead of the one chosen from the quality data
  --quality-seconds S  stop starting new quality prompts after S seconds
  --quality-prompts N  at most N quality prompts per chunk size
  --min-prompts N      run at least N quality prompts whatever the time budget (default 60; 4 with --quick)
  --skip-speed         quality only: no time-to-first-token runs (writes pic-<adapter>-quality.*, so a full report is kept)`;

interface Args {
  quick: boolean;
  json: boolean;
  out?: string;
  k?: number;
  qualitySeconds?: number;
  qualityPrompts?: number;
  minPrompts?: number;
  skipSpeed: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, json: false, skipSpeed: false };
  const num = (a: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < 0) {
      console.error(`${a} needs a non-negative number\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') args.quick = true;
    else if (a === '--json') args.json = true;
    else if (a === '--out') args.out = argv[++i];
    else if (a === '--k') args.k = Math.floor(num(a, argv[++i]));
    else if (a === '--quality-seconds') args.qualitySeconds = num(a, argv[++i]);
    else if (a === '--quality-prompts') args.qualityPrompts = Math.max(1, Math.floor(num(a, argv[++i])));
    else if (a === '--min-prompts') args.minPrompts = Math.floor(num(a, argv[++i]));
    else if (a === '--skip-speed') args.skipSpeed = true;
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else {
      console.error(`unknown argument '${a}'\n${USAGE}`);
      process.exit(2);
    }
  }
  if (args.out === undefined && argv.includes('--out')) {
    console.error(`--out needs a directory\n${USAGE}`);
    process.exit(2);
  }
  return args;
}

function slug(info: GPUAdapterInfo | undefined, fallback: string): string {
  const words = info ? [info.vendor, info.architecture, info.description].join(' ') : fallback;
  const seen = new Set<string>();
  const parts = words
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length > 0 && !seen.has(w) && seen.add(w));
  return parts.join('-').slice(0, 60).replace(/-+$/, '') || 'unknown-adapter';
}

const KS = [1, 2, 4, 8, 16, 32];

/**
 * Sizes per adapter. SwiftShader runs every kernel on the CPU (here shared with other work), where
 * a 1-token step of stories260K takes a large fraction of a second: the quality set is cut by a
 * time budget and the speed grid stops at 512-token prompts.
 */
function plans(isSwiftShader: boolean, quick: boolean): { quality: QualityPlan; speed: SpeedPlan; syntheticSpec: SyntheticSpec | undefined; syntheticSpeed: SpeedPlan } {
  // Quality runs on the CPU reference whatever the adapter. Sized for <= 20 min on 2 idle cores
  // before the context and storage rows: a prompt of ~250 tokens took ~10 s over the three sizes and
  // both cuts; those rows add about half again (~35 links more per prompt). ~100 prompts at every
  // size, then target 64 alone until the budget; 60 whatever the time (--quality-prompts lowers it).
  const quality: QualityPlan = {
    documents: quick ? 60 : 300,
    minDocTokens: 40,
    maxDocTokens: 120,
    minDocsPerPrompt: 2,
    maxDocsPerPrompt: 6,
    questionTokens: 8,
    continuation: 32,
    maxContext: 512,
    chunkSizes: quick
      ? [{ target: 32, prompts: 6 }, { target: 64, prompts: 12 }, { target: 128, prompts: 6 }]
      : [{ target: 32, prompts: 120 }, { target: 64, prompts: 200 }, { target: 128, prompts: 120 }],
    minPrompts: quick ? 4 : 60,
    budgetS: quick ? 100 : 1080,
    ks: KS,
    blendRatios: [0.05, 0.15, 0.3],
    blendLayer: DEFAULT_BLEND_LAYER,
    gpuChecks: 1,
    crossCutPrompts: quick ? 6 : 60,
    // The engine's context modes (src/engine/doc-layout.ts) with its 8 tokens, against 'none'.
    contexts: { modes: ['lead-in', 'previous'], tokens: DEFAULT_CONTEXT_TOKENS, ks: [1, 4] },
    storage: { formats: ['f32', 'f16', 'int8'], ks: [1], f16Pool: true },
    seed: 1,
  };
  const speed: SpeedPlan = {
    chunkCounts: [1, 2, 4, 8],
    chunkLengths: quick ? [64, 128] : [64, 128, 256],
    maxPromptTokens: isSwiftShader ? (quick ? 160 : 300) : 2100,
    questionTokens: 8,
    repeats: isSwiftShader ? 1 : 5,
    k: 0,
    ratio: DEFAULT_BLEND_RATIO,
  };
  // The synthetic model has random weights (only its speed matters). On a GPU: Qwen2.5-0.5B's
  // shape (24 layers, Q4_0), chunks of 64-256 tokens up to 16 of them (prompts up to 4K tokens). On
  // SwiftShader a real shape would take hours per prompt: 6 layers of the tiny GQA-4 shape (so
  // cacheblend's 2-layer probe is a third of the model, not all of it), 256-token chunks only, up
  // to 8 of them (2057 tokens).
  const preset = SYNTHETIC_PRESETS['tiny-gqa4-h64'];
  const syntheticSpec: SyntheticSpec | undefined = quick && isSwiftShader
    ? undefined
    : isSwiftShader
      ? { ...preset, nLayers: 6, name: 'tiny-gqa4-h64 ×6 layers' }
      : { ...SYNTHETIC_PRESETS['qwen2.5-0.5b'], contextLength: 4224, name: 'qwen2.5-0.5b shape, Q4_0' };
  const syntheticSpeed: SpeedPlan = isSwiftShader
    ? { ...speed, chunkCounts: [1, 2, 8], chunkLengths: [256], maxPromptTokens: 2100 }
    : { ...speed, chunkCounts: quick ? [1, 4] : [1, 2, 4, 8, 16], chunkLengths: quick ? [256] : [64, 128, 256], maxPromptTokens: 4200 };
  return { quality, speed, syntheticSpec, syntheticSpeed };
}

async function loadModel(ctx: GpuContext, source: ByteSource, maxContext: number, kvBudgetTokens: number): Promise<{ model: GpuModel; file: GGUFFile }> {
  const file = await parseGGUF(source);
  const model = await GpuModel.load(ctx, source, file, configFromGGUF(file), { maxContext, maxBatch: 256, kvBudgetTokens });
  return { model, file };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;
  const log = (s: string) => (args.json ? console.error(s) : console.log(s));

  const node = await acquireNodeDevice();
  const info = (node.device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  const ctx = new GpuContext(node.device, node.features, fsShaderSources(), { arenaSlots: 1024 });
  const { quality: qPlan, speed: sPlan, syntheticSpec, syntheticSpeed } = plans(node.isSwiftShader, args.quick);
  if (args.qualitySeconds !== undefined) qPlan.budgetS = args.qualitySeconds;
  if (args.minPrompts !== undefined) qPlan.minPrompts = args.minPrompts;
  const cap = args.qualityPrompts;
  if (cap !== undefined) qPlan.chunkSizes = qPlan.chunkSizes.map((s) => ({ ...s, prompts: Math.min(s.prompts, cap) }));
  const name = `pic-${slug(info, node.adapterInfo)}${args.quick ? '-quick' : ''}${args.skipSpeed ? '-quality' : ''}`;
  const outDir = resolve(args.out ?? join(projectRoot, 'bench/results'));
  const note = node.isSwiftShader
    ? 'SwiftShader is a CPU implementation of Vulkan: every time here is CPU time on this machine (2 cores shared with other work), not GPU time. ' +
      'Ratios compare methods within this run; absolute times say nothing about a GPU.'
    : undefined;
  log(`chunklm position-independent chunk cache bench — ${node.adapterInfo}${args.quick ? ' (quick)' : ''}`);
  if (note) log(`NOTE: ${note}`);

  const storiesPath = resolve(projectRoot, '../shared/models/stories260K.gguf');
  let quality: QualityResult | undefined;
  let chosenK: number | undefined;
  let kSource: string;
  const speedRows: SpeedRow[] = [];
  const speedSkips: SpeedSkip[] = [];
  if (!existsSync(storiesPath)) {
    log(`stories260K is absent (${storiesPath}): quality and its speed runs skipped`);
    kSource = 'stories260K absent; fallback';
  } else {
    log(`\n[1] quality on stories260K, on the CPU reference (${elapsed()})`);
    const source = await FileSource.open(storiesPath);
    // The GPU model only serves the cross-check: one prompt's chunks, its sequence and a probe.
    const { model, file } = await loadModel(ctx, source, qPlan.maxContext, 4 * qPlan.maxContext);
    const tok = createTokenizer(file.metadata);
    quality = await runQuality(source, file, tok, qPlan, (s) => log(`  ${s}`), qPlan.gpuChecks > 0 ? model : undefined);
    model.destroy();
    log('');
    for (const line of renderQualityTable(quality)) log(line);
    chosenK = quality.defaultK.k;
    kSource = `chosen from the quality data: ${quality.defaultK.source}`;

    sPlan.k = args.k ?? chosenK;
    if (args.k !== undefined) kSource = '--k';
    if (!args.skipSpeed) {
      log(`\n[2] time to first token on stories260K, attnlink k=${sPlan.k} (${kSource}; ${elapsed()})`);
      const speedModel = await loadModel(ctx, source, Math.min(2048, sPlan.maxPromptTokens + 16), speedKvBudget(sPlan));
      const r = await runSpeed(speedModel.model, 'stories260K', tok.bosId, sPlan, (s) => log(`  ${s}`));
      speedRows.push(...r.rows);
      speedSkips.push(...r.skipped);
      speedModel.model.destroy();
    }
  }
  if (quality === undefined) sPlan.k = args.k ?? KS[KS.length - 1];
  if (args.skipSpeed) {
    log('\n[2], [3] time to first token skipped (--skip-speed)');
  } else if (syntheticSpec) {
    log(`\n[3] time to first token on synthetic ${syntheticSpec.name} (${elapsed()})`);
    const bytes = makeSyntheticModel(syntheticSpec);
    syntheticSpeed.k = sPlan.k;
    const m = await loadModel(ctx, new MemorySource(bytes, syntheticSpec.name), syntheticSpeed.maxPromptTokens + 16, speedKvBudget(syntheticSpeed));
    const r = await runSpeed(m.model, `synthetic ${syntheticSpec.name}`, 1, syntheticSpeed, (s) => log(`  ${s}`));
    speedRows.push(...r.rows);
    speedSkips.push(...r.skipped);
    m.model.destroy();
  } else {
    log('\n[3] synthetic model skipped (--quick on SwiftShader)');
  }
  if (!args.skipSpeed) {
    log('');
    for (const line of renderSpeedTable(speedRows)) log(line);
  }

  const report = {
    schema: 1,
    date: new Date().toISOString(),
    quick: args.quick,
    adapter: { description: node.adapterInfo, vendor: info?.vendor, architecture: info?.architecture, isSwiftShader: node.isSwiftShader, features: node.features },
    note,
    host: { node: process.version, platform: `${process.platform}-${process.arch}` },
    defaultK: { k: sPlan.k, source: kSource, rule: quality?.rule, perScope: quality?.chosenK, betterVariant: quality?.betterVariant, chunkCut: quality?.defaultK.variant },
    quality,
    speed: { plan: sPlan, synthetic: syntheticSpec ? { ...syntheticSpec, vocab: undefined } : undefined, rows: speedRows, skipped: speedSkips },
    seconds: (performance.now() - started) / 1000,
  };
  mkdirSync(outDir, { recursive: true });
  const jsonPath = join(outDir, `${name}.json`);
  const mdPath = join(outDir, `${name}.md`);
  writeFileSync(`${jsonPath}.tmp`, JSON.stringify(report, (_, v) => (v === Infinity ? 'Infinity' : v), 2) + '\n');
  renameSync(`${jsonPath}.tmp`, jsonPath);
  writeFileSync(mdPath, renderMarkdown(report));
  log(`\ndefault k = ${sPlan.k} (${kSource}); total ${elapsed()}`);
  log(`wrote ${relative(process.cwd(), jsonPath)} and ${relative(process.cwd(), mdPath)}`);
  if (args.json) console.log(JSON.stringify(report, (_, v) => (v === Infinity ? 'Infinity' : v), 2));
  node.device.destroy();
}

/**
 * Pool tokens for the largest count of chunks of each length, page-rounded, plus a sequence and
 * the two prompts runSpeed holds for the prefix methods (each up to a page longer when rounded).
 */
function speedKvBudget(p: SpeedPlan): number {
  let most = 0;
  for (const len of p.chunkLengths) {
    const n = Math.max(0, ...p.chunkCounts.filter((c) => 1 + c * len + p.questionTokens <= p.maxPromptTokens));
    most = Math.max(most, n * Math.ceil(len / 16) * 16);
  }
  return most + 3 * (p.maxPromptTokens + 16) + 256;
}

try {
  await main();
} catch (err) {
  const e = err as Error & { code?: string };
  console.error(`bench:pic failed: ${e.name}${e.code ? ` (${e.code})` : ''}: ${e.message}`);
  process.exit(1);
}
