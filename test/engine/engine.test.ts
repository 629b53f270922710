// The engine end to end on Node: text in, streamed text out, sampling options, stop strings,
// cancellation, metrics, and typed errors for bad models and bad requests.
import { describe, expect, it } from 'vitest';
import { AbortedError, InvalidRequestError, UnsupportedModelError } from '../../src/errors.ts';
import { Engine } from '../../src/engine/engine.ts';
import { FileSource } from '../../src/gguf/node-file-source.ts';
import { MemorySource } from '../../src/gguf/source.ts';
import { GGMLType } from '../../src/gguf/quant.ts';
import { gguf, metadataFromFile, writeGGUF } from '../../src/gguf/writer.ts';
import { parseGGUF } from '../../src/gguf/reader.ts';
import { makeSyntheticModel } from '../../src/model/synthetic.ts';
import { testContext } from '../helpers/gpu.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';

const stories = sharedFile('models/stories260K.gguf');

async function storiesEngine(): Promise<Engine> {
  const ctx = await testContext();
  const engine = new Engine(ctx.device, { shaders: ctx.shaders, features: ctx.features, adapterInfo: 'test' });
  await engine.load(await FileSource.open(stories!), { maxContext: 256 });
  return engine;
}

describe.skipIf(!stories)(stories ? 'engine on stories260K' : missingShared('models/stories260K.gguf'), () => {
  it('streams text whose deltas add up to the result, with metrics', async () => {
    const engine = await storiesEngine();
    const progress: string[] = [];
    const info = await engine.load(await FileSource.open(stories!), { maxContext: 256, onProgress: (p) => progress.push(p.phase) });
    expect(info).toMatchObject({ architecture: 'llama', nLayers: 5, dim: 64, vocabSize: 512, weightType: 'F32' });
    expect(progress).toContain('weights');
    expect(progress.at(-1)).toBe('ready');
    let streamed = '';
    const r = await engine.complete('Once upon a time', { maxTokens: 24 }, (e) => (streamed += e.text));
    expect(r.promptTokens[0]).toBe(1); // BOS
    expect(r.tokens.length).toBe(24);
    expect(streamed).toBe(r.text);
    expect(r.text.startsWith(', there was a little girl named Lily.')).toBe(true);
    expect(r.finishReason).toBe('length');
    expect(r.ttftMs).toBeGreaterThan(0);
    expect(r.prefillTokPerS).toBeGreaterThan(0);
    expect(r.decodeTokPerS).toBeGreaterThan(0);
  });

  it('generated text keeps the space its first token starts with', async () => {
    const engine = await storiesEngine();
    const r = await engine.complete('Once upon a time,', { maxTokens: 3 });
    expect(r.text.startsWith(' there was')).toBe(true);
  });

  it('documents: chunks are computed once, reused by later requests, and k ≥ chunk length equals full', async () => {
    const engine = await storiesEngine();
    const input = {
      texts: ['Lily had a red ball. She liked to throw it high in the sky.\n\nOne day the ball fell in the pond.', 'Tom was a big dog. He liked to run in the park.'],
      question: 'Then Lily and Tom',
    };
    const full = await engine.complete(input, { maxTokens: 12, method: 'full' });
    expect(full.computedTokens).toBe(full.promptTokens.length);
    expect(full.reusedTokens).toBe(0);
    const first = await engine.complete(input, { maxTokens: 12, method: 'attnlink', k: 2 });
    expect(first.chunks!.length).toBeGreaterThanOrEqual(2);
    expect(first.chunks!.every((c) => !c.cached)).toBe(true);
    expect(first.reusedTokens).toBe(0);
    const second = await engine.complete(input, { maxTokens: 12, method: 'attnlink', k: 2 });
    expect(second.chunks!.every((c) => c.cached)).toBe(true);
    expect(second.chunks!.map((c) => c.id)).toEqual(first.chunks!.map((c) => c.id));
    expect(second.recomputedTokens).toBe(2 * second.chunks!.length);
    expect(second.reusedTokens! + second.recomputedTokens! + second.computedTokens!).toBe(second.promptTokens.length);
    expect(second.tokens).toEqual(first.tokens);
    const exact = await engine.complete(input, { maxTokens: 12, method: 'attnlink', k: 10_000 });
    expect(exact.tokens).toEqual(full.tokens);
    expect(exact.promptTokens).toEqual(full.promptTokens);
  });

  it('prefix: a later prompt reuses the longest kept prefix exactly; other methods need documents', async () => {
    const engine = await storiesEngine();
    const story = 'Once upon a time, there was a little girl named Lily. She loved to play outside.';
    const full = await engine.complete(`${story} One day`, { maxTokens: 10, method: 'full' });
    const first = await engine.complete(story, { maxTokens: 4, method: 'prefix' });
    expect(first.reusedTokens).toBe(0);
    const second = await engine.complete(`${story} One day`, { maxTokens: 10, method: 'prefix' });
    const kept = engine.tokenize(story, { addBos: true });
    expect(second.promptTokens.slice(0, kept.length)).toEqual(kept);
    expect(second.reusedTokens).toBe(kept.length);
    expect(second.computedTokens).toBe(second.promptTokens.length - kept.length);
    expect(second.tokens).toEqual(full.tokens);
    // The same prompt again: everything but its last token is reused (one token runs to sample from).
    const again = await engine.complete(`${story} One day`, { maxTokens: 10, method: 'prefix' });
    expect(again.reusedTokens).toBe(again.promptTokens.length - 1);
    expect(again.tokens).toEqual(full.tokens);
    await expect(engine.complete(story, { method: 'attnlink' })).rejects.toThrow(InvalidRequestError);
    await expect(engine.complete({ texts: ['Lily.'], question: 'Tom' }, { method: 'cacheblend', ratio: 2 })).rejects.toThrow(/ratio must be in \[0, 1\]/);
  });

  it('documents: chunks share one BOS by default, or carry their own with chunkBos', async () => {
    const engine = await storiesEngine();
    const input = { texts: ['Lily had a red ball.', 'Tom was a big dog.'], question: 'Then they' };
    const plain = await engine.complete(input, { maxTokens: 2, method: 'naive' });
    const bos = await engine.complete(input, { maxTokens: 2, method: 'naive', chunkBos: true });
    const bosId = engine.tokenizer.bosId;
    const count = (ts: number[]) => ts.filter((t) => t === bosId).length;
    expect(count(bos.promptTokens)).toBe(bos.chunks!.length);
    expect(bos.promptTokens[0]).toBe(bosId);
    expect(count(plain.promptTokens)).toBe(1);
    expect(bos.promptTokens.length).toBe(plain.promptTokens.length + bos.chunks!.length - 1);
    expect(bos.chunks!.map((c) => c.id)).not.toEqual(plain.chunks!.map((c) => c.id));
    expect(await engine.promptTokens(input)).toEqual(plain.promptTokens);
    expect(await engine.promptTokens(input, { chunkBos: true })).toEqual(bos.promptTokens);
  });

  it('stop strings end generation without emitting the stop text', async () => {
    const engine = await storiesEngine();
    const r = await engine.complete('Once upon a time', { maxTokens: 40, stop: ['Lily'] });
    expect(r.finishReason).toBe('stop');
    expect(r.text).toBe(', there was a little girl named ');
  });

  it('seeded sampling is reproducible and the seed matters', async () => {
    const engine = await storiesEngine();
    const opts = { maxTokens: 24, temperature: 1, topK: 40, topP: 0.95 };
    const a = await engine.complete('Once upon a time', { ...opts, seed: 1 });
    const b = await engine.complete('Once upon a time', { ...opts, seed: 1 });
    const c = await engine.complete('Once upon a time', { ...opts, seed: 2 });
    expect(b.tokens).toEqual(a.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
    // top-k 1 is greedy whatever the temperature.
    const g = await engine.complete('Once upon a time', { maxTokens: 12 });
    const k1 = await engine.complete('Once upon a time', { maxTokens: 12, temperature: 1.5, topK: 1, seed: 9 });
    expect(k1.tokens).toEqual(g.tokens);
  });

  it('an aborted signal ends the stream with finishReason aborted, and the engine stays usable', async () => {
    const engine = await storiesEngine();
    const ctrl = new AbortController();
    let n = 0;
    const r = await engine.complete('Once upon a time', { maxTokens: 200, signal: ctrl.signal }, () => {
      if (++n === 5) ctrl.abort();
    });
    expect(r.finishReason).toBe('aborted');
    expect(r.tokens.length).toBe(5);
    const again = await engine.complete('Once upon a time', { maxTokens: 8 });
    expect(again.tokens.length).toBe(8);
    // Already aborted before the start: nothing is generated.
    const pre = new AbortController();
    pre.abort();
    expect((await engine.complete('Once', { maxTokens: 8, signal: pre.signal })).tokens).toEqual([]);
  });

  it('bad requests get typed errors before any GPU work', async () => {
    const engine = await storiesEngine();
    await expect(engine.complete('x', { maxTokens: -1 })).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(engine.complete('x', { topP: 0 })).rejects.toMatchObject({ code: 'bad-top-p' });
    await expect(engine.complete({ tokens: [1, 99999] })).rejects.toMatchObject({ code: 'bad-token' });
    await expect(engine.complete({ tokens: new Array(300).fill(5) })).rejects.toMatchObject({ code: 'prompt-too-long' });
    await expect(engine.complete({ messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ code: 'no-chat-template' });
    // A concurrent second request is refused, not queued silently.
    const first = engine.generate('Once upon a time', { maxTokens: 4 });
    await first.next();
    await expect(engine.complete('x', { maxTokens: 2 })).rejects.toMatchObject({ code: 'busy' });
    while (!(await first.next()).done);
    expect(AbortedError).toBeDefined();
  });
});

describe.skipIf(!stories)(stories ? 'lost GPU device' : missingShared('models/stories260K.gguf'), () => {
  it('a request after the device is lost fails with GPUError device-lost', async () => {
    const ctx = await testContext('plain'); // a device of its own, so destroying it harms no other test
    const engine = new Engine(ctx.device, { shaders: ctx.shaders, features: ctx.features });
    await engine.load(await FileSource.open(stories!), { maxContext: 64 });
    ctx.device.destroy();
    await ctx.device.lost;
    await new Promise((r) => setTimeout(r, 0));
    await expect(engine.complete('Once', { maxTokens: 4 })).rejects.toMatchObject({ name: 'GPUError', code: 'device-lost' });
  });
});

describe('engine load errors', () => {
  it('refuses an unsupported architecture with a typed error', async () => {
    const ctx = await testContext();
    const bytes = makeSyntheticModel({ architecture: 'llama', nLayers: 1, dim: 64, nHeads: 2, nKvHeads: 2, headDim: 32, ffnDim: 64, vocabSize: 300, contextLength: 64, weightType: GGMLType.F32, seed: 1 });
    const file = await parseGGUF(new MemorySource(bytes));
    const meta = metadataFromFile(file, { omit: ['general.architecture'] });
    const renamed = writeGGUF({
      metadata: { ...meta, 'general.architecture': gguf.string('mamba') },
      tensors: [{ name: 'token_embd.weight', shape: [64, 300], type: GGMLType.F32, data: new Uint8Array(64 * 300 * 4) }],
    });
    const engine = new Engine(ctx.device, { shaders: ctx.shaders, features: ctx.features });
    await expect(engine.load(new MemorySource(renamed))).rejects.toMatchObject({ name: 'UnsupportedModelError', code: 'unsupported-architecture' });
  });

  it('names a missing tensor', async () => {
    const ctx = await testContext();
    const bytes = makeSyntheticModel({ architecture: 'llama', nLayers: 2, dim: 64, nHeads: 2, nKvHeads: 2, headDim: 32, ffnDim: 64, vocabSize: 300, contextLength: 64, weightType: GGMLType.Q8_0, seed: 1 });
    const file = await parseGGUF(new MemorySource(bytes));
    const source = new MemorySource(bytes);
    const tensors = [];
    for (const t of file.tensors) {
      if (t.name === 'blk.1.ffn_up.weight') continue;
      tensors.push({ name: t.name, shape: t.shape, type: t.type, data: await source.read(t.offset, t.byteLength) });
    }
    const broken = writeGGUF({ metadata: metadataFromFile(file), tensors });
    const engine = new Engine(ctx.device, { shaders: ctx.shaders, features: ctx.features });
    const err = await engine.load(new MemorySource(broken)).catch((e) => e);
    expect(err).toBeInstanceOf(UnsupportedModelError);
    expect(err.message).toContain('blk.1.ffn_up.weight');
  });
});
