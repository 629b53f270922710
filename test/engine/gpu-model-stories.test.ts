// The GPU forward pass on real weights (stories260K) against llama2.c's published greedy sample
// and the golden ids of test/fixtures/stories260K-golden.json.
import { describe, expect, it } from 'vitest';
import { missingShared, sharedFile } from '../helpers/shared.ts';
import { testContext } from '../helpers/gpu.ts';
import golden from '../fixtures/stories260K-golden.json' with { type: 'json' };
import { gpuGreedy, loadGpuModel, spmPiecesToText } from '../helpers/model.ts';

const stories = sharedFile('models/stories260K.gguf');

describe.skipIf(!stories)(stories ? 'GPU model on stories260K' : missingShared('models/stories260K.gguf'), () => {
  it('greedy from BOS reproduces the llama2.c sample', async () => {
    const ctx = await testContext();
    const { model, file } = await loadGpuModel(ctx, stories!);
    const ids = await gpuGreedy(model, [1], 40);
    expect(spmPiecesToText(file, ids)).toMatch(/^ Once upon a time, there was a little girl named Lily\. She loved to play outside in the park\./);
    expect(ids).toEqual(golden.fromBos.tokens.slice(0, 40));
    // Submitting each decode step before the previous id is read back changes nothing.
    expect(await gpuGreedy(model, [1], 40, true)).toEqual(ids);
    expect(model.length).toBe(40);
    // A speculated step left uncollected is discarded by the next sequence.
    await model.beginSequence();
    await model.prefill([1], { temperature: 0, topK: 0, topP: 1, seed: 0 });
    await model.decode({ temperature: 0, topK: 0, topP: 1, seed: 0 }, true);
    expect(await gpuGreedy(model, [1], 10, true)).toEqual(ids.slice(0, 10));
    model.destroy();
  });

  it('a prompt prefilled in several passes gives the same continuation as one pass', async () => {
    const ctx = await testContext();
    const one = await loadGpuModel(ctx, stories!, 256, 256);
    const many = await loadGpuModel(ctx, stories!, 256, 7); // 7 tokens per pass: 3 passes for 20 tokens
    const prompt = [1, ...(await gpuGreedy(one.model, [1], 19))];
    const a = await gpuGreedy(one.model, prompt, 12);
    const b = await gpuGreedy(many.model, prompt, 12);
    expect(b).toEqual(a);
    const la = await one.model.readLogits();
    const lb = await many.model.readLogits();
    let maxDiff = 0;
    for (let i = 0; i < la.length; i++) maxDiff = Math.max(maxDiff, Math.abs(la[i] - lb[i]));
    expect(maxDiff).toBeLessThan(1e-3);
    one.model.destroy();
    many.model.destroy();
  });
});
