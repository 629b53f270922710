// answerRecord (src/ui/answers.ts): what the TTFT chart keeps of a generation result.
import { describe, expect, it } from 'vitest';
import type { GenerationResult, UsedChunk } from '../../src/engine/types.ts';
import { answerRecord } from '../../src/ui/answers.ts';

const chunk = (source: UsedChunk['source'], index: number): UsedChunk => ({ id: `c${index}`, tokens: 32, cached: source !== 'computed', source, index, text: '' });

const base: GenerationResult = {
  promptTokens: [1, 2, 3, 4, 5, 6, 7],
  tokens: [8, 9],
  text: 'hi',
  finishReason: 'stop',
  ttftMs: 123.4,
  prefillTokPerS: 1000,
  decodeTokPerS: 50,
};

describe('answerRecord', () => {
  it('counts chunks by source and keeps the token numbers', () => {
    const r = answerRecord(3, 'attnlink', {
      ...base,
      reusedTokens: 60,
      recomputedTokens: 16,
      computedTokens: 9,
      chunks: [chunk('gpu', 0), chunk('gpu', 1), chunk('store', 2), chunk('computed', 3), chunk('memory', 4), chunk('gpu', 5)],
    });
    expect(r).toEqual({
      n: 3,
      method: 'attnlink',
      ttftMs: 123.4,
      promptTokens: 7,
      reusedTokens: 60,
      recomputedTokens: 16,
      computedTokens: 9,
      sources: { gpu: 3, store: 1, memory: 1, computed: 1 },
      finishReason: 'stop',
    });
  });

  it('a plain prompt: no chunks, every prompt token computed', () => {
    const r = answerRecord(1, 'full', { ...base, finishReason: 'aborted' });
    expect(r.sources).toEqual({ gpu: 0, memory: 0, store: 0, computed: 0 });
    expect(r.reusedTokens).toBe(0);
    expect(r.recomputedTokens).toBe(0);
    expect(r.computedTokens).toBe(7);
    expect(r.finishReason).toBe('aborted');
  });

  it('a computed count of 0 is kept, not replaced by the prompt length', () => {
    expect(answerRecord(2, 'prefix', { ...base, computedTokens: 0 }).computedTokens).toBe(0);
  });
});
