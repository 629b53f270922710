// Quality of position-independent chunk reuse on stories260K, against full prefill, computed on the
// CPU oracle (src/model/cpu-reference.ts, f64 sums) with the CPU reference of chunk linking
// (src/model/cpu-link.ts): the same math as GpuModel.prefillLinked, about 100× faster than the GPU
// path on SwiftShader for this 260K-parameter model, so hundreds of prompts fit in minutes.
//
// The evaluation set is made here: short stories sampled from the model itself (fixed seeds) are
// the documents; a prompt links 2-6 of them in a seeded random order and ends with the first tokens
// of one more story (the "question"). Each document is cut into chunks by KVSplit (kv/chunker.ts)
// at several target sizes, and each chunk's KV is computed alone from position 0, once, and reused
// by every method and prompt that links it. Per prompt, chunk size and chunk cut, the reference is
// the full forward pass over that exact token sequence followed by its greedy continuation; every
// method then links the chunks, runs the question and is teacher-forced on that continuation. A
// greedy free-running decode equals the reference's exactly as long as each step's argmax (given
// the reference's tokens so far) is the reference's token, so the teacher-forced argmaxes give the
// exact-match rate and the matched length without a second decode.
//
// An optional GPU cross-check runs the first prompt(s) through GpuModel.prefillLinked on the same
// chunks and compares the logits after the question with this CPU evaluation's.
import type { GGUFFile } from '../src/gguf/reader.ts';
import type { ByteSource } from '../src/gguf/source.ts';
import { sampleRef } from '../src/gpu/ref/sample.ts';
import { selectByDeviation } from '../src/kv/cacheblend.ts';
import { splitDocument } from '../src/kv/chunker.ts';
import { attnlinkIndices, cpuBlendDeviationFromSequence, cpuComputeChunk, cpuPrefillLinked, type CpuChunkKV } from '../src/model/cpu-link.ts';
import { CpuModel, greedy } from '../src/model/cpu-reference.ts';
import type { ChunkKV, GpuModel } from '../src/model/gpu-model.ts';
import type { Tokenizer } from '../src/tokenizer/index.ts';

export const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0 };

/** How chunks are cut: the chunk alone, or the chunk after its own BOS (as EPIC prefills chunks). */
export type ChunkVariant = 'plain' | 'bos';
export const VARIANTS: readonly ChunkVariant[] = ['plain', 'bos'];

export type MethodKind = 'full' | 'prefix' | 'naive' | 'attnlink' | 'cacheblend';

export interface ChunkSizePlan {
  /** KVSplit targetTokens. */
  target: number;
  /** Prompts run at this size (the first ones of the shared prompt list). */
  prompts: number;
}

export interface QualityPlan {
  documents: number;
  /** Generated stories shorter than this (EOS early) are drawn again with another seed. */
  minDocTokens: number;
  /** Each story is drawn up to a seeded length in minDocTokens..maxDocTokens, then cut back to its last sentence end when that keeps minDocTokens. */
  maxDocTokens: number;
  minDocsPerPrompt: number;
  maxDocsPerPrompt: number;
  questionTokens: number;
  /** Greedy continuation of the reference, teacher-forced into every method. */
  continuation: number;
  /** Prompt plus continuation stay within this many positions (stories260K was trained on 512). */
  maxContext: number;
  chunkSizes: readonly ChunkSizePlan[];
  /** Every size runs at least this many prompts (or its cap), whatever the time. */
  minPrompts: number;
  /** No new prompt starts once this much wall time has gone. */
  budgetS: number;
  ks: readonly number[];
  blendRatios: readonly number[];
  blendLayer: number;
  /** Prompts cross-checked on the GPU (0: none). */
  gpuChecks: number;
  /**
   * Prompts (the first ones, at the main size) on which the bos cut's methods are also scored
   * against the plain cut's full prefill: the prompt a user would otherwise run.
   */
  crossCutPrompts: number;
  seed: number;
}

export interface Document {
  opening: string;
  seed: number;
  /** encode(text) without BOS. */
  tokens: number[];
  text: string;
}

/** One prompt's numbers for one method. */
interface Sample {
  /** Mean KL(full ‖ method) over the question positions and the continuation positions. */
  kl: number;
  /** KL after the last question token (the first generated token's distribution). */
  klAfterQuestion: number;
  /** Share of those positions whose argmax is the reference's. */
  top1: number;
  /** Mean negative log-likelihood of the reference's greedy continuation. */
  nll: number;
  /** Leading continuation tokens a greedy decode would reproduce. */
  matched: number;
  reused: number;
  recomputed: number;
  computed: number;
  /** cacheblend: chunk tokens run through layers 0..blendLayer to measure the deviation. */
  probed: number;
}

export interface MethodRow {
  /** 'all' pools every size's prompts. */
  size: number | 'all';
  variant: ChunkVariant;
  method: MethodKind;
  /** attnlink k, cacheblend ratio; undefined otherwise. */
  param: number | undefined;
  label: string;
  prompts: number;
  meanKl: number;
  medianKl: number;
  /** Largest per-prompt mean KL. */
  maxKl: number;
  klAfterQuestion: number;
  top1: number;
  /** exp(mean NLL) of the reference's greedy continuation under this method. */
  ppl: number;
  /** Share of prompts whose greedy continuation equals the reference's for all its tokens. */
  exactMatch: number;
  meanMatched: number;
  /** Mean tokens per prompt. */
  reused: number;
  recomputed: number;
  computed: number;
  probed: number;
  /** prefix: mean share of prompt tokens taken from an earlier prompt's cache. */
  reusedShare: number;
}

export interface KChoice {
  /** Smallest k meeting the rule, undefined when none does. */
  k: number | undefined;
  /** k with the largest drop of mean KL from naive per recomputed token. */
  bestPerToken: number | undefined;
  /** That drop, nats per recomputed token per prompt. */
  bestPerTokenGain: number;
}

export interface GpuCheckRow {
  prompt: number;
  size: number;
  variant: ChunkVariant;
  label: string;
  /** KL(CPU ‖ GPU) of the distribution after the question. */
  klCpuGpu: number;
  /** Same argmax on both. */
  top1Equal: boolean;
  /** cacheblend: chunk tokens the GPU recomputed that the CPU did not, or the reverse. */
  selectionDiff?: number;
}

export interface QualityResult {
  plan: QualityPlan;
  documents: { opening: string; seed: number; tokens: number; text: string }[];
  /** Per size: prompts run and their mean tokens per cut. */
  sizes: { target: number; prompts: number; meanTokens: Record<ChunkVariant, number>; meanChunks: number }[];
  prompts: { docs: number[]; question: number }[];
  rows: MethodRow[];
  /** Per scope ('all' and each size) and cut. */
  chosenK: { size: number | 'all'; variant: ChunkVariant; choice: KChoice }[];
  /** The k the speed runs use, from the better cut over all sizes. */
  defaultK: { k: number; variant: ChunkVariant; source: string };
  /** Per scope: the cut with the lower mean KL over every reuse method, and how many methods it wins. */
  betterVariant: { size: number | 'all'; variant: ChunkVariant; wins: number; methods: number }[];
  gpuCheck: GpuCheckRow[];
  /**
   * The bos cut against the plain cut's full prefill (same question, the plain reference's
   * continuation teacher-forced), beside the plain cut's own numbers on the same prompts.
   */
  crossCut: { size: number; prompts: number; rows: { label: string; bos: MethodRow; plain: MethodRow }[] };
  rule: string;
  seconds: number;
  /** Seconds per phase: documents, chunk KV, references, methods, GPU check. */
  timing: Record<string, number>;
}

export const K_RULE = 'smallest k whose mean KL ≤ 1/10 of naive reuse and whose greedy exact-match rate ≥ 90%';

const OPENINGS = [
  'Once upon a time',
  'One day',
  'Lily',
  'Tom and his dog',
  'There was a little',
  'The sun was',
  'Ben wanted',
  'Sue had a',
  'In the park',
  'Max saw a',
  'The cat',
  'Mom said',
];

/** xorshift32 in [0, 1). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/**
 * Stories sampled on the CPU oracle with the GPU sampler's own TS reference (temperature 0.8,
 * top-k 40), from BOS and a short opening, up to a seeded length in min..maxDocTokens, then cut
 * back to the last sentence end when that keeps minDocTokens. A story that ends (EOS) before
 * minDocTokens is drawn again with the next seed.
 */
export function generateDocuments(cpu: CpuModel, tok: Tokenizer, plan: QualityPlan): Document[] {
  const rand = seededRandom(plan.seed * 104729 + 3);
  const docs: Document[] = [];
  for (let i = 0; i < plan.documents; i++) {
    const opening = OPENINGS[i % OPENINGS.length];
    const head = tok.encode(opening, { addBos: false });
    const maxLen = plan.minDocTokens + Math.floor(rand() * (plan.maxDocTokens - plan.minDocTokens + 1));
    let doc: Document | undefined;
    for (let attempt = 0; attempt < 32 && (!doc || doc.tokens.length < plan.minDocTokens); attempt++) {
      const seed = plan.seed * 100000 + i * 32 + attempt;
      cpu.reset();
      let logits = cpu.forward([tok.bosId, ...head]);
      const sampled = [...head];
      for (let step = 0; sampled.length < maxLen; step++) {
        const t = sampleRef(logits, { temperature: 0.8, topK: 40, topP: 1, seed, step });
        if (t === tok.eosId || t === tok.bosId) break;
        sampled.push(t);
        logits = cpu.forward([t]);
      }
      let text = tok.decode(sampled).trim();
      const end = Math.max(text.lastIndexOf('. '), text.lastIndexOf('! '), text.lastIndexOf('? '), text.lastIndexOf('."'));
      if (!/[.!?"]$/.test(text) && end > 0) {
        const cut = text.slice(0, end + (text[end + 1] === '"' ? 2 : 1));
        if (tok.encode(cut, { addBos: false }).length >= plan.minDocTokens) text = cut;
      }
      let tokens = tok.encode(text, { addBos: false });
      if (tokens.length > plan.maxDocTokens) tokens = tokens.slice(0, plan.maxDocTokens);
      doc = { opening, seed, tokens, text: tok.decode(tokens) };
    }
    docs.push(doc!);
  }
  return docs;
}

/** log softmax in f64. */
function logSoftmax(logits: Float32Array): Float64Array {
  let m = -Infinity;
  for (const x of logits) m = Math.max(m, x);
  let s = 0;
  for (const x of logits) s += Math.exp(x - m);
  const lse = m + Math.log(s);
  return Float64Array.from(logits, (x) => x - lse);
}

/** KL(p ‖ q) in nats from two log-probability vectors. */
function klFromLog(lp: Float64Array, lq: Float64Array): number {
  let kl = 0;
  for (let i = 0; i < lp.length; i++) {
    const p = Math.exp(lp[i]);
    if (p > 0) kl += p * (lp[i] - lq[i]);
  }
  return Math.max(0, kl);
}

/** KL(p ‖ q) in nats for two logit vectors. */
export function klDivergence(pLogits: Float32Array, qLogits: Float32Array): number {
  return klFromLog(logSoftmax(pLogits), logSoftmax(qLogits));
}

interface Prompt {
  docs: number[];
  question: number;
}

/** One prompt at one size and cut: what is linked, and the full prefill's answers. */
interface Case {
  prefix: number[];
  chunks: CpuChunkKV[];
  question: number[];
  tokens: number[];
  /** Log-probabilities after each question token, then after each continuation token. */
  refLog: Float64Array[];
  refArg: number[];
  continuation: number[];
  /** cacheblend's deviation of every chunk token (from the reference's own prefill). */
  deviation: Float32Array[];
  /** Mean negative log-likelihood of the continuation under the full prefill itself. */
  nll: number;
}

interface MethodSpec {
  method: MethodKind;
  param: number | undefined;
  label: string;
}

function methodSpecs(plan: QualityPlan): MethodSpec[] {
  return [
    { method: 'full', param: undefined, label: 'full' },
    { method: 'prefix', param: undefined, label: 'prefix (exact)' },
    { method: 'naive', param: undefined, label: 'naive' },
    ...plan.ks.map((k): MethodSpec => ({ method: 'attnlink', param: k, label: `attnlink k=${k}` })),
    ...plan.blendRatios.map((r): MethodSpec => ({ method: 'cacheblend', param: r, label: `cacheblend ${r}` })),
  ];
}

/** Scores a method's logits (after each question token, then each continuation token) against the reference. */
function score(c: Case, logits: readonly Float32Array[], q: number): Pick<Sample, 'kl' | 'klAfterQuestion' | 'top1' | 'nll' | 'matched'> {
  let kl = 0;
  let top1 = 0;
  let nll = 0;
  let matched = -1;
  let klAfterQuestion = 0;
  for (let i = 0; i < logits.length; i++) {
    const lq = logSoftmax(logits[i]);
    const d = klFromLog(c.refLog[i], lq);
    kl += d;
    if (i === q - 1) klAfterQuestion = d;
    const arg = greedy(logits[i]);
    if (arg === c.refArg[i]) top1++;
    const j = i - (q - 1); // continuation token this position predicts
    if (j >= 0 && j < c.continuation.length) {
      nll -= lq[c.continuation[j]];
      if (matched < 0 && arg !== c.continuation[j]) matched = j;
    }
  }
  return {
    kl: kl / logits.length,
    klAfterQuestion,
    top1: top1 / logits.length,
    nll: nll / c.continuation.length,
    matched: matched < 0 ? c.continuation.length : matched,
  };
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export async function runQuality(
  source: ByteSource,
  file: GGUFFile,
  tok: Tokenizer,
  plan: QualityPlan,
  log: (s: string) => void,
  gpu?: GpuModel,
): Promise<QualityResult> {
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  const timing: Record<string, number> = { documents: 0, chunks: 0, references: 0, methods: 0, gpuCheck: 0 };
  const timed = <T>(phase: string, f: () => T): T => {
    const t0 = performance.now();
    try {
      return f();
    } finally {
      timing[phase] += (performance.now() - t0) / 1000;
    }
  };
  const cpu = await CpuModel.load(source, file, plan.maxContext);
  const bos = tok.bosId;
  const docs = timed('documents', () => generateDocuments(cpu, tok, plan));
  const lens = docs.map((d) => d.tokens.length);
  log(`${docs.length} documents generated on the CPU oracle (${Math.min(...lens)}–${Math.max(...lens)} tokens, mean ${mean(lens).toFixed(0)}) in ${seconds().toFixed(1)} s`);

  // KVSplit chunks of each document at each size, and their KV per cut, each computed once.
  const pieces = new Map<string, number[][]>();
  const piecesOf = (d: number, size: number): number[][] => {
    const key = `${size}:${d}`;
    let p = pieces.get(key);
    if (!p) {
      p = splitDocument(docs[d].text, tok, { targetTokens: size }).map((c) => c.tokens);
      pieces.set(key, p);
    }
    return p;
  };
  // Keyed by tokens, so a piece that two sizes cut alike is computed once.
  const kvCache = new Map<string, CpuChunkKV>();
  const chunksOf = (d: number, size: number, v: ChunkVariant): CpuChunkKV[] =>
    piecesOf(d, size).map((piece) => {
      const tokens = v === 'bos' ? [bos, ...piece] : piece;
      const key = tokens.join(',');
      let c = kvCache.get(key);
      if (!c) {
        c = timed('chunks', () => cpuComputeChunk(cpu, tokens));
        kvCache.set(key, c);
      }
      return c;
    });
  // plain: [BOS] c1 c2 ... q; bos: [BOS c1] [BOS c2] ... q (the first chunk's BOS starts the sequence).
  const promptLength = (pr: Prompt, size: number, v: ChunkVariant): number => {
    const pieceTokens = pr.docs.flatMap((d) => piecesOf(d, size)).reduce((s, t) => s + t.length + (v === 'bos' ? 1 : 0), 0);
    return (v === 'plain' ? 1 : 0) + pieceTokens + plan.questionTokens;
  };

  // The prompts, shared by every size: docs drawn without repetition, the last ones dropped while
  // any size and cut would not leave room for the continuation.
  const maxPrompts = Math.max(...plan.chunkSizes.map((s) => s.prompts));
  const rand = seededRandom(plan.seed * 7919 + 17);
  const prompts: Prompt[] = [];
  const room = plan.maxContext - plan.continuation;
  for (let p = 0; p < maxPrompts; p++) {
    let n = plan.minDocsPerPrompt + Math.floor(rand() * (plan.maxDocsPerPrompt - plan.minDocsPerPrompt + 1));
    const order = Array.from({ length: docs.length }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    const question = order[plan.maxDocsPerPrompt];
    const fits = (k: number) => plan.chunkSizes.every((s) => VARIANTS.every((v) => promptLength({ docs: order.slice(0, k), question }, s.target, v) <= room));
    while (n > plan.minDocsPerPrompt && !fits(n)) n--;
    prompts.push({ docs: order.slice(0, n), question });
  }

  const specs = methodSpecs(plan);
  const samples = new Map<string, Sample[]>(); // `${size}:${variant}:${label}`
  const add = (size: number, v: ChunkVariant, label: string, s: Sample) => {
    const key = `${size}:${v}:${label}`;
    const list = samples.get(key) ?? [];
    list.push(s);
    samples.set(key, list);
  };
  const earlier = new Map<string, number[][]>(); // prefix cache: earlier prompts' tokens per size and cut
  const q = plan.questionTokens;
  const ran = new Map<number, number>(plan.chunkSizes.map((s) => [s.target, 0]));
  const tokenSums = new Map<string, number>();
  const chunkSums = new Map<number, number>();
  const gpuCheck: GpuCheckRow[] = [];
  const cross = new Map<string, Sample[]>(); // label -> bos-cut samples scored against the plain reference
  let crossPrompts = 0;

  let perPrompt = 0; // seconds of the last prompt, to stop before the budget rather than after it
  for (let p = 0; p < prompts.length; p++) {
    const sizes = plan.chunkSizes.filter((s) => p < s.prompts);
    const t0 = seconds();
    if (sizes.length === 0) break;
    if (p >= plan.minPrompts && t0 + perPrompt > plan.budgetS) {
      log(`time budget of ${plan.budgetS} s reached after ${p} prompts`);
      break;
    }
    const pr = prompts[p];
    const question = docs[pr.question].tokens.slice(0, q);
    const memo = new Map<string, { c: Case; results: Map<string, Sample> }>(); // this prompt's cases by chunk tokens
    const line: string[] = [];
    for (const { target: size } of sizes) {
      for (const v of VARIANTS) {
        const prefix = v === 'plain' ? [bos] : [];
        const chunks = pr.docs.flatMap((d) => chunksOf(d, size, v));
        // Sizes often cut a prompt the same way (a story shorter than the target is one chunk): same chunks, same numbers.
        const caseKey = `${v}|${chunks.map((ch) => ch.tokens.join(',')).join('|')}`;
        let done = memo.get(caseKey);
        if (!done) {
          done = runCase(cpu, { prefix, chunks, question }, specs, plan, timed);
          memo.set(caseKey, done);
        }
        const { c, results } = done;
        tokenSums.set(`${size}:${v}`, (tokenSums.get(`${size}:${v}`) ?? 0) + c.tokens.length);
        if (v === 'plain') chunkSums.set(size, (chunkSums.get(size) ?? 0) + chunks.length);
        for (const m of specs) {
          if (m.method === 'prefix') {
            // Exact by construction (the same tokens at the same positions): full's numbers, fewer tokens run.
            const before = earlier.get(`${size}:${v}`) ?? [];
            const reused = Math.min(c.tokens.length - 1, Math.max(0, ...before.map((t) => commonPrefix(t, c.tokens))));
            before.push(c.tokens);
            earlier.set(`${size}:${v}`, before);
            add(size, v, m.label, { ...results.get('full')!, reused, computed: c.tokens.length - reused });
          } else add(size, v, m.label, results.get(m.label)!);
        }
        if (gpu && p < plan.gpuChecks && size === mainSize(plan)) {
          gpuCheck.push(...(await timedAsync(timing, 'gpuCheck', () => crossCheck(gpu, cpu, p, size, v, { prefix, chunks, question }, c, plan))));
        }
        if (size === mainSize(plan)) line.push(`${v} ${c.tokens.length} tokens naive KL ${samples.get(`${size}:${v}:naive`)!.at(-1)!.kl.toExponential(2)}`);
      }
      if (size === mainSize(plan) && p < plan.crossCutPrompts) {
        const key = (v: ChunkVariant) => `${v}|${pr.docs.flatMap((d) => chunksOf(d, size, v)).map((ch) => ch.tokens.join(',')).join('|')}`;
        const plainCase = memo.get(key('plain'))!.c;
        const bosCase = memo.get(key('bos'))!.c;
        for (const [label, sample] of timed('crossCut', () => crossCutCase(cpu, plainCase, bosCase, specs, plan))) {
          cross.set(label, [...(cross.get(label) ?? []), sample]);
        }
        crossPrompts = p + 1;
      }
      ran.set(size, p + 1);
    }
    perPrompt = seconds() - t0;
    if (p < 3 || (p + 1) % 10 === 0) log(`prompt ${p + 1}: ${pr.docs.length} docs, ${line.join(', ')}; ${perPrompt.toFixed(1)} s; total ${seconds().toFixed(0)} s`);
  }

  // One row of numbers over a list of samples.
  const summarize = (list: readonly Sample[], v: ChunkVariant, m: MethodSpec, size: number | 'all'): MethodRow => {
    const kls = list.map((x) => x.kl);
    return {
      size,
      variant: v,
      method: m.method,
      param: m.param,
      label: m.label,
      prompts: list.length,
      meanKl: mean(kls),
      medianKl: median(kls),
      maxKl: Math.max(...kls),
      klAfterQuestion: mean(list.map((x) => x.klAfterQuestion)),
      top1: mean(list.map((x) => x.top1)),
      ppl: Math.exp(mean(list.map((x) => x.nll))),
      exactMatch: mean(list.map((x) => (x.matched === plan.continuation ? 1 : 0))),
      meanMatched: mean(list.map((x) => x.matched)),
      reused: mean(list.map((x) => x.reused)),
      recomputed: mean(list.map((x) => x.recomputed)),
      computed: mean(list.map((x) => x.computed)),
      probed: mean(list.map((x) => x.probed)),
      reusedShare: mean(list.map((x) => x.reused / (x.reused + x.recomputed + x.computed))),
    };
  };
  const main = mainSize(plan);
  const crossCut: QualityResult['crossCut'] = {
    size: main,
    prompts: crossPrompts,
    rows: specs
      .filter((m) => cross.has(m.label))
      .map((m) => ({
        label: m.label,
        bos: summarize(cross.get(m.label)!, 'bos', m, main),
        plain: summarize((samples.get(`${main}:plain:${m.label}`) ?? []).slice(0, crossPrompts), 'plain', m, main),
      })),
  };
  // Per scope ('all' pools every size's samples) and cut.
  const scopes: (number | 'all')[] = ['all', ...plan.chunkSizes.map((s) => s.target)];
  const rows: MethodRow[] = [];
  for (const scope of scopes) {
    for (const v of VARIANTS) {
      for (const m of specs) {
        const list = plan.chunkSizes.filter((s) => scope === 'all' || s.target === scope).flatMap((s) => samples.get(`${s.target}:${v}:${m.label}`) ?? []);
        if (list.length === 0) continue;
        rows.push(summarize(list, v, m, scope));
      }
    }
  }

  const chosenK: QualityResult['chosenK'] = [];
  const betterVariant: QualityResult['betterVariant'] = [];
  for (const scope of scopes) {
    for (const v of VARIANTS) chosenK.push({ size: scope, variant: v, choice: chooseK(rows.filter((r) => r.size === scope && r.variant === v)) });
    const reuse = (v: ChunkVariant) => rows.filter((r) => r.size === scope && r.variant === v && (r.method === 'naive' || r.method === 'attnlink' || r.method === 'cacheblend'));
    const [pl, bo] = [reuse('plain'), reuse('bos')];
    const wins = pl.filter((r, i) => bo[i] && bo[i].meanKl < r.meanKl).length;
    const sum = (rs: MethodRow[]) => rs.reduce((s, r) => s + r.meanKl, 0);
    const variant: ChunkVariant = sum(bo) < sum(pl) ? 'bos' : 'plain';
    if (pl.length > 0) betterVariant.push({ size: scope, variant, wins: variant === 'bos' ? wins : pl.length - wins, methods: pl.length });
  }
  // The cut to keep is the one closer to the prompt a user would run without a cache, the plain
  // one: each cut's own full prefill differs (the bos cut's BOS tokens change the model's output).
  const crossReuse = crossCut.rows.filter((r) => r.bos.method === 'naive' || r.bos.method === 'attnlink' || r.bos.method === 'cacheblend');
  const crossSum = (v: ChunkVariant) => crossReuse.reduce((a, r) => a + r[v].meanKl, 0);
  const better: ChunkVariant =
    crossReuse.length > 0 ? (crossSum('bos') < crossSum('plain') ? 'bos' : 'plain') : (betterVariant.find((b) => b.size === 'all')?.variant ?? 'plain');
  const betterSource = crossReuse.length > 0 ? 'against the plain prompt\'s full prefill' : 'each against its own full prefill';
  const overall = chosenK.find((c) => c.size === 'all' && c.variant === better)?.choice;
  const defaultK =
    overall?.k !== undefined
      ? { k: overall.k, variant: better, source: `the rule, on the ${better} cut over all sizes (the better cut ${betterSource})` }
      : overall?.bestPerToken !== undefined
        ? { k: overall.bestPerToken, variant: better, source: `no k meets the rule; the best KL drop per recomputed token on the ${better} cut (the better cut ${betterSource})` }
        : { k: plan.ks[plan.ks.length - 1], variant: better, source: 'no quality data; the largest tested k' };

  return {
    plan,
    documents: docs.map((d) => ({ opening: d.opening, seed: d.seed, tokens: d.tokens.length, text: d.text })),
    sizes: plan.chunkSizes.map((s) => {
      const n = ran.get(s.target) ?? 0;
      return {
        target: s.target,
        prompts: n,
        meanTokens: { plain: (tokenSums.get(`${s.target}:plain`) ?? NaN) / n, bos: (tokenSums.get(`${s.target}:bos`) ?? NaN) / n },
        meanChunks: (chunkSums.get(s.target) ?? NaN) / n,
      };
    }),
    prompts: prompts.slice(0, Math.max(...ran.values())),
    rows,
    chosenK,
    defaultK,
    betterVariant,
    gpuCheck,
    crossCut,
    rule: K_RULE,
    seconds: seconds(),
    timing,
  };
}

/** The size the GPU cross-check and the progress lines use: the one with the most prompts. */
function mainSize(plan: QualityPlan): number {
  return [...plan.chunkSizes].sort((a, b) => b.prompts - a.prompts)[0].target;
}

/** Full prefill of `[prefix] chunks question` and its greedy continuation, teacher-forced. */
function reference(cpu: CpuModel, prefix: number[], chunks: CpuChunkKV[], question: number[], plan: QualityPlan): Case {
  const head = [...prefix, ...chunks.flatMap((c) => c.tokens)];
  cpu.reset();
  cpu.forward(head);
  // Causal: the rows of the chunk positions are those a prefill of [prefix][chunks] alone gives.
  const deviation = cpuBlendDeviationFromSequence(cpu, prefix.length, chunks, plan.blendLayer);
  const logits = cpu.forwardAll(question);
  const continuation: number[] = [];
  while (continuation.length < plan.continuation) {
    const t = greedy(logits[logits.length - 1]);
    continuation.push(t);
    logits.push(cpu.forward([t]));
  }
  const refLog = logits.map(logSoftmax);
  const q = question.length;
  return {
    prefix,
    chunks,
    question,
    tokens: [...head, ...question],
    refLog,
    nll: mean(continuation.map((t, j) => -refLog[q - 1 + j][t])),
    refArg: logits.map(greedy),
    continuation,
    deviation,
  };
}

/**
 * One prompt at one size and cut: the full reference, then every method linked from the same chunk
 * KV and teacher-forced on the reference's continuation. Returns the samples by method label
 * ('prefix' excepted: it depends on the prompts before, not on this computation).
 */
function runCase(
  cpu: CpuModel,
  parts: { prefix: number[]; chunks: CpuChunkKV[]; question: number[] },
  specs: readonly MethodSpec[],
  plan: QualityPlan,
  timed: <T>(phase: string, f: () => T) => T,
): { c: Case; results: Map<string, Sample> } {
  const { prefix, chunks, question } = parts;
  const c = timed('references', () => reference(cpu, prefix, chunks, question, plan));
  const q = question.length;
  const chunkTokens = c.tokens.length - prefix.length - q;
  const results = new Map<string, Sample>();
  results.set('full', { kl: 0, klAfterQuestion: 0, top1: 1, nll: c.nll, matched: plan.continuation, reused: 0, recomputed: 0, computed: c.tokens.length, probed: 0 });
  const bySet = new Map<string, Sample>(); // the same recompute set gives the same numbers
  for (const m of specs) {
    if (m.method === 'full' || m.method === 'prefix') continue;
    const recompute = recomputeSet(m, c);
    const setKey = recompute.map((r) => r.join(',')).join('|');
    let s = bySet.get(setKey);
    if (!s) {
      const logits = timed('methods', () => {
        const out = cpuPrefillLinked(cpu, { prefix, chunks, question, recompute });
        out.push(...cpu.forwardAll(c.continuation));
        return out;
      });
      const recomputed = recompute.reduce((a, r) => a + r.length, 0);
      s = { ...score(c, logits, q), reused: chunkTokens - recomputed, recomputed, computed: prefix.length + q, probed: 0 };
      bySet.set(setKey, s);
    }
    results.set(m.label, m.method === 'cacheblend' ? { ...s, probed: chunkTokens } : s);
  }
  return { c, results };
}

/** The chunk tokens a reuse method recomputes on a case (naive, attnlink k or cacheblend r). */
function recomputeSet(m: MethodSpec, c: Case): number[][] {
  if (m.method === 'naive') return attnlinkIndices(c.chunks, 0);
  if (m.method === 'attnlink') return attnlinkIndices(c.chunks, m.param!);
  return selectByDeviation(c.deviation, m.param!);
}

/**
 * The bos cut's full prefill and methods, scored against the plain cut's full prefill: the same
 * question and the plain reference's continuation are teacher-forced after the bos-cut context.
 */
function crossCutCase(cpu: CpuModel, plainCase: Case, bosCase: Case, specs: readonly MethodSpec[], plan: QualityPlan): Map<string, Sample> {
  const q = bosCase.question.length;
  const chunkTokens = bosCase.tokens.length - bosCase.prefix.length - q;
  const out = new Map<string, Sample>();
  for (const m of specs) {
    if (m.method === 'prefix') continue;
    let logits: Float32Array[];
    let recomputed = 0;
    if (m.method === 'full') {
      cpu.reset();
      cpu.forward(bosCase.tokens.slice(0, bosCase.tokens.length - q));
      logits = cpu.forwardAll(bosCase.question);
      recomputed = chunkTokens;
    } else {
      const recompute = recomputeSet(m, bosCase);
      recomputed = recompute.reduce((a, r) => a + r.length, 0);
      logits = cpuPrefillLinked(cpu, { prefix: bosCase.prefix, chunks: bosCase.chunks, question: bosCase.question, recompute });
    }
    logits.push(...cpu.forwardAll(plainCase.continuation));
    out.set(m.label, {
      ...score(plainCase, logits, q),
      reused: m.method === 'full' ? 0 : chunkTokens - recomputed,
      recomputed: m.method === 'full' ? 0 : recomputed,
      computed: m.method === 'full' ? bosCase.tokens.length : bosCase.prefix.length + q,
      probed: m.method === 'cacheblend' ? chunkTokens : 0,
    });
  }
  return out;
}

async function timedAsync<T>(timing: Record<string, number>, phase: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    timing[phase] += (performance.now() - t0) / 1000;
  }
}

/**
 * The same prompt on the GPU engine: full prefill, naive, AttnLink k=4 and CacheBlend at the middle
 * ratio (the GPU selects its own tokens), each compared after the question with the CPU's numbers.
 */
async function crossCheck(
  gpu: GpuModel,
  cpu: CpuModel,
  prompt: number,
  size: number,
  variant: ChunkVariant,
  parts: { prefix: number[]; chunks: CpuChunkKV[]; question: number[] },
  c: Case,
  plan: QualityPlan,
): Promise<GpuCheckRow[]> {
  const { prefix, chunks, question } = parts;
  const q = question.length;
  const handles: ChunkKV[] = [];
  for (const ch of chunks) handles.push(await gpu.computeChunk(ch.tokens));
  const rows: GpuCheckRow[] = [];
  const compare = async (label: string, cpuLogits: Float32Array, selectionDiff?: number) => {
    const g = await gpu.readLogits();
    rows.push({ prompt, size, variant, label, klCpuGpu: klDivergence(cpuLogits, g), top1Equal: greedy(g) === greedy(cpuLogits), selectionDiff });
  };
  try {
    await gpu.beginSequence();
    await gpu.prefill(c.tokens, GREEDY);
    cpu.reset();
    await compare('full', cpu.forward(c.tokens));
    const k = 4;
    const ratio = plan.blendRatios[Math.floor(plan.blendRatios.length / 2)];
    for (const [label, rule, cpuSet] of [
      ['naive', { k: 0 }, attnlinkIndices(chunks, 0)],
      [`attnlink k=${k}`, { k }, attnlinkIndices(chunks, k)],
      [`cacheblend ${ratio}`, { blend: { ratio, layer: plan.blendLayer } }, selectByDeviation(c.deviation, ratio)],
    ] as const) {
      const r = await gpu.prefillLinked({ prefix, chunks: handles, question, ...rule }, GREEDY);
      const cpuLogits = cpuPrefillLinked(cpu, { prefix, chunks, question, recompute: cpuSet.map((s) => [...s]) })[q - 1];
      let diff: number | undefined;
      if ('blend' in rule) {
        diff = 0;
        r.recomputed.forEach((sel, i) => {
          const a = new Set(sel);
          const b = new Set(cpuSet[i]);
          for (const x of a) if (!b.has(x)) diff!++;
          for (const x of b) if (!a.has(x)) diff!++;
        });
      }
      await compare(label, cpuLogits, diff);
    }
  } finally {
    await gpu.beginSequence();
    for (const h of handles) h.release();
  }
  return rows;
}

/** The rule's k, else the k with the largest KL drop from naive per recomputed token. */
function chooseK(rows: readonly MethodRow[]): KChoice {
  const naive = rows.find((r) => r.method === 'naive');
  const ks = rows.filter((r) => r.method === 'attnlink').sort((a, b) => a.param! - b.param!);
  if (!naive) return { k: undefined, bestPerToken: undefined, bestPerTokenGain: NaN };
  const k = ks.find((r) => r.meanKl <= naive.meanKl / 10 && r.exactMatch >= 0.9)?.param;
  let best: MethodRow | undefined;
  let gain = -Infinity;
  for (const r of ks) {
    const g = (naive.meanKl - r.meanKl) / Math.max(r.recomputed, 1e-9);
    if (g > gain) [best, gain] = [r, g];
  }
  return { k, bestPerToken: best?.param, bestPerTokenGain: gain };
}
