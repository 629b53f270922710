// Documents read once and kept: the tiered chunk cache (pool, memory, store), persistence across
// engines sharing a store, corrupt records, eviction (pool, decode growth, storage budget, pins),
// BM25 fitting, chat-shaped prompts, lead-in contexts and .kvpack. On a synthetic model, so the
// invariants hold without ../shared.
import { describe, expect, it } from 'vitest';
import { Engine, type EngineOptions } from '../../src/engine/engine.ts';
import { StorageError } from '../../src/errors.ts';
import { parseGGUF } from '../../src/gguf/reader.ts';
import { MemorySource } from '../../src/gguf/source.ts';
import { GGMLType } from '../../src/gguf/quant.ts';
import { gguf, metadataFromFile, writeGGUF } from '../../src/gguf/writer.ts';
import { MemoryStore } from '../../src/kv/memory-store.ts';
import { makeSyntheticModel } from '../../src/model/synthetic.ts';
import type { LoadOptions } from '../../src/engine/types.ts';
import { testContext } from '../helpers/gpu.ts';

const spec = { architecture: 'llama' as const, nLayers: 2, dim: 64, nHeads: 4, nKvHeads: 2, headDim: 16, ffnDim: 128, vocabSize: 384, contextLength: 1024, weightType: GGMLType.F32, seed: 7 };
const modelBytes = makeSyntheticModel(spec);
const otherModelBytes = makeSyntheticModel({ ...spec, seed: 8, name: 'other' });

const texts = {
  fox: 'the quick brown fox jumps over the lazy dog near the river bank.\n\nthe fox then rests under a tall oak tree while the dog sleeps.',
  sea: 'a small boat sails on the calm sea at dawn.\n\nfishermen pull their nets and sing old songs as gulls circle above the water.',
  town: 'in the old town the baker opens his shop early.\n\nthe smell of fresh bread fills every street and the children run to buy rolls.',
};

async function engineOn(store: MemoryStore, load: LoadOptions = {}, opts: Partial<EngineOptions> = {}, bytes = modelBytes): Promise<Engine> {
  const ctx = await testContext();
  const engine = new Engine(ctx.device, { shaders: ctx.shaders, features: ctx.features, adapterInfo: 'test', store, chunks: { targetTokens: 24 }, ...opts });
  await engine.load(new MemorySource(bytes), { maxContext: 512, ...load });
  return engine;
}

async function addAll(engine: Engine): Promise<void> {
  for (const [id, text] of Object.entries(texts)) await engine.documents.add({ id, text });
}

const question = { documents: 'all' as const, question: 'where does the fox rest' };

describe('documents on a synthetic model', () => {
  it('are read once, listed, and answered from the pool, then from the store by another engine, with the same greedy tokens', async () => {
    const store = new MemoryStore();
    const a = await engineOn(store);
    const progress: string[] = [];
    const info = await a.documents.add({ id: 'fox', title: 'Fox', text: texts.fox }, { onProgress: (p) => progress.push(p.phase) });
    expect(info).toMatchObject({ id: 'fox', title: 'Fox', pinned: false, currentModel: true });
    expect(info.chunks).toBeGreaterThanOrEqual(2);
    expect(info.storedChunks).toBe(info.chunks);
    expect(info.computedChunks).toBe(info.chunks);
    expect(progress).toContain('compute');
    expect(progress.at(-1)).toBe('done');
    await a.documents.add({ id: 'sea', text: texts.sea });
    await a.documents.add({ id: 'town', text: texts.town });
    // Adding the same text again computes nothing.
    expect((await a.documents.add({ id: 'fox', title: 'Fox', text: texts.fox })).computedChunks).toBe(0);
    expect((await a.documents.list()).map((d) => d.id)).toEqual(['fox', 'sea', 'town']);

    const first = await a.complete(question, { maxTokens: 8, method: 'naive' });
    expect(first.chunks!.every((c) => c.source === 'gpu' && c.cached)).toBe(true);
    expect(first.chunks!.map((c) => c.document)).toEqual(expect.arrayContaining(['fox', 'sea', 'town']));
    expect(first.reusedTokens).toBe(first.chunks!.reduce((n, c) => n + c.tokens, 0));
    // Each used chunk carries the document text it covers; a document's chunks cover it in order.
    for (const c of first.chunks!) expect(c.text.length > 0 && texts[c.document as keyof typeof texts].includes(c.text)).toBe(true);
    expect(first.chunks!.filter((c) => c.document === 'fox').map((c) => c.text).join('').replace(/\s+/g, ' ').trim()).toBe(texts.fox.replace(/\s+/g, ' ').trim());
    a.unload();

    // A new engine on the same store: every chunk from the store, none computed.
    const b = await engineOn(store);
    const second = await b.complete(question, { maxTokens: 8, method: 'naive' });
    expect(second.chunks!.every((c) => c.source === 'store')).toBe(true);
    expect(second.computedTokens).toBe(second.promptTokens.length - second.reusedTokens!);
    expect(second.reusedTokens).toBe(first.reusedTokens);
    expect(second.tokens).toEqual(first.tokens);
    const stats = await b.documents.stats();
    expect(stats).toMatchObject({ documents: 3, misses: 0, corrupt: 0 });
    expect(stats.hits.store).toBe(second.chunks!.length);
    expect(stats.tiers.store.chunks).toBe(stats.chunks);
    // The third time the pool has them.
    const third = await b.complete(question, { maxTokens: 8, method: 'naive' });
    expect(third.chunks!.every((c) => c.source === 'gpu')).toBe(true);
    expect(third.tokens).toEqual(first.tokens);
    b.unload();
  });

  it('configure changes the chunk size of documents read from now on; documents read with the old size are read again', async () => {
    const store = new MemoryStore();
    const engine = await engineOn(store);
    const text = Object.values(texts).join('\n\n');
    const small = await engine.documents.add({ id: 'fox', text });
    expect(await engine.documents.configure({})).toMatchObject({ targetTokens: 24 });
    expect(await engine.documents.configure({ targetTokens: 64 })).toMatchObject({ targetTokens: 64 });
    expect((await engine.documents.get('fox'))?.currentModel).toBe(false);
    const large = await engine.documents.add({ id: 'fox', text });
    expect(large.currentModel).toBe(true);
    expect(large.chunks).toBeLessThan(small.chunks);
    // Chunks are content-addressed: those the two sizes cut alike are not computed again.
    expect(large.computedChunks).toBeGreaterThan(0);
    expect(large.storedChunks).toBe(large.chunks);
    await expect(engine.documents.configure({ targetTokens: 3 })).rejects.toMatchObject({ name: 'InvalidRequestError', code: 'bad-chunk-settings' });
    await expect(engine.documents.configure({ context: 'sideways' as never })).rejects.toMatchObject({ code: 'bad-chunk-settings' });
    engine.unload();
  });

  it('a corrupt or foreign stored record is a miss: recomputed, overwritten, counted, and the answer is the same', async () => {
    const store = new MemoryStore();
    const a = await engineOn(store);
    await addAll(a);
    const clean = await a.complete(question, { maxTokens: 6, method: 'naive' });
    a.unload();
    const ids = clean.chunks!.map((c) => c.id);
    const [bad] = await store.getChunks([ids[1]]);
    bad![bad!.length - 3] ^= 0x5a; // a flipped payload byte
    await store.putChunks([[ids[1], bad!]]);
    await store.putChunks([[ids[2], new Uint8Array([1, 2, 3])]]); // truncated
    const b = await engineOn(store);
    const r = await b.complete(question, { maxTokens: 6, method: 'naive' });
    expect(r.tokens).toEqual(clean.tokens);
    expect(r.chunks![1].source).toBe('computed');
    expect(r.chunks![2].source).toBe('computed');
    expect(r.chunks!.filter((c) => c.source === 'store').length).toBe(ids.length - 2);
    const stats = await b.documents.stats();
    expect(stats.corrupt).toBe(2);
    b.unload();
    // Overwritten: the next engine reads every chunk from the store again.
    const c = await engineOn(store);
    const again = await c.complete(question, { maxTokens: 6, method: 'naive' });
    expect(again.chunks!.every((x) => x.source === 'store')).toBe(true);
    expect((await c.documents.stats()).corrupt).toBe(0);
    c.unload();
  });

  it('chunks made for another model are never used: its documents are read again', async () => {
    const store = new MemoryStore();
    const a = await engineOn(store);
    await addAll(a);
    a.unload();
    const b = await engineOn(store, {}, {}, otherModelBytes);
    expect((await b.documents.list()).every((d) => !d.currentModel)).toBe(true);
    const r = await b.complete(question, { maxTokens: 4, method: 'naive' });
    expect(r.chunks!.every((c) => c.source === 'computed')).toBe(true);
    // Its manifests now name this model's chunks.
    expect((await b.documents.list()).every((d) => d.currentModel && d.storedChunks === d.chunks)).toBe(true);
    const again = await b.complete(question, { maxTokens: 4, method: 'naive' });
    expect(again.chunks!.every((c) => c.source === 'gpu')).toBe(true);
    b.unload();
  });

  it('a pool full of cached chunks makes room for prefill and for every decode step (no kv-cache-full mid-answer)', async () => {
    const store = new MemoryStore();
    // A pool of 256 token slots; the documents take most of it and the answer needs more.
    const e = await engineOn(store, { maxContext: 256, kvBudgetTokens: 256 }, { memoryBudgetBytes: 1 << 20 });
    await addAll(e);
    const long = await e.complete({ documents: ['fox'], question: 'the fox' }, { maxTokens: 120, method: 'attnlink', k: 2 });
    expect(long.finishReason).toBe('length');
    expect(long.tokens.length).toBe(120);
    // Asked for more than the pool can ever hold beside the chunks: the answer ends, it does not fail.
    const longest = await e.complete({ documents: ['fox'], question: 'the fox' }, { maxTokens: 250, method: 'attnlink', k: 2 });
    expect(['context', 'length']).toContain(longest.finishReason);
    expect(longest.tokens.length).toBeGreaterThan(120);
    const stats = e.chunkCache.stats();
    expect(stats.evictions.gpu).toBeGreaterThan(0);
    // Evicted from the pool, kept in the memory tier: the next request takes them from there.
    const r = await e.complete({ documents: ['sea'], question: 'the boat' }, { maxTokens: 4, method: 'naive' });
    expect(r.chunks!.every((c) => c.source === 'memory' || c.source === 'gpu')).toBe(true);
    expect(r.chunks!.some((c) => c.source === 'memory')).toBe(true);
    e.unload();
  });

  it('documents beyond the context keep the chunks BM25 finds relevant, in document order', async () => {
    const store = new MemoryStore();
    const e = await engineOn(store, { maxContext: 160 });
    await addAll(e);
    const all = await e.documents.list();
    const total = all.reduce((n, d) => n + d.tokens, 0);
    expect(total).toBeGreaterThan(160);
    const r = await e.complete({ documents: 'all', question: 'fishermen nets gulls' }, { maxTokens: 8, method: 'naive' });
    expect(r.droppedChunks).toBeGreaterThan(0);
    expect(r.promptTokens.length + 8).toBeLessThanOrEqual(160);
    expect(r.chunks!.some((c) => c.document === 'sea' && c.index === 1)).toBe(true);
    const order = r.chunks!.map((c) => ['fox', 'sea', 'town'].indexOf(c.document!) * 100 + c.index);
    expect(order).toEqual([...order].sort((x, y) => x - y));
    e.unload();
  });

  it('remove and clear delete manifests and the chunks no other document names', async () => {
    const store = new MemoryStore();
    const e = await engineOn(store);
    await addAll(e);
    await e.documents.add({ id: 'fox-copy', text: texts.fox });
    const before = (await store.chunkIds()).length;
    expect(await e.documents.remove('fox')).toBe(true);
    expect(await e.documents.remove('fox')).toBe(false);
    expect((await store.chunkIds()).length).toBe(before); // fox-copy still names them
    await e.documents.remove('sea');
    expect((await store.chunkIds()).length).toBeLessThan(before);
    await expect(e.complete({ documents: ['sea'], question: 'x' })).rejects.toMatchObject({ code: 'unknown-document' });
    await e.documents.clear();
    expect(await e.documents.list()).toEqual([]);
    expect(await store.chunkIds()).toEqual([]);
    e.unload();
  });

  it('a cancelled add leaves no document and no pending manifest, and the engine goes on', async () => {
    const store = new MemoryStore();
    const e = await engineOn(store);
    const ctrl = new AbortController();
    const err = await e.documents
      .add({ id: 'fox', text: texts.fox }, { signal: ctrl.signal, onProgress: (p) => p.phase === 'compute' && p.done === 1 && ctrl.abort() })
      .catch((x: unknown) => x);
    expect(err).toMatchObject({ name: 'AbortedError' });
    expect(await e.documents.list()).toEqual([]);
    expect(await store.listManifests()).toEqual([]);
    expect((await e.documents.add({ id: 'fox', text: texts.fox })).storedChunks).toBeGreaterThan(0);
    e.unload();
  });

  it('chunks no manifest names (a writer killed mid-add) are collected when a library opens', async () => {
    const store = new MemoryStore();
    const e = await engineOn(store);
    await addAll(e);
    e.unload();
    await store.putChunks([['ab'.repeat(32), new Uint8Array(64)]]);
    const f = await engineOn(store);
    expect((await f.documents.stats()).collected).toBe(1);
    expect(await store.chunkIds()).not.toContain('ab'.repeat(32));
    f.unload();
  });

  it('a read in progress in another tab keeps its chunks from the collector until it is stale', async () => {
    const store = new MemoryStore();
    const e = await engineOn(store);
    await addAll(e);
    e.unload();
    const [template] = await store.listManifests();
    const fresh = 'cd'.repeat(32);
    const stale = 'ef'.repeat(32);
    await store.putChunks([
      [fresh, new Uint8Array(64)],
      [stale, new Uint8Array(64)],
    ]);
    const pending = (id: string, chunk: string, createdAt: number) => ({ ...template, id, chunks: [{ ...template.chunks[0], id: chunk }], createdAt, lastUsedAt: createdAt });
    await store.putManifest(pending('\u0001pending/a', fresh, Date.now()));
    await store.putManifest(pending('\u0001pending/b', stale, Date.now() - 3_600_000));
    const f = await engineOn(store);
    const ids = await store.chunkIds();
    expect(ids).toContain(fresh);
    expect(ids).not.toContain(stale);
    expect((await f.documents.list()).map((d) => d.id)).toEqual(['fox', 'sea', 'town']);
    expect((await f.documents.stats()).documents).toBe(3);
    expect(await store.getManifest('\u0001pending/b')).toBeUndefined();
    f.unload();
  });

  it('a storage budget evicts the least recently used chunks, never a pinned document’s, and answers go on', async () => {
    const store = new MemoryStore();
    const e = await engineOn(store);
    await e.documents.add({ id: 'fox', text: texts.fox, pin: true });
    await e.documents.add({ id: 'sea', text: texts.sea });
    const perDoc = (await e.documents.get('sea'))!.bytes;
    e.library.setBudget((await e.documents.get('fox'))!.bytes + perDoc + 16);
    await e.documents.add({ id: 'town', text: texts.town });
    const docs = Object.fromEntries((await e.documents.list()).map((d) => [d.id, d]));
    expect(docs.fox.storedChunks).toBe(docs.fox.chunks);
    expect(docs.sea.storedChunks).toBeLessThan(docs.sea.chunks); // the oldest unpinned one
    const stats = await e.documents.stats();
    expect(stats.evictions.store).toBeGreaterThan(0);
    expect(stats.tiers.store.bytes).toBeLessThanOrEqual(e.library.budgetBytes);
    const r = await e.complete({ documents: ['sea'], question: 'the boat' }, { maxTokens: 4, method: 'naive' });
    expect(r.tokens.length).toBe(4);
    e.unload();
  });

  it('a store that refuses writes for room loses no answer: the failure is a warning in the result and in stats', async () => {
    const store = new MemoryStore({ quotaBytes: 1024 });
    const e = await engineOn(store);
    const info = await e.documents.add({ id: 'fox', text: texts.fox });
    expect(info.warnings?.[0]).toMatch(/at most 1024 bytes.*computed again when next used/);
    expect(info.storedChunks).toBe(0);
    const r = await e.complete({ documents: ['fox'], texts: [texts.sea], question: 'the fox' }, { maxTokens: 4, method: 'naive' });
    expect(r.tokens.length).toBe(4);
    expect(r.warnings?.length).toBeGreaterThan(0);
    expect((await e.documents.stats()).warnings.length).toBeGreaterThan(0);
    e.unload();
  });

  it('.kvpack carries a document to another store with zero chunk prefill, and refuses another model', async () => {
    const a = await engineOn(new MemoryStore());
    await a.documents.add({ id: 'fox', title: 'Fox', text: texts.fox });
    const pack = await a.documents.export('fox');
    a.unload();
    const target = new MemoryStore();
    const b = await engineOn(target);
    const info = await b.documents.import(pack);
    expect(info).toMatchObject({ id: 'fox', title: 'Fox', currentModel: true });
    expect(info.storedChunks).toBe(info.chunks);
    const r = await b.complete({ documents: ['fox'], question: 'the fox' }, { maxTokens: 4, method: 'naive' });
    expect(r.chunks!.every((c) => c.source === 'store')).toBe(true);
    b.unload();
    const c = await engineOn(new MemoryStore(), {}, {}, otherModelBytes);
    const err = await c.documents.import(pack).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ code: 'model-mismatch' });
    c.unload();
  });

  it('lead-in and previous-token contexts enter the chunk ids, drop their own KV, and keep the plain prompt', async () => {
    const store = new MemoryStore();
    const plain = await engineOn(store);
    const base = await plain.complete({ texts: [texts.fox], question: 'the fox' }, { maxTokens: 4, method: 'full' });
    const none = await plain.complete({ texts: [texts.fox], question: 'the fox' }, { maxTokens: 4, method: 'naive', chunkContext: 'none' });
    // The default (no chunkContext) is the lead-in.
    const byDefault = await plain.complete({ texts: [texts.fox], question: 'the fox' }, { maxTokens: 4, method: 'naive' });
    const leadIn = await plain.complete({ texts: [texts.fox], question: 'the fox' }, { maxTokens: 4, method: 'naive', chunkContext: 'lead-in' });
    expect(byDefault.chunks!.map((c) => c.id)).toEqual(leadIn.chunks!.map((c) => c.id));
    for (const context of ['lead-in', 'previous'] as const) {
      const r = await plain.complete({ texts: [texts.fox], question: 'the fox' }, { maxTokens: 4, method: 'naive', chunkContext: context });
      expect(r.promptTokens).toEqual(base.promptTokens);
      expect(r.chunks!.map((c) => c.id)).not.toEqual(none.chunks!.map((c) => c.id));
      // Recomputing every chunk token makes any context exact.
      const exact = await plain.complete({ texts: [texts.fox], question: 'the fox' }, { maxTokens: 4, method: 'attnlink', k: 10_000, chunkContext: context });
      expect(exact.tokens).toEqual(base.tokens);
    }
    plain.unload();
  });

  it('with a chat template the documents go inside the user turn, after the template’s opening', async () => {
    const file = await parseGGUF(new MemorySource(modelBytes));
    const template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}</s>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";
    const chatBytes = writeGGUF({
      metadata: { ...metadataFromFile(file), 'tokenizer.chat_template': gguf.string(template) },
      tensors: await Promise.all(file.tensors.map(async (t) => ({ name: t.name, shape: t.shape, type: t.type, data: await new MemorySource(modelBytes).read(t.offset, t.byteLength) }))),
    });
    const e = await engineOn(new MemoryStore(), {}, {}, chatBytes);
    await e.documents.add({ id: 'fox', text: texts.fox });
    const r = await e.complete({ documents: ['fox'], question: 'where', system: 'be brief' }, { maxTokens: 2, method: 'naive' });
    // Spaces differ between pieces decoded apart and together; the order of the parts does not.
    const text = e.detokenize(r.promptTokens).replace(/\s+/g, '');
    expect(text.startsWith('<|system|>bebrief</s><|user|>thequickbrownfox')).toBe(true);
    expect(text.endsWith('where</s><|assistant|>')).toBe(true);
    const chunkTokens = r.chunks!.reduce((n, c) => n + c.tokens, 0);
    expect(r.reusedTokens).toBe(chunkTokens);
    e.unload();
  });

  it('records stored as int8 take about half the bytes of f16 and come back from the store; an f32 pool works too', async () => {
    const f16Store = new MemoryStore();
    const a = await engineOn(f16Store);
    const f16 = await a.documents.add({ id: 'fox', text: texts.fox });
    a.unload();
    const int8Store = new MemoryStore();
    const b = await engineOn(int8Store, {}, { storageDtype: 'int8' });
    const int8 = await b.documents.add({ id: 'fox', text: texts.fox });
    b.unload();
    expect(int8.bytes).toBeLessThan(0.7 * f16.bytes);
    const c = await engineOn(int8Store, {}, { storageDtype: 'int8' });
    const r = await c.complete({ documents: ['fox'], question: 'the fox' }, { maxTokens: 4, method: 'naive' });
    expect(r.chunks!.every((x) => x.source === 'store')).toBe(true);
    expect(r.tokens.length).toBe(4);
    c.unload();
    const d = await engineOn(new MemoryStore(), { kvDtype: 'f32' });
    expect(d.modelInfo!.kvDtype).toBe('f32');
    const full = await d.complete({ texts: [texts.fox], question: 'the fox' }, { maxTokens: 4, method: 'full' });
    const exact = await d.complete({ texts: [texts.fox], question: 'the fox' }, { maxTokens: 4, method: 'attnlink', k: 10_000 });
    expect(exact.tokens).toEqual(full.tokens);
    d.unload();
  });
});
