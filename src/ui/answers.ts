// What the demo keeps of an answer for the TTFT chart (and across visits, in localStorage): the
// numbers of a GenerationResult, with its chunks counted by where their KV came from. No Lit.
import type { ChunkSource, GenerationResult } from '../api.ts';
import type { AnswerRecord } from './events.ts';

/** The record of answer number `n` (1-based), linked with `method`. */
export function answerRecord(n: number, method: AnswerRecord['method'], r: GenerationResult): AnswerRecord {
  const sources: Record<ChunkSource, number> = { gpu: 0, memory: 0, store: 0, computed: 0 };
  for (const c of r.chunks ?? []) sources[c.source]++;
  return {
    n,
    method,
    ttftMs: r.ttftMs,
    promptTokens: r.promptTokens.length,
    reusedTokens: r.reusedTokens ?? 0,
    recomputedTokens: r.recomputedTokens ?? 0,
    // A result without the engine's count (a plain prompt) computed every prompt token.
    computedTokens: r.computedTokens ?? r.promptTokens.length,
    sources,
    finishReason: r.finishReason,
  };
}
