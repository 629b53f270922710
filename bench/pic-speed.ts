// Time to first token of a request made of cached chunks: full prefill of every token, against
// prefix caching (an earlier prompt over the same chunks, in the same order or reversed), naive
// reuse (k = 0), AttnLink (recompute the first k tokens of each chunk) and CacheBlend-style
// selective recompute (probe the first layers, recompute the `ratio` most deviating tokens). The chunks are
// computed before the clock starts (cache hits); only the request itself is timed, from the call
// to the sampled id read back on the host.
import type { ChunkKV, GpuModel } from '../src/model/gpu-model.ts';
import { GREEDY, seededRandom } from './pic-quality.ts';

export interface SpeedPlan {
  chunkCounts: readonly number[];
  chunkLengths: readonly number[];
  /** Configurations whose prompt (BOS + chunks + question) would exceed this are skipped. */
  maxPromptTokens: number;
  questionTokens: number;
  /** Timed repetitions of each request; the median is reported. */
  repeats: number;
  k: number;
  /** Share of chunk tokens cacheblend recomputes. */
  ratio: number;
}

/** The methods timed against full prefill, in table order. */
export const SPEED_METHODS = ['prefix-same', 'prefix-reordered', 'naive', 'attnlink', 'cacheblend'] as const;
export type SpeedMethod = (typeof SPEED_METHODS)[number];

export interface SpeedRow {
  model: string;
  chunks: number;
  chunkLength: number;
  promptTokens: number;
  k: number;
  ratio: number;
  fullMs: number;
  /** Full prefill runs every prompt token. */
  fullComputed: number;
  /**
   * Per method: median time to first token, full / method (how many times sooner the first token
   * comes), and the tokens the GPU runs through every layer (cacheblend also runs `probed` chunk
   * tokens through its first layers).
   */
  methods: Record<SpeedMethod, { ms: number; fullOver: number; computed: number; probed?: number }>;
}

export interface SpeedSkip {
  model: string;
  chunks: number;
  chunkLength: number;
  reason: string;
}

function medianOf(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Random ordinary token ids (none of the first `reserved` ids, which hold BOS/EOS/specials). */
function randomTokens(n: number, vocab: number, rand: () => number, reserved = 3): number[] {
  return Array.from({ length: n }, () => reserved + Math.floor(rand() * (vocab - reserved)));
}

export async function runSpeed(
  model: GpuModel,
  name: string,
  bos: number,
  plan: SpeedPlan,
  log: (s: string) => void,
): Promise<{ rows: SpeedRow[]; skipped: SpeedSkip[] }> {
  const vocab = model.config.vocabSize;
  const rand = seededRandom(4242);
  const question = randomTokens(plan.questionTokens, vocab, rand);
  const otherQuestion = randomTokens(plan.questionTokens, vocab, rand);
  const rows: SpeedRow[] = [];
  const skipped: SpeedSkip[] = [];
  const fits = (n: number, len: number) => 1 + n * len + plan.questionTokens <= Math.min(plan.maxPromptTokens, model.maxContext);

  // Warm-up: pipelines and first touches are paid once, outside every timed request.
  const warm = await model.computeChunk(randomTokens(16, vocab, rand));
  await model.beginSequence();
  await model.prefill([bos, ...warm.tokens, ...question], GREEDY);
  await model.prefillLinked({ prefix: [bos], chunks: [warm, warm], question, k: 2 }, GREEDY);
  await model.prefillLinked({ prefix: [bos], chunks: [warm, warm], question, blend: { ratio: 0.5 } }, GREEDY);
  warm.release();

  for (const len of plan.chunkLengths) {
    const counts = plan.chunkCounts.filter((n) => fits(n, len));
    for (const n of plan.chunkCounts.filter((c) => !fits(c, len))) {
      skipped.push({ model: name, chunks: n, chunkLength: len, reason: `prompt of ${1 + n * len + plan.questionTokens} tokens is over this run's cap of ${Math.min(plan.maxPromptTokens, model.maxContext)}` });
    }
    if (counts.length === 0) continue;
    const pool: ChunkKV[] = [];
    for (let i = 0; i < Math.max(...counts); i++) pool.push(await model.computeChunk(randomTokens(len, vocab, rand)));
    for (const n of counts) {
      const chunks = pool.slice(0, n);
      const all = [bos, ...chunks.flatMap((c) => c.tokens), ...question];
      // The prompts a prefix cache would hold from an earlier request over the same chunks: in the
      // same order with another question (prefix caching's best case), and in reverse order.
      const earlier = {
        'prefix-same': [bos, ...chunks.flatMap((c) => c.tokens), ...otherQuestion],
        'prefix-reordered': [bos, ...[...chunks].reverse().flatMap((c) => c.tokens), ...question],
      };
      const held: Partial<Record<SpeedMethod, { kv: ChunkKV; reuse: number }>> = {};
      for (const [m, tokens] of Object.entries(earlier) as [SpeedMethod, number[]][]) {
        await model.beginSequence();
        await model.prefill(tokens, GREEDY);
        let reuse = 0;
        while (reuse < all.length - 1 && tokens[reuse] === all[reuse]) reuse++;
        held[m] = { kv: model.holdPrompt(tokens), reuse };
      }
      const times: Record<'full' | SpeedMethod, number[]> = { full: [], 'prefix-same': [], 'prefix-reordered': [], naive: [], attnlink: [], cacheblend: [] };
      const computed: Record<SpeedMethod, number> = { 'prefix-same': 0, 'prefix-reordered': 0, naive: 0, attnlink: 0, cacheblend: 0 };
      let probed = 0;
      for (let r = 0; r < plan.repeats; r++) {
        // Each request starts its own sequence; the previous one is released first, off the clock.
        await model.beginSequence();
        let t0 = performance.now();
        await model.prefill(all, GREEDY);
        times.full.push(performance.now() - t0);
        for (const m of SPEED_METHODS) {
          await model.beginSequence();
          if (m === 'prefix-same' || m === 'prefix-reordered') {
            const h = held[m]!;
            t0 = performance.now();
            await model.prefillFromPrefix(h.kv, h.reuse, all, GREEDY);
            times[m].push(performance.now() - t0);
            computed[m] = all.length - h.reuse;
            continue;
          }
          const rule = m === 'cacheblend' ? { blend: { ratio: plan.ratio } } : { k: m === 'naive' ? 0 : plan.k };
          t0 = performance.now();
          const { stats } = await model.prefillLinked({ prefix: [bos], chunks, question, ...rule }, GREEDY);
          times[m].push(performance.now() - t0);
          computed[m] = stats.computed + stats.recomputed;
          if (m === 'cacheblend') probed = stats.probed ?? 0;
        }
      }
      for (const h of Object.values(held)) h.kv.release();
      const fullMs = medianOf(times.full);
      const methods = Object.fromEntries(
        SPEED_METHODS.map((m) => {
          const ms = medianOf(times[m]);
          return [m, { ms, fullOver: fullMs / ms, computed: computed[m], ...(m === 'cacheblend' ? { probed } : {}) }];
        }),
      ) as SpeedRow['methods'];
      const row: SpeedRow = { model: name, chunks: n, chunkLength: len, promptTokens: all.length, k: plan.k, ratio: plan.ratio, fullMs, fullComputed: all.length, methods };
      rows.push(row);
      log(`${name} ${n}×${len} (${all.length} tokens): full ${fullMs.toFixed(0)} ms; ${SPEED_METHODS.map((m) => `${m} ${methods[m].ms.toFixed(0)} ms (${methods[m].fullOver.toFixed(1)}×)`).join(', ')}`);
    }
    for (const c of pool) c.release();
  }
  return { rows, skipped };
}
