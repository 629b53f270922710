// Position-independent chunk KV: chunks computed alone, placed at any position by reference,
// AttnLink recompute. Invariants on real weights (stories260K).
import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import type { ChunkKV, GpuModel } from '../../src/model/gpu-model.ts';
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

async function fullLogits(model: GpuModel, tokens: number[]): Promise<{ next: number; logits: Float32Array }> {
  await model.beginSequence();
  const next = await model.prefill(tokens, GREEDY);
  return { next, logits: await model.readLogits() };
}

async function linkedLogits(model: GpuModel, prefix: number[], chunks: ChunkKV[], question: number[], k: number) {
  const r = await model.prefillLinked({ prefix, chunks, question, k }, GREEDY);
  return { ...r, logits: await model.readLogits() };
}

/** The bytes of every layer's K and V pool rows a chunk's pages hold. */
async function chunkPageBytes(ctx: GpuContext, model: GpuModel, chunk: ChunkKV): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  const rowBytes = model.config.nKvHeads * model.config.headDim * 4;
  for (const layer of model.kv.layers) {
    for (const pool of [layer.k, layer.v]) {
      for (const s of chunk.spans) {
        const off = (s.page * 16 + (s.slotOffset ?? 0)) * rowBytes;
        const size = s.nTokens * rowBytes;
        const staging = ctx.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        const enc = ctx.device.createCommandEncoder();
        enc.copyBufferToBuffer(pool, off, staging, 0, size);
        ctx.device.queue.submit([enc.finish()]);
        await staging.mapAsync(GPUMapMode.READ);
        out.push(new Uint8Array(staging.getMappedRange().slice(0)));
        staging.destroy();
      }
    }
  }
  return out;
}

describe.skipIf(!stories)(stories ? 'chunk linking on stories260K' : missingShared('models/stories260K.gguf'), () => {
  let shared: ReturnType<typeof load> | undefined;
  const setup = () => (shared ??= load());
  const load = async () => {
    const ctx = await testContext();
    const { model, file } = await loadGpuModel(ctx, stories!, 256, 64);
    const tok = createTokenizer(file.metadata);
    const enc = (t: string) => tok.encode(t);
    return {
      ctx,
      model,
      bos: [tok.bosId],
      a: enc('Lily had a red ball. She liked to throw it high in the sky.'),
      b: enc('Tom was a big dog. He liked to run in the park with his friends.'),
      q: enc('One day, Lily and Tom'),
    };
  };

  it('one chunk at position 0 reproduces full prefill', async () => {
    const { model, a, q } = await setup();
    const full = await fullLogits(model, [...a, ...q]);
    const chunk = await model.computeChunk(a);
    const linked = await linkedLogits(model, [], [chunk], q, 0);
    expect(linked.stats).toEqual({ reused: a.length, recomputed: 0, computed: q.length });
    expect(linked.next).toBe(full.next);
    expect(relDiff(linked.logits, full.logits)).toBeLessThan(1e-4);
    chunk.release();
  });

  it('AttnLink with k ≥ chunk length reproduces full prefill', async () => {
    const { model, bos, a, b, q } = await setup();
    const full = await fullLogits(model, [...bos, ...a, ...b, ...q]);
    const ca = await model.computeChunk(a);
    const cb = await model.computeChunk(b);
    const linked = await linkedLogits(model, bos, [ca, cb], q, 1000);
    expect(linked.stats).toEqual({ reused: 0, recomputed: a.length + b.length, computed: 1 + q.length });
    expect(relDiff(linked.logits, full.logits)).toBeLessThan(1e-4);
    // Naive reuse (k = 0) is not the same computation: the second chunk never saw the first.
    const naive = await linkedLogits(model, bos, [ca, cb], q, 0);
    expect(relDiff(naive.logits, full.logits)).toBeGreaterThan(1e-3);
    ca.release();
    cb.release();
  });

  it('the same chunk at two offsets: its pages stay untouched and both outputs are right', async () => {
    const { ctx, model, bos, a, b, q } = await setup();
    const chunk = await model.computeChunk(a);
    const before = await chunkPageBytes(ctx, model, chunk);
    for (const prefix of [bos, [...bos, ...b]]) {
      const full = await fullLogits(model, [...prefix, ...a, ...q]);
      const linked = await linkedLogits(model, prefix, [chunk], q, 1000);
      expect(relDiff(linked.logits, full.logits)).toBeLessThan(1e-4);
      const naive = await linkedLogits(model, prefix, [chunk], q, 0);
      expect(naive.stats.reused).toBe(a.length);
    }
    expect(await chunkPageBytes(ctx, model, chunk)).toEqual(before);
    chunk.release();
  });

  it('reordering chunks changes the result as the order does, and nothing else', async () => {
    const { model, bos, a, b, q } = await setup();
    const ca = await model.computeChunk(a);
    const cb = await model.computeChunk(b);
    const ab = await linkedLogits(model, bos, [ca, cb], q, 1000);
    const ba = await linkedLogits(model, bos, [cb, ca], q, 1000);
    expect(relDiff(ab.logits, (await fullLogits(model, [...bos, ...a, ...b, ...q])).logits)).toBeLessThan(1e-4);
    expect(relDiff(ba.logits, (await fullLogits(model, [...bos, ...b, ...a, ...q])).logits)).toBeLessThan(1e-4);
    expect(relDiff(ab.logits, ba.logits)).toBeGreaterThan(1e-3);
    // Decoding continues from a linked sequence like from any other.
    const next = await model.decode(GREEDY);
    expect(next).toBeGreaterThanOrEqual(0);
    expect(model.length).toBe(1 + a.length + b.length + q.length + 1);
    ca.release();
    cb.release();
  });

  it('cacheblend: ratio 1 reproduces full prefill, ratio 0 is naive, ratio r recomputes ceil(r · chunk tokens) and equals recomputing them by index', async () => {
    const { model, bos, a, b, q } = await setup();
    const full = await fullLogits(model, [...bos, ...a, ...b, ...q]);
    const ca = await model.computeChunk(a);
    const cb = await model.computeChunk(b);
    const all = await model.prefillLinked({ prefix: bos, chunks: [ca, cb], question: q, blend: { ratio: 1 } }, GREEDY);
    expect(all.stats).toMatchObject({ reused: 0, recomputed: a.length + b.length, probed: a.length + b.length });
    expect(relDiff(await model.readLogits(), full.logits)).toBeLessThan(1e-4);
    const part = await model.prefillLinked({ prefix: bos, chunks: [ca, cb], question: q, blend: { ratio: 0.3 } }, GREEDY);
    const n = Math.ceil(0.3 * (a.length + b.length));
    expect(part.stats.recomputed).toBe(n);
    expect(part.recomputed.flat().length).toBe(n);
    const partLogits = await model.readLogits();
    // Recomputing the same tokens by explicit indices is the same computation.
    await model.prefillLinked({ prefix: bos, chunks: [ca, cb], question: q, indices: part.recomputed }, GREEDY);
    expect(relDiff(await model.readLogits(), partLogits)).toBeLessThan(1e-6);
    // And it lands between naive reuse and full prefill.
    const naive = await linkedLogits(model, bos, [ca, cb], q, 0);
    const none = await model.prefillLinked({ prefix: bos, chunks: [ca, cb], question: q, blend: { ratio: 0 } }, GREEDY);
    expect(none.stats).toMatchObject({ recomputed: 0, probed: 0 });
    expect(relDiff(await model.readLogits(), naive.logits)).toBeLessThan(1e-6);
    const err = (x: Float32Array) => relDiff(x, full.logits);
    expect(err(partLogits)).toBeLessThan(err(naive.logits));
    await expect(model.prefillLinked({ prefix: bos, chunks: [ca, cb], question: q, indices: [[3, 1], []] }, GREEDY)).rejects.toThrow(/must increase/);
    ca.release();
    cb.release();
  });

  it('prefix: a held prompt\'s pages give exactly the full prefill logits of a longer prompt', async () => {
    const { model, bos, a, b, q } = await setup();
    await model.beginSequence();
    await model.prefill([...bos, ...a], GREEDY);
    const held = model.holdPrompt([...bos, ...a]);
    await model.decode(GREEDY); // writes after the held tokens, into the same tail page
    const tokens = [...bos, ...a, ...b, ...q];
    const full = await fullLogits(model, tokens);
    const next = await model.prefillFromPrefix(held, 1 + a.length, tokens, GREEDY);
    expect(next).toBe(full.next);
    expect(relDiff(await model.readLogits(), full.logits)).toBeLessThan(1e-5);
    expect(model.length).toBe(tokens.length);
    await expect(model.prefillFromPrefix(held, 2, [...bos, ...b], GREEDY)).rejects.toThrow(/differs/);
    held.release();
  });
});
