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
// On the plain cut, two more sets of rows vary one thing against those numbers, on the same prompts
// and the same full-prefill reference: what a chunk's KV is computed after (its chunk context: none,
// a fixed lead-in, or the document's previous tokens, as src/engine/doc-layout.ts lays them out), and
// how a chunk's KV is stored (f32, f16 or int8 chunk records, src/kv/chunk-record.ts, and an f16 KV
// pool emulated on the CPU). Each is compared prompt by prompt with its baseline (bench/pic-stats.ts).
//
// An optional GPU cross-check runs the first prompt(s) through GpuModel.prefillLinked on the same
// chunks and compares the logits after the question with this CPU evaluation's.
import { LEAD_IN_TEXT } from '../src/engine/doc-layout.ts';
import type { ChunkContextMode } from '../src/engine/types.ts';
import type { GGUFFile } from '../src/gguf/reader.ts';
import type { ByteSource } from '../src/gguf/source.ts';
import { sampleRef } from '../src/gpu/ref/sample.ts';
import { selectByDeviation } from '../src/kv/cacheblend.ts';
import { chunkRecordBytes, decodeChunkRecord, encodeChunkRecord, type KvStorageDtype } from '../src/kv/chunk-record.ts';
import { splitDocument } from '../src/kv/chunker.ts';
import { f16BitsToF32, f32ToF16Bits } from '../src/kv/f16.ts';
import { attnlinkIndices, cpuBlendDeviationFromSequence, cpuComputeChunk, cpuPrefillLinked, type CpuChunkKV, type CpuLinkOptions } from '../src/model/cpu-link.ts';
import { CpuModel, greedy } from '../src/model/cpu-reference.ts';
import type { ChunkKV, GpuModel } from '../src/model/gpu-model.ts';
import { SYNTHETIC_PRESETS } from '../src/model/synthetic.ts';
import type { Tokenizer } from '../src/tokenizer/index.ts';
import { mean, median, pairedStats, seededRandom, BOOTSTRAP, type PairedStats } from './pic-stats.ts';

export { seededRandom };

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
  /**
   * Chunk contexts compared with 'none' on the plain cut: `modes` (besides 'none'), `tokens` of
   * context each, scored at naive reuse and AttnLink with each of `ks`. Empty modes: none run.
   */
  contexts: { modes: readonly Exclude<ChunkContextMode, 'none'>[]; tokens: number; ks: readonly number[] };
  /**
   * KV storage on the plain cut: every chunk's rows go through a chunk record in each of `formats`
   * (f32 rows in, f32 rows out) before linking, scored at naive and AttnLink with each of `ks`;
   * `f16Pool` adds the f16 pool emulation (see StorageSetting).
   */
  storage: { formats: readonly KvStorageDtype[]; ks: readonly number[]; f16Pool: boolean };
  seed: number;
}

/**
 * A KV storage setting: a chunk record format, or 'f16-pool', the GPU's f16 KV pool emulated on
 * the CPU reference without changing it: each chunk computed with every row rounded to f16 right
 * after its token's step, and every row the link writes (prefix, recomputed tokens, question,
 * continuation) rounded the same way. It differs from the GPU in one term: a token's own step reads
 * its own new row before the rounding (the GPU writes it to the pool, then attention reads it).
 */
export type StorageSetting = KvStorageDtype | 'f16-pool';

export interface Document {
  opening: string;
  seed: number;
  /** encode(text) without BOS. */
  tokens: number[];
  text: string;
}

/** One prompt's numbers for one method. */
interface Sample {
  /** Index of the prompt (pairs settings prompt by prompt). */
  prompt: number;
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
  /** Storage settings: mean KL(the same method on f32 rows ‖ this one), and the share of positions with its argmax. */
  klToF32?: number;
  top1ToF32?: number;
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

/** A method's row with one chunk context (plain cut). */
export interface ContextRow extends MethodRow {
  context: ChunkContextMode;
}

/** A method's row with one KV storage setting (plain cut). */
export interface StorageRow extends MethodRow {
  storage: StorageSetting;
  /** Mean KL(same method on f32 rows ‖ this setting), and the share of positions with the same argmax as it. */
  klToF32: number;
  top1ToF32: number;
}

/** Per-prompt KL of `setting` against `baseline`, same method, same prompts ('all': each prompt once, its KL averaged over sizes). */
export interface PairedRow {
  size: number | 'all';
  label: string;
  setting: string;
  baseline: string;
  /** Greedy exact-match rates of the two over the same units. */
  exactBaseline: number;
  exactSetting: number;
  stats: PairedStats;
}

/** Bytes per token of a chunk record of n tokens, per storage format, for one model shape. */
export interface StorageBytesRow {
  model: string;
  nLayers: number;
  kvDim: number;
  tokens: number;
  bytesPerToken: Record<KvStorageDtype, number>;
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
  /** The same against the CPU with f16 rows (the f16-pool emulation), when the GPU pool is f16. */
  klCpuF16Gpu?: number;
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
  /** Plain cut per chunk context ('none' is the plain cut's own rows), per scope. */
  contextRows: ContextRow[];
  /** Each context against 'none'. */
  contextPaired: PairedRow[];
  /** The context mode the rule picks (CONTEXT_RULE), and why. */
  contextChoice: { mode: ChunkContextMode; reason: string };
  contextRule: string;
  /** The lead-in's token ids (the last `contexts.tokens` of LEAD_IN_TEXT) and their text. */
  leadIn: { ids: number[]; text: string };
  /** Plain cut per storage setting ('f32' is the plain cut's own rows: its round trip is checked bit-exact). */
  storageRows: StorageRow[];
  /** Each storage setting against f32. */
  storagePaired: PairedRow[];
  storageBytes: StorageBytesRow[];
  /** The GPU cross-check's KV pool element type. */
  gpuKvDtype?: string;
  bootstrap: { resamples: number; seed: number };
  rule: string;
  seconds: number;
  /** Seconds per phase: documents, chunk KV, references, methods, GPU check. */
  timing: Record<string, number>;
}

export const K_RULE = 'smallest k whose mean KL ≤ 1/10 of naive reuse and whose greedy exact-match rate ≥ 90%';

export const CONTEXT_RULE =
  "over all sizes (each prompt once, its KL averaged over the sizes), the mode with the lowest mean KL at AttnLink k=1 among those whose 95% bootstrap " +
  "interval of the paired mean KL difference to 'none' lies entirely below 0 both for naive reuse and for AttnLink k=1; 'none' when no mode qualifies";

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
  const timing: Record<string, number> = { documents: 0, chunks: 0, references: 0, methods: 0, crossCut: 0, contexts: 0, storage: 0, gpuCheck: 0 };
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

  // Chunk contexts (plain cut): the lead-in, or the document's tokens before the chunk ('previous',
  // none for a story's first chunk: then the chunk is the plain one, the same object).
  const leadIn = tok.encode(LEAD_IN_TEXT).slice(-plan.contexts.tokens);
  const ctxCache = new Map<string, CpuChunkKV>();
  const contextChunksOf = (d: number, size: number, mode: ChunkContextMode): CpuChunkKV[] =>
    piecesOf(d, size).map((piece, i) => {
      const context = mode === 'lead-in' ? leadIn : mode === 'previous' ? piecesOf(d, size).slice(0, i).flat().slice(-plan.contexts.tokens) : [];
      if (context.length === 0) return chunksOf(d, size, 'plain')[i];
      const key = `${context.join(',')}|${piece.join(',')}`;
      let c = ctxCache.get(key);
      if (!c) {
        c = timed('chunks', () => cpuComputeChunk(cpu, piece, context));
        ctxCache.set(key, c);
      }
      return c;
    });
  // Storage settings (plain cut): each chunk's rows through a record, or computed with f16 rows.
  const nLayers = cpu.config.nLayers;
  const kvDim = cpu.config.nKvHeads * cpu.config.headDim;
  const storageSettings: StorageSetting[] = [...plan.storage.formats.filter((f) => f !== 'f32'), ...(plan.storage.f16Pool ? ['f16-pool' as const] : [])];
  const storedCache = new Map<string, CpuChunkKV>();
  const storedOf = (ch: CpuChunkKV, setting: StorageSetting): CpuChunkKV => {
    const key = `${setting}|${ch.tokens.join(',')}`;
    let c = storedCache.get(key);
    if (!c) {
      c = timed('chunks', () => (setting === 'f16-pool' ? cpuComputeChunk(cpu, ch.tokens, [], { afterToken: roundRowF16 }) : throughRecord(ch, setting, nLayers, kvDim)));
      storedCache.set(key, c);
    }
    return c;
  };
  const checkF32 = (ch: CpuChunkKV) => {
    const back = throughRecord(ch, 'f32', nLayers, kvDim);
    const same = (a: Float32Array[], b: Float32Array[]) => a.every((x, l) => x.every((y, i) => Object.is(y, b[l][i])));
    if (!same(back.k, ch.k) || !same(back.v, ch.v)) throw new Error('an f32 chunk record did not give back the same rows');
  };

  const specs = methodSpecs(plan);
  const samples = new Map<string, Sample[]>(); // `${size}:${group}:${label}`, group a cut, `ctx:<mode>` or `kv:<setting>`
  const add = (size: number, key: string, s: Sample) => {
    const list = samples.get(`${size}:${key}`) ?? [];
    list.push(s);
    samples.set(`${size}:${key}`, list);
  };
  const earlier = new Map<string, number[][]>(); // prefix cache: earlier prompts' tokens per size and cut
  const q = plan.questionTokens;
  const ran = new Map<number, number>(plan.chunkSizes.map((s) => [s.target, 0]));
  const tokenSums = new Map<string, number>();
  const chunkSums = new Map<number, number>();
  const gpuCheck: GpuCheckRow[] = [];
  const cross = new Map<string, Sample[]>(); // label -> bos-cut samples scored against the plain reference
  let f32Checked = 0;
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
    const memo = new Map<string, CaseRun>(); // this prompt's cases by chunk tokens
    const fullF16Memo = new Map<string, Scored>(); // the f16-pool full prefill by prompt tokens (the plain cut's are the same at every size)
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
        if (v === 'plain' && !done.settings) {
          const run = done;
          const contexts = new Map(plan.contexts.modes.map((mode) => [mode, pr.docs.flatMap((d) => contextChunksOf(d, size, mode))] as const));
          const stored = new Map(storageSettings.map((st) => [st, chunks.map((ch) => storedOf(ch, st))] as const));
          if (plan.storage.formats.includes('f32')) {
            chunks.forEach(checkF32);
            f32Checked += chunks.length;
          }
          const fullF16 = (): Scored => {
            const key = run.c.tokens.join(',');
            const s = fullF16Memo.get(key) ?? fullF16Pool(cpu, run.c);
            fullF16Memo.set(key, s);
            return s;
          };
          done.settings = runSettings(cpu, run, contexts, stored, plan, timed, fullF16);
        }
        const { c, results } = done;
        for (const [key, s] of done.settings ?? []) add(size, key, { ...s, prompt: p });
        tokenSums.set(`${size}:${v}`, (tokenSums.get(`${size}:${v}`) ?? 0) + c.tokens.length);
        if (v === 'plain') chunkSums.set(size, (chunkSums.get(size) ?? 0) + chunks.length);
        for (const m of specs) {
          if (m.method === 'prefix') {
            // Exact by construction (the same tokens at the same positions): full's numbers, fewer tokens run.
            const before = earlier.get(`${size}:${v}`) ?? [];
            const reused = Math.min(c.tokens.length - 1, Math.max(0, ...before.map((t) => commonPrefix(t, c.tokens))));
            before.push(c.tokens);
            earlier.set(`${size}:${v}`, before);
            add(size, `${v}:${m.label}`, { ...results.get('full')!, reused, computed: c.tokens.length - reused, prompt: p });
          } else add(size, `${v}:${m.label}`, { ...results.get(m.label)!, prompt: p });
        }
        if (gpu && p < plan.gpuChecks && size === mainSize(plan)) {
          gpuCheck.push(...(await timedAsync(timing, 'gpuCheck', () => crossCheck(gpu, cpu, p, size, v, { prefix, chunks, question }, c, plan, leadIn))));
        }
        if (size === mainSize(plan)) line.push(`${v} ${c.tokens.length} tokens naive KL ${samples.get(`${size}:${v}:naive`)!.at(-1)!.kl.toExponential(2)}`);
        if (size === mainSize(plan) && v === 'plain') {
          for (const mode of plan.contexts.modes) line.push(`${mode} ${samples.get(`${size}:ctx:${mode}:naive`)!.at(-1)!.kl.toExponential(2)}`);
        }
      }
      if (size === mainSize(plan) && p < plan.crossCutPrompts) {
        const key = (v: ChunkVariant) => `${v}|${pr.docs.flatMap((d) => chunksOf(d, size, v)).map((ch) => ch.tokens.join(',')).join('|')}`;
        const plainCase = memo.get(key('plain'))!.c;
        const bosCase = memo.get(key('bos'))!.c;
        for (const [label, sample] of timed('crossCut', () => crossCutCase(cpu, plainCase, bosCase, specs, plan))) {
          cross.set(label, [...(cross.get(label) ?? []), { ...sample, prompt: p }]);
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

  // The plain cut per chunk context and per storage setting; the baselines are its own rows.
  const ctxSpecs = settingSpecs(plan.contexts.ks);
  const kvSpecs = settingSpecs(plan.storage.ks);
  const listOf = (scope: number | 'all', key: string): Sample[] =>
    plan.chunkSizes.filter((s) => scope === 'all' || s.target === scope).flatMap((s) => samples.get(`${s.target}:${key}`) ?? []);
  const contextKey = (mode: ChunkContextMode, label: string) => (mode === 'none' ? `plain:${label}` : `ctx:${mode}:${label}`);
  const storageKey = (st: StorageSetting, label: string) => (st === 'f32' ? `plain:${label}` : `kv:${st}:${label}`);
  const contextModes: ChunkContextMode[] = plan.contexts.modes.length > 0 ? ['none', ...plan.contexts.modes] : [];
  const storageShown: StorageSetting[] = storageSettings.length > 0 ? ['f32', ...storageSettings] : [];
  const contextRows: ContextRow[] = [];
  const storageRows: StorageRow[] = [];
  for (const scope of scopes) {
    for (const mode of contextModes) {
      for (const m of ctxSpecs) {
        const list = listOf(scope, contextKey(mode, m.label));
        if (list.length > 0) contextRows.push({ ...summarize(list, 'plain', m, scope), context: mode });
      }
    }
    for (const st of storageShown) {
      const full: MethodSpec = { method: 'full', param: undefined, label: 'full' };
      for (const m of st === 'f16-pool' ? [full, ...kvSpecs] : kvSpecs) {
        const list = listOf(scope, storageKey(st, m.label));
        if (list.length === 0) continue;
        storageRows.push({
          ...summarize(list, 'plain', m, scope),
          storage: st,
          klToF32: st === 'f32' ? 0 : mean(list.map((x) => x.klToF32 ?? NaN)),
          top1ToF32: st === 'f32' ? 1 : mean(list.map((x) => x.top1ToF32 ?? NaN)),
        });
      }
    }
  }
  // Paired: per prompt (in 'all', its KL and exact match averaged over the sizes it ran at).
  const byPrompt = (scope: number | 'all', key: string): Map<number, { kl: number; exact: number }> => {
    const acc = new Map<number, { kl: number[]; exact: number[] }>();
    for (const x of listOf(scope, key)) {
      const a = acc.get(x.prompt) ?? { kl: [], exact: [] };
      a.kl.push(x.kl);
      a.exact.push(x.matched === plan.continuation ? 1 : 0);
      acc.set(x.prompt, a);
    }
    return new Map([...acc].map(([pi, a]) => [pi, { kl: mean(a.kl), exact: mean(a.exact) }]));
  };
  const paired = (scope: number | 'all', label: string, baseKey: string, otherKey: string, setting: string, baseline: string): PairedRow | undefined => {
    const a = byPrompt(scope, baseKey);
    const b = byPrompt(scope, otherKey);
    const both = [...a.keys()].filter((pi) => b.has(pi)).sort((x, y) => x - y);
    if (both.length === 0) return undefined;
    return {
      size: scope,
      label,
      setting,
      baseline,
      exactBaseline: mean(both.map((pi) => a.get(pi)!.exact)),
      exactSetting: mean(both.map((pi) => b.get(pi)!.exact)),
      stats: pairedStats(both.map((pi) => a.get(pi)!.kl), both.map((pi) => b.get(pi)!.kl)),
    };
  };
  const contextPaired: PairedRow[] = [];
  const storagePaired: PairedRow[] = [];
  for (const scope of scopes) {
    for (const mode of plan.contexts.modes) {
      for (const m of ctxSpecs) {
        const r = paired(scope, m.label, contextKey('none', m.label), contextKey(mode, m.label), mode, 'none');
        if (r) contextPaired.push(r);
      }
    }
    for (const st of storageSettings) {
      for (const m of kvSpecs) {
        const r = paired(scope, m.label, storageKey('f32', m.label), storageKey(st, m.label), st, 'f32');
        if (r) storagePaired.push(r);
      }
    }
  }
  const contextChoice = chooseContext(contextPaired, plan);
  const qwen = SYNTHETIC_PRESETS['qwen2.5-0.5b'];
  const storageBytes: StorageBytesRow[] = [
    { model: 'stories260K', nLayers, kvDim },
    { model: 'Qwen2.5-0.5B', nLayers: qwen.nLayers, kvDim: qwen.nKvHeads * qwen.headDim },
  ].flatMap((shape) =>
    [32, 128, 512].map((n) => ({
      ...shape,
      tokens: n,
      bytesPerToken: { f32: chunkRecordBytes(shape.nLayers, shape.kvDim, n, 'f32') / n, f16: chunkRecordBytes(shape.nLayers, shape.kvDim, n, 'f16') / n, int8: chunkRecordBytes(shape.nLayers, shape.kvDim, n, 'int8') / n },
    })),
  );
  if (f32Checked > 0) log(`f32 chunk records: ${f32Checked} round trips bit-exact, so the f32 storage rows are the plain cut's own`);

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
    contextRows,
    contextPaired,
    contextChoice,
    contextRule: CONTEXT_RULE,
    leadIn: { ids: leadIn, text: tok.decode(leadIn) },
    storageRows,
    storagePaired,
    storageBytes,
    gpuKvDtype: gpu?.kvDtype,
    bootstrap: { ...BOOTSTRAP },
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

/** A sample before it is given its prompt index. */
type Scored = Omit<Sample, 'prompt'>;

/** Teacher-forces `tokens` after the model's sequence; with a hook, one token at a time, calling it after each. */
function continueWith(cpu: CpuModel, tokens: number[], opts: CpuLinkOptions): Float32Array[] {
  const after = opts.afterToken;
  if (!after) return cpu.forwardAll(tokens);
  return tokens.map((t) => {
    const logits = cpu.forward([t]);
    after(cpu, cpu.length - 1);
    return logits;
  });
}

/** Links `chunks` into the case's prompt, then its continuation: logits after each question token, then each continuation token. */
function linkLogits(cpu: CpuModel, c: Case, chunks: CpuChunkKV[], recompute: number[][], opts: CpuLinkOptions = {}): Float32Array[] {
  const out = cpuPrefillLinked(cpu, { prefix: c.prefix, chunks, question: c.question, recompute }, opts);
  out.push(...continueWith(cpu, c.continuation, opts));
  return out;
}

/** A linked run's sample: the scores and the token counts. */
function linkScored(c: Case, logits: readonly Float32Array[], recompute: number[][]): Scored {
  const q = c.question.length;
  const chunkTokens = c.tokens.length - c.prefix.length - q;
  const recomputed = recompute.reduce((a, r) => a + r.length, 0);
  return { ...score(c, logits, q), reused: chunkTokens - recomputed, recomputed, computed: c.prefix.length + q, probed: 0 };
}

/** One prompt's case with its samples by method label, and the logits of each reuse method (for the storage settings' KL to f32). */
interface CaseRun {
  c: Case;
  results: Map<string, Scored>;
  logits: Map<string, Float32Array[]>;
  /** The chunk-context and storage settings' samples, by `ctx:<mode>:<label>` and `kv:<setting>:<label>` (plain cut only). */
  settings?: Map<string, Scored>;
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
): CaseRun {
  const { prefix, chunks, question } = parts;
  const c = timed('references', () => reference(cpu, prefix, chunks, question, plan));
  const chunkTokens = c.tokens.length - prefix.length - question.length;
  const results = new Map<string, Scored>();
  const logitsOf = new Map<string, Float32Array[]>();
  results.set('full', { kl: 0, klAfterQuestion: 0, top1: 1, nll: c.nll, matched: plan.continuation, reused: 0, recomputed: 0, computed: c.tokens.length, probed: 0 });
  const bySet = new Map<string, { s: Scored; logits: Float32Array[] }>(); // the same recompute set gives the same numbers
  for (const m of specs) {
    if (m.method === 'full' || m.method === 'prefix') continue;
    const recompute = recomputeSet(m, c);
    const setKey = recompute.map((r) => r.join(',')).join('|');
    let done = bySet.get(setKey);
    if (!done) {
      const logits = timed('methods', () => linkLogits(cpu, c, chunks, recompute));
      done = { s: linkScored(c, logits, recompute), logits };
      bySet.set(setKey, done);
    }
    results.set(m.label, m.method === 'cacheblend' ? { ...done.s, probed: chunkTokens } : done.s);
    if (m.method !== 'cacheblend') logitsOf.set(m.label, done.logits);
  }
  return { c, results, logits: logitsOf };
}

/** naive, then AttnLink with each k: the methods a setting is scored at. */
function settingSpecs(ks: readonly number[]): MethodSpec[] {
  return [{ method: 'naive', param: undefined, label: 'naive' }, ...ks.map((k): MethodSpec => ({ method: 'attnlink', param: k, label: `attnlink k=${k}` }))];
}

/** Rounds values to f16 and back. */
function roundF16(x: Float32Array): Float32Array {
  return f16BitsToF32(f32ToF16Bits(x));
}

/** Rewrites the K/V rows at `position` rounded to f16, as an f16 pool holds them. */
export function roundRowF16(model: CpuModel, position: number): void {
  const rows = model.kvRows(position, 1);
  model.setKV({ k: rows.k.map(roundF16), v: rows.v.map(roundF16) }, position);
}

/**
 * A chunk's rows through a chunk record: encoded from f32 rows in `storage`, decoded back to f32
 * (the layout encodeChunkRecord takes: per layer K rows then V rows, (n, kvDim) each).
 */
export function throughRecord(chunk: CpuChunkKV, storage: KvStorageDtype, nLayers: number, kvDim: number): CpuChunkKV {
  const n = chunk.tokens.length;
  const section = n * kvDim;
  const rows = new Float32Array(nLayers * 2 * section);
  for (let l = 0; l < nLayers; l++) {
    rows.set(chunk.k[l], 2 * l * section);
    rows.set(chunk.v[l], (2 * l + 1) * section);
  }
  const shape = { nLayers, kvDim, tokens: chunk.tokens, modelFingerprint: 'bench:pic stories260K' };
  const bytes = decodeChunkRecord(encodeChunkRecord(shape, new Uint8Array(rows.buffer), 'f32', storage), shape, 'f32');
  const back = new Float32Array(bytes.slice().buffer);
  return {
    tokens: [...chunk.tokens],
    k: chunk.k.map((_, l) => back.slice(2 * l * section, (2 * l + 1) * section)),
    v: chunk.v.map((_, l) => back.slice((2 * l + 1) * section, (2 * l + 2) * section)),
  };
}

/** The full prefill with every K/V row rounded to f16 as it is written (the f16-pool emulation), scored against the f32 reference. */
function fullF16Pool(cpu: CpuModel, c: Case): Scored {
  cpu.reset();
  const q = c.question.length;
  const opts: CpuLinkOptions = { afterToken: roundRowF16 };
  continueWith(cpu, c.tokens.slice(0, c.tokens.length - q), opts);
  const logits = continueWith(cpu, [...c.question, ...c.continuation], opts);
  return { ...score(c, logits, q), reused: 0, recomputed: 0, computed: c.tokens.length, probed: 0 };
}

/**
 * The plain cut's settings on one case: each chunk context's chunk KV (`contexts`: mode → the
 * prompt's chunks computed after their context), each storage setting's (`stored`), linked at
 * naive and the plan's k, against the same reference. A context whose chunks are the case's own
 * (every context empty, e.g. 'previous' when each chunk opens its story) copies the case's numbers.
 */
function runSettings(
  cpu: CpuModel,
  run: CaseRun,
  contexts: ReadonlyMap<ChunkContextMode, CpuChunkKV[]>,
  stored: ReadonlyMap<StorageSetting, CpuChunkKV[]>,
  plan: QualityPlan,
  timed: <T>(phase: string, f: () => T) => T,
  fullF16: () => Scored,
): Map<string, Scored> {
  const { c } = run;
  const out = new Map<string, Scored>();
  for (const [mode, chunks] of contexts) {
    const same = chunks.every((ch, i) => ch === c.chunks[i]);
    for (const m of settingSpecs(plan.contexts.ks)) {
      const recompute = recomputeSet(m, c);
      out.set(`ctx:${mode}:${m.label}`, same ? run.results.get(m.label)! : linkScored(c, timed('contexts', () => linkLogits(cpu, c, chunks, recompute)), recompute));
    }
  }
  for (const [setting, chunks] of stored) {
    const opts: CpuLinkOptions = setting === 'f16-pool' ? { afterToken: roundRowF16 } : {};
    for (const m of settingSpecs(plan.storage.ks)) {
      const recompute = recomputeSet(m, c);
      const logits = timed('storage', () => linkLogits(cpu, c, chunks, recompute, opts));
      const f32 = run.logits.get(m.label) ?? timed('storage', () => linkLogits(cpu, c, c.chunks, recompute));
      let kl = 0;
      let same = 0;
      logits.forEach((l, i) => {
        kl += klDivergence(f32[i], l);
        if (greedy(l) === greedy(f32[i])) same++;
      });
      out.set(`kv:${setting}:${m.label}`, { ...linkScored(c, logits, recompute), klToF32: kl / logits.length, top1ToF32: same / logits.length });
    }
    if (setting === 'f16-pool') {
      const s = timed('storage', fullF16);
      out.set(`kv:${setting}:full`, { ...s, klToF32: s.kl, top1ToF32: s.top1 });
    }
  }
  return out;
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
function crossCutCase(cpu: CpuModel, plainCase: Case, bosCase: Case, specs: readonly MethodSpec[], plan: QualityPlan): Map<string, Scored> {
  const q = bosCase.question.length;
  const chunkTokens = bosCase.tokens.length - bosCase.prefix.length - q;
  const out = new Map<string, Scored>();
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
 * ratio (the GPU selects its own tokens), and on the plain cut naive reuse of chunks computed after
 * the lead-in, each compared after the question with the CPU's numbers. When the GPU's KV pool is
 * f16, each is also compared with the CPU's f16-pool emulation (chunks and every written row
 * rounded to f16; CacheBlend with the CPU's f32 selection).
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
  leadIn: number[],
): Promise<GpuCheckRow[]> {
  const { prefix, chunks, question } = parts;
  const q = question.length;
  const f16 = gpu.kvDtype === 'f16';
  const round: CpuLinkOptions = { afterToken: roundRowF16 };
  const withLeadIn = variant === 'plain' && leadIn.length > 0;
  const handles: ChunkKV[] = [];
  const leadHandles: ChunkKV[] = [];
  for (const ch of chunks) handles.push(await gpu.computeChunk(ch.tokens));
  if (withLeadIn) for (const ch of chunks) leadHandles.push(await gpu.computeChunk(ch.tokens, undefined, leadIn));
  const rows: GpuCheckRow[] = [];
  const compare = async (label: string, cpuLogits: Float32Array, cpuF16: (() => Float32Array) | undefined, selectionDiff?: number) => {
    const g = await gpu.readLogits();
    const row: GpuCheckRow = { prompt, size, variant, label, klCpuGpu: klDivergence(cpuLogits, g), top1Equal: greedy(g) === greedy(cpuLogits), selectionDiff };
    if (f16 && cpuF16) row.klCpuF16Gpu = klDivergence(cpuF16(), g);
    rows.push(row);
  };
  const cpuLink = (cs: CpuChunkKV[], recompute: number[][], opts: CpuLinkOptions = {}) => cpuPrefillLinked(cpu, { prefix, chunks: cs, question, recompute }, opts)[q - 1];
  const f16Chunks = (context: number[]) => chunks.map((ch) => cpuComputeChunk(cpu, ch.tokens, context, round));
  try {
    await gpu.beginSequence();
    await gpu.prefill(c.tokens, GREEDY);
    cpu.reset();
    await compare('full', cpu.forward(c.tokens), () => {
      cpu.reset();
      return continueWith(cpu, c.tokens, round).at(-1)!;
    });
    const k = 4;
    const ratio = plan.blendRatios[Math.floor(plan.blendRatios.length / 2)];
    for (const [label, rule, cpuSet] of [
      ['naive', { k: 0 }, attnlinkIndices(chunks, 0)],
      [`attnlink k=${k}`, { k }, attnlinkIndices(chunks, k)],
      [`cacheblend ${ratio}`, { blend: { ratio, layer: plan.blendLayer } }, selectByDeviation(c.deviation, ratio)],
    ] as const) {
      const r = await gpu.prefillLinked({ prefix, chunks: handles, question, ...rule }, GREEDY);
      const recompute = cpuSet.map((x) => [...x]);
      const cpuLogits = cpuLink(chunks, recompute);
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
      await compare(label, cpuLogits, () => cpuLink(f16Chunks([]), recompute, round), diff);
    }
    if (withLeadIn) {
      await gpu.prefillLinked({ prefix, chunks: leadHandles, question, k: 0 }, GREEDY);
      const none = attnlinkIndices(chunks, 0);
      const cpuLogits = cpuLink(chunks.map((ch) => cpuComputeChunk(cpu, ch.tokens, leadIn)), none);
      await compare('lead-in naive', cpuLogits, () => cpuLink(f16Chunks(leadIn), none, round));
    }
  } finally {
    await gpu.beginSequence();
    for (const h of [...handles, ...leadHandles]) h.release();
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

/** The context mode CONTEXT_RULE picks from the paired rows, and a line saying why. */
function chooseContext(rows: readonly PairedRow[], plan: QualityPlan): { mode: ChunkContextMode; reason: string } {
  const labels = ['naive', ...plan.contexts.ks.slice(0, 1).map((k) => `attnlink k=${k}`)];
  const ranked = labels[labels.length - 1];
  const ci = (r: PairedRow | undefined) => (r ? `[${r.stats.ciLow.toExponential(2)}, ${r.stats.ciHigh.toExponential(2)}]` : 'not run');
  const parts: string[] = [];
  let best: { mode: ChunkContextMode; mean: number } | undefined;
  for (const mode of plan.contexts.modes) {
    const of = (label: string) => rows.find((r) => r.size === 'all' && r.setting === mode && r.label === label);
    const ok = labels.every((l) => (of(l)?.stats.ciHigh ?? Infinity) < 0);
    parts.push(`${mode} ${ok ? 'qualifies' : 'does not qualify'} (${labels.map((l) => `${l} Δ 95% CI ${ci(of(l))}`).join(', ')})`);
    const m = of(ranked)?.stats.meanOther ?? Infinity;
    if (ok && (!best || m < best.mean)) best = { mode, mean: m };
  }
  if (plan.contexts.modes.length === 0) return { mode: 'none', reason: 'no context mode was measured' };
  return { mode: best?.mode ?? 'none', reason: `${parts.join('; ')}${best ? `; lowest mean KL at ${ranked}: ${best.mode}` : '; none qualifies, so none'}` };
}
