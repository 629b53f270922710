// The GPU's linking (GpuModel.prefillLinked) against the CPU reference's (cpu-link.ts) on real
// weights: same chunks, same recompute sets, same logits, and the same tokens picked by CacheBlend.
// The quality benchmark measures methods on the CPU reference; this is what makes its numbers the
// engine's numbers.
import { describe, expect, it } from 'vitest';
import { FileSource } from '../../src/gguf/node-file-source.ts';
import { selectByDeviation } from '../../src/kv/cacheblend.ts';
import { attnlinkIndices, cpuBlendDeviation, cpuComputeChunk, cpuPrefillLinked } from '../../src/model/cpu-link.ts';
import { CpuModel } from '../../src/model/cpu-reference.ts';
import { createTokenizer } from '../../src/tokenizer/index.ts';
import { testContext } from '../helpers/gpu.ts';
import { GREEDY, loadGpuModel } from '../helpers/model.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';

const stories = sharedFile('models/stories260K.gguf');

function relDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / s;
}

describe.skipIf(!stories)(stories ? 'GPU linking against the CPU reference on stories260K' : missingShared('models/stories260K.gguf'), () => {
  it('naive, AttnLink and CacheBlend give the CPU reference logits, and CacheBlend picks the same tokens', async () => {
    const ctx = await testContext();
    const { model, file } = await loadGpuModel(ctx, stories!, 256, 64);
    const cpu = await CpuModel.load(await FileSource.open(stories!), file, 256);
    const tok = createTokenizer(file.metadata);
    const texts = [
      'Lily had a red ball. She liked to throw it high in the sky.',
      'Tom was a big dog. He liked to run in the park with his friends.',
      'The sun was hot, so they sat under a tree and ate cake.',
    ];
    const chunkTokens = texts.map((t) => tok.encode(t));
    const prefix = [tok.bosId];
    const question = tok.encode('One day, Lily and Tom');
    const gpuChunks = [];
    for (const t of chunkTokens) gpuChunks.push(await model.computeChunk(t));
    const cpuChunks = chunkTokens.map((t) => cpuComputeChunk(cpu, t));
    const total = chunkTokens.reduce((n, t) => n + t.length, 0);

    const cases: { name: string; rule: Parameters<typeof model.prefillLinked>[0]; indices: () => number[][] }[] = [
      { name: 'naive', rule: { prefix, chunks: gpuChunks, question, k: 0 }, indices: () => attnlinkIndices(cpuChunks, 0) },
      { name: 'attnlink k=3', rule: { prefix, chunks: gpuChunks, question, k: 3 }, indices: () => attnlinkIndices(cpuChunks, 3) },
      {
        name: 'cacheblend 0.2',
        rule: { prefix, chunks: gpuChunks, question, blend: { ratio: 0.2 } },
        indices: () => selectByDeviation(cpuBlendDeviation(cpu, prefix, cpuChunks), 0.2),
      },
    ];
    const logits: Float32Array[] = [];
    for (const c of cases) {
      const g = await model.prefillLinked(c.rule, GREEDY);
      const gpuLogits = await model.readLogits();
      const indices = c.indices();
      expect(g.recomputed, c.name).toEqual(indices);
      const cpuLogits = cpuPrefillLinked(cpu, { prefix, chunks: cpuChunks, question, recompute: indices }).at(-1)!;
      expect(relDiff(gpuLogits, cpuLogits), c.name).toBeLessThan(1e-4);
      logits.push(cpuLogits);
    }
    expect(cases[2].indices().flat().length).toBe(Math.ceil(0.2 * total));
    // The three methods are different computations.
    expect(relDiff(logits[0], logits[1])).toBeGreaterThan(1e-3);
    expect(relDiff(logits[0], logits[2])).toBeGreaterThan(1e-3);
    for (const c of gpuChunks) c.release();
    model.destroy();
  });
});
