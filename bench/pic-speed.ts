// Time to first token of a request made of cached chunks: full prefill of every token, against
// naive reuse (k = 0) and AttnLink (recompute the first k tokens of each chunk). The chunks are
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
}

export interface SpeedRow {
  model: string;
  chunks: number;
  chunkLength: number;
  promptTokens: number;
  k: number;
  fullMs: number;
  naiveMs: number;
  attnlinkMs: number;
  /** full / method: how many times sooner the first token comes. */
  fullOverNaive: number;
  fullOverAttnlink: number;
  /** Tokens the GPU runs for each request. */
  fullComputed: number;
  naiveComputed: number;
  attnlinkComputed: number;
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
  const rows: SpeedRow[] = [];
  const skipped: SpeedSkip[] = [];
  const fits = (n: number, len: number) => 1 + n * len + plan.questionTokens <= Math.min(plan.maxPromptTokens, model.maxContext);

  // Warm-up: pipelines and first touches are paid once, outside every timed request.
  const warm = await model.computeChunk(randomTokens(16, vocab, rand));
  await model.beginSequence();
  await model.prefill([bos, ...warm.tokens, ...question], GREEDY);
  await model.prefillLinked({ prefix: [bos], chunks: [warm, warm], question, k: 2 }, GREEDY);
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
      const times = { full: [] as number[], naive: [] as number[], attnlink: [] as number[] };
      const computed = { full: all.length, naive: 0, attnlink: 0 };
      for (let r = 0; r < plan.repeats; r++) {
        await model.beginSequence();
        let t0 = performance.now();
        await model.prefill(all, GREEDY);
        times.full.push(performance.now() - t0);
        for (const [m, k] of [['naive', 0], ['attnlink', plan.k]] as const) {
          // prefillLinked starts its own sequence; release the previous one first, off the clock.
          await model.beginSequence();
          t0 = performance.now();
          const { stats } = await model.prefillLinked({ prefix: [bos], chunks, question, k }, GREEDY);
          times[m].push(performance.now() - t0);
          computed[m] = stats.computed + stats.recomputed;
        }
      }
      const row: SpeedRow = {
        model: name,
        chunks: n,
        chunkLength: len,
        promptTokens: all.length,
        k: plan.k,
        fullMs: medianOf(times.full),
        naiveMs: medianOf(times.naive),
        attnlinkMs: medianOf(times.attnlink),
        fullOverNaive: 0,
        fullOverAttnlink: 0,
        fullComputed: computed.full,
        naiveComputed: computed.naive,
        attnlinkComputed: computed.attnlink,
      };
      row.fullOverNaive = row.fullMs / row.naiveMs;
      row.fullOverAttnlink = row.fullMs / row.attnlinkMs;
      rows.push(row);
      log(
        `${name} ${n}×${len} (${all.length} tokens): full ${row.fullMs.toFixed(0)} ms, naive ${row.naiveMs.toFixed(0)} ms (${row.fullOverNaive.toFixed(1)}×), attnlink k=${plan.k} ${row.attnlinkMs.toFixed(0)} ms (${row.fullOverAttnlink.toFixed(1)}×)`,
      );
    }
    for (const c of pool) c.release();
  }
  return { rows, skipped };
}
