// Quality of position-independent chunk reuse on stories260K, against full prefill.
//
// The evaluation set is made here: short stories sampled from the model itself (fixed seeds) are
// the documents; a prompt links 2-4 of them, in a seeded random order, and ends with the first
// tokens of one more story (the "question"). The reference is the CPU oracle's full forward pass
// over the same tokens (f64 sums; it agrees with the GPU's full prefill to ~1e-5, which the
// "full" row checks on the first prompts) and its greedy 32-token continuation. Each method runs
// on the GPU: its next-token distribution after the question is compared by KL(full ‖ method)
// and top-1, then it decodes greedily while its tokens equal the reference's. A greedy run equals
// the reference's exactly when every step's argmax does, so stopping at the first difference
// gives the exact-match rate and the matched length without paying for the steps after it.
import type { GGUFFile } from '../src/gguf/reader.ts';
import type { ByteSource } from '../src/gguf/source.ts';
import { sampleRef } from '../src/gpu/ref/sample.ts';
import { CpuModel, greedy } from '../src/model/cpu-reference.ts';
import type { ChunkKV, GpuModel, LinkStats } from '../src/model/gpu-model.ts';
import type { Tokenizer } from '../src/tokenizer/index.ts';

export const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0 };

/** How chunks are cut: the document alone, or the document after its own BOS (as EPIC prefills chunks). */
export type ChunkVariant = 'plain' | 'bos';

export interface QualityPlan {
  documents: number;
  /** Generated stories shorter than this (EOS early) are drawn again with another seed. */
  minDocTokens: number;
  maxDocTokens: number;
  questionTokens: number;
  continuation: number;
  minPrompts: number;
  maxPrompts: number;
  /** No new prompt starts once this much wall time has gone (minPrompts are always run). */
  budgetS: number;
  /** Greedy continuations are decoded only while less than this much wall time has gone. */
  continuationBudgetS: number;
  /** The chunk cuts whose greedy continuations are decoded (each decode step is one GPU step per method). */
  continuationVariants: readonly ChunkVariant[];
  ks: readonly number[];
  /** Prompts on which the GPU's own full prefill is measured against the CPU reference. */
  fullChecks: number;
  seed: number;
}

export interface Document {
  opening: string;
  seed: number;
  /** Without BOS. */
  tokens: number[];
  text: string;
}

export interface MethodRow {
  variant: ChunkVariant;
  /** 'full' (GPU prefill of the whole prompt), 'naive' (k = 0) or 'attnlink'. */
  method: 'full' | 'naive' | 'attnlink';
  k: number;
  label: string;
  prompts: number;
  /** Prompts whose greedy continuation was decoded (exact, matched and the agreed-step KL count only these). */
  continuationPrompts: number;
  /** KL(reference ‖ method) of the next-token distribution after the question, nats. */
  meanKl: number;
  medianKl: number;
  maxKl: number;
  /** Fraction of prompts whose argmax after the question is the reference's. */
  top1: number;
  /** Fraction of prompts whose greedy continuation equals the reference's for all its tokens. */
  exactMatch: number;
  /** Mean number of leading continuation tokens equal to the reference's. */
  meanMatched: number;
  /** Mean KL over the continuation steps taken while the tokens still agreed (teacher-forced by agreement). */
  meanKlAgreedSteps: number;
  /** Mean tokens per prompt. */
  reused: number;
  recomputed: number;
  computed: number;
}

export interface QualityResult {
  plan: QualityPlan;
  documents: { opening: string; seed: number; tokens: number; text: string }[];
  prompts: { docs: number[]; question: number; tokens: Record<ChunkVariant, number> }[];
  rows: MethodRow[];
  /** KL of the GPU's full prefill against the CPU reference: the floor under every other number. */
  referenceFloorKl: number | undefined;
  /** Per variant: the smallest k meeting the rule, or undefined (also when its continuations were not decoded). */
  chosenK: Record<ChunkVariant, number | undefined>;
  betterVariant: ChunkVariant;
  rule: string;
  seconds: number;
}

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
 * top-k 40), from BOS and a short opening, cut at EOS or maxDocTokens.
 */
export function generateDocuments(cpu: CpuModel, tok: Tokenizer, plan: QualityPlan): Document[] {
  const docs: Document[] = [];
  for (let i = 0; i < plan.documents; i++) {
    const opening = OPENINGS[i % OPENINGS.length];
    const head = tok.encode(opening, { addBos: false });
    let doc: Document | undefined;
    for (let attempt = 0; !doc || doc.tokens.length < plan.minDocTokens; attempt++) {
      const seed = plan.seed * 1000 + i * 16 + attempt;
      cpu.reset();
      let logits = cpu.forward([tok.bosId, ...head]);
      const tokens = [...head];
      for (let step = 0; tokens.length < plan.maxDocTokens; step++) {
        const t = sampleRef(logits, { temperature: 0.8, topK: 40, topP: 1, seed, step });
        if (t === tok.eosId || t === tok.bosId) break;
        tokens.push(t);
        logits = cpu.forward([t]);
      }
      doc = { opening, seed, tokens, text: tok.decode(tokens) };
      if (attempt > 20) break;
    }
    docs.push(doc);
  }
  return docs;
}

function logSoftmax(logits: Float32Array): Float64Array {
  let m = -Infinity;
  for (const x of logits) m = Math.max(m, x);
  let s = 0;
  for (const x of logits) s += Math.exp(x - m);
  const lse = m + Math.log(s);
  return Float64Array.from(logits, (x) => x - lse);
}

/** KL(p ‖ q) in nats for two logit vectors. */
export function klDivergence(pLogits: Float32Array, qLogits: Float32Array): number {
  const lp = logSoftmax(pLogits);
  const lq = logSoftmax(qLogits);
  let kl = 0;
  for (let i = 0; i < lp.length; i++) {
    const p = Math.exp(lp[i]);
    if (p > 0) kl += p * (lp[i] - lq[i]);
  }
  return Math.max(0, kl);
}

interface Prompt {
  docs: number[];
  question: number;
}

function makePrompts(plan: QualityPlan, nDocs: number): Prompt[] {
  const rand = seededRandom(plan.seed * 7919 + 17);
  const out: Prompt[] = [];
  for (let p = 0; p < plan.maxPrompts; p++) {
    const n = 2 + Math.floor(rand() * 3); // 2..4 chunks
    const order = Array.from({ length: nDocs }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    out.push({ docs: order.slice(0, n), question: order[n] });
  }
  return out;
}

interface Reference {
  /** Logits after the question, then after each continuation token but the last: (continuation) × (vocab). */
  logits: Float32Array[];
  continuation: number[];
}

function cpuReference(cpu: CpuModel, tokens: number[], n: number): Reference {
  cpu.reset();
  const logits = [cpu.forward(tokens)];
  const continuation: number[] = [];
  for (;;) {
    const t = greedy(logits[logits.length - 1]);
    continuation.push(t);
    if (continuation.length === n) return { logits, continuation };
    logits.push(cpu.forward([t]));
  }
}

interface Sample {
  kl: number;
  top1: boolean;
  /** undefined when the continuation was not decoded. */
  matched: number | undefined;
  agreedKl: number[];
  stats: LinkStats;
}

async function runMethod(
  model: GpuModel,
  ref: Reference,
  parts: { prefix: number[]; chunks: ChunkKV[]; question: number[]; all: number[] },
  k: number | 'full',
  continuation: boolean,
): Promise<Sample> {
  let next: number;
  let stats: LinkStats;
  if (k === 'full') {
    await model.beginSequence();
    next = await model.prefill(parts.all, GREEDY);
    stats = { reused: 0, recomputed: 0, computed: parts.all.length };
  } else {
    ({ next, stats } = await model.prefillLinked({ prefix: parts.prefix, chunks: parts.chunks, question: parts.question, k }, GREEDY));
  }
  const kl = klDivergence(ref.logits[0], await model.readLogits());
  const top1 = next === ref.continuation[0];
  if (!continuation) return { kl, top1, matched: undefined, agreedKl: [], stats };
  let matched = 0;
  const agreedKl: number[] = [];
  // While the tokens agree, decode() feeds exactly the reference's token: teacher forcing for free.
  while (next === ref.continuation[matched]) {
    matched++;
    if (matched === ref.continuation.length) break;
    next = await model.decode(GREEDY);
    agreedKl.push(klDivergence(ref.logits[matched], await model.readLogits()));
  }
  return { kl, top1, matched, agreedKl, stats };
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

export const K_RULE = 'smallest k whose mean KL ≤ 1/10 of naive (k = 0) and whose greedy exact-match rate ≥ 90%';

export async function runQuality(
  model: GpuModel,
  file: GGUFFile,
  source: ByteSource,
  tok: Tokenizer,
  plan: QualityPlan,
  log: (s: string) => void,
): Promise<QualityResult> {
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  const cpu = await CpuModel.load(source, file, model.maxContext);
  const docs = generateDocuments(cpu, tok, plan);
  log(`${docs.length} documents generated on the CPU oracle (${docs.map((d) => d.tokens.length).join(', ')} tokens) in ${seconds().toFixed(1)} s`);
  const prompts = makePrompts(plan, docs.length);
  const bos = tok.bosId;

  const cache = new Map<string, ChunkKV>();
  const chunkOf = async (variant: ChunkVariant, d: number): Promise<ChunkKV> => {
    const key = `${variant}:${d}`;
    let c = cache.get(key);
    if (!c) {
      c = await model.computeChunk(variant === 'bos' ? [bos, ...docs[d].tokens] : docs[d].tokens);
      cache.set(key, c);
    }
    return c;
  };

  const variants: ChunkVariant[] = ['plain', 'bos'];
  const methods: (number | 'full')[] = ['full', ...plan.ks];
  const samples = new Map<string, Sample[]>();
  const key = (v: ChunkVariant, m: number | 'full') => `${v}:${m}`;
  const done: QualityResult['prompts'] = [];
  for (let p = 0; p < prompts.length; p++) {
    if (p >= plan.minPrompts && seconds() > plan.budgetS) break;
    const pr = prompts[p];
    const question = docs[pr.question].tokens.slice(0, plan.questionTokens);
    const lengths = {} as Record<ChunkVariant, number>;
    const decodeContinuation = p < plan.minPrompts || seconds() < plan.continuationBudgetS;
    for (const v of variants) {
      // plain: [BOS] d1 d2 ... q; bos: [BOS d1] [BOS d2] ... q (the first chunk's BOS starts the sequence).
      const prefix = v === 'plain' ? [bos] : [];
      const chunks: ChunkKV[] = [];
      for (const d of pr.docs) chunks.push(await chunkOf(v, d));
      const all = [...prefix, ...chunks.flatMap((c) => c.tokens), ...question];
      lengths[v] = all.length;
      const ref = cpuReference(cpu, all, plan.continuation);
      for (const m of methods) {
        if (m === 'full' && (p >= plan.fullChecks || v !== 'plain')) continue;
        const cont = decodeContinuation && plan.continuationVariants.includes(v);
        const s = await runMethod(model, ref, { prefix, chunks, question, all }, m, cont);
        const list = samples.get(key(v, m)) ?? [];
        list.push(s);
        samples.set(key(v, m), list);
      }
    }
    done.push({ ...pr, tokens: lengths });
    const naive = samples.get(key('plain', 0));
    log(`prompt ${p + 1}: ${pr.docs.length} chunks, ${lengths.plain} tokens; plain naive KL ${naive?.[naive.length - 1].kl.toFixed(4)}; ${seconds().toFixed(0)} s`);
  }
  for (const c of cache.values()) c.release();

  const rows: MethodRow[] = [];
  for (const v of variants) {
    for (const m of methods) {
      const list = samples.get(key(v, m)) ?? [];
      if (list.length === 0) continue;
      const kls = list.map((s) => s.kl);
      const decoded = list.filter((s) => s.matched !== undefined);
      const matched = decoded.map((s) => s.matched ?? 0);
      rows.push({
        variant: v,
        method: m === 'full' ? 'full' : m === 0 ? 'naive' : 'attnlink',
        k: m === 'full' ? Infinity : m,
        label: m === 'full' ? 'full (GPU)' : m === 0 ? 'naive k=0' : `attnlink k=${m}`,
        prompts: list.length,
        continuationPrompts: decoded.length,
        meanKl: mean(kls),
        medianKl: median(kls),
        maxKl: Math.max(...kls),
        top1: mean(list.map((s) => (s.top1 ? 1 : 0))),
        exactMatch: mean(matched.map((m) => (m === plan.continuation ? 1 : 0))),
        meanMatched: mean(matched),
        meanKlAgreedSteps: mean(decoded.flatMap((s) => s.agreedKl)),
        reused: mean(list.map((s) => s.stats.reused)),
        recomputed: mean(list.map((s) => s.stats.recomputed)),
        computed: mean(list.map((s) => s.stats.computed)),
      });
    }
  }
  const chosenK = {} as Record<ChunkVariant, number | undefined>;
  for (const v of plan.continuationVariants) {
    const vr = rows.filter((r) => r.variant === v && r.method !== 'full');
    const naive = vr.find((r) => r.k === 0);
    chosenK[v] = vr.find((r) => r.k > 0 && naive !== undefined && r.meanKl <= naive.meanKl / 10 && r.exactMatch >= 0.9)?.k;
  }
  for (const v of variants) if (!plan.continuationVariants.includes(v)) chosenK[v] = undefined;
  // The better cut: lower mean KL summed over every reuse method (naive and each k).
  const score = (v: ChunkVariant) => rows.filter((r) => r.variant === v && r.method !== 'full').reduce((s, r) => s + r.meanKl, 0);
  const betterVariant: ChunkVariant = score('bos') < score('plain') ? 'bos' : 'plain';
  const floor = rows.find((r) => r.variant === 'plain' && r.method === 'full')?.meanKl;
  return {
    plan,
    documents: docs.map((d) => ({ opening: d.opening, seed: d.seed, tokens: d.tokens.length, text: d.text })),
    prompts: done,
    rows,
    referenceFloorKl: floor,
    chosenK,
    betterVariant,
    rule: K_RULE,
    seconds: seconds(),
  };
}
