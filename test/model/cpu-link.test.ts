// The CPU reference of chunk linking on stories260K: the cases where linking must equal a full
// prefill (one chunk at position 0, a chunk computed after a context and linked after the same
// tokens, every token recomputed, CacheBlend at ratio 1), the case where it must not (naive reuse of
// several chunks), the per-token hook, and the KV row access it is built on.
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError, KVCacheError } from '../../src/errors.ts';
import { FileSource } from '../../src/gguf/node-file-source.ts';
import { selectByDeviation } from '../../src/kv/cacheblend.ts';
import { attnlinkIndices, cpuBlendDeviation, cpuComputeChunk, cpuPrefillLinked, type CpuChunkKV } from '../../src/model/cpu-link.ts';
import { CpuModel } from '../../src/model/cpu-reference.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';

const STORIES = 'models/stories260K.gguf';
const stories = sharedFile(STORIES);

/** Largest |a - b| over the logits of every position. */
function maxDiff(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  a.forEach((x, i) => x.forEach((v, j) => (d = Math.max(d, Math.abs(v - b[i][j])))));
  return d;
}

/** Deterministic ordinary token ids (ids 0..2 are the tokenizer's specials). */
function tokensFrom(seed: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => 3 + ((seed * 131 + i * 197 + ((i * i) % 23)) % 509));
}

describe.skipIf(!stories)(stories ? 'CPU chunk linking on stories260K' : missingShared(STORIES), () => {
  let model: CpuModel;
  const BOS = 1;
  const docs = [tokensFrom(1, 13), tokensFrom(2, 9), tokensFrom(3, 11)];
  const question = tokensFrom(4, 5);
  let chunks: CpuChunkKV[];

  /** Logits after each question token of a full prefill of `[prefix] docs... question`. */
  const full = (prefix: number[], ds: number[][]): Float32Array[] => {
    model.reset();
    model.forward([...prefix, ...ds.flat()]);
    return model.forwardAll(question);
  };

  beforeAll(async () => {
    model = await CpuModel.load(await FileSource.open(stories!), undefined, 128);
    chunks = docs.map((d) => cpuComputeChunk(model, d));
  });

  it('one chunk at position 0, nothing recomputed, equals a full prefill', () => {
    const linked = cpuPrefillLinked(model, { prefix: [], chunks: [chunks[0]], question, recompute: [[]] });
    expect(maxDiff(linked, full([], [docs[0]]))).toBe(0);
  });

  it('a chunk computed after a context keeps the rows a full prefill of context + chunk gives it', () => {
    const context = tokensFrom(7, 8);
    const withCtx = cpuComputeChunk(model, docs[1], context);
    expect(withCtx.tokens).toEqual(docs[1]);
    model.reset();
    model.forward([...context, ...docs[1]]);
    const rows = model.kvRows(context.length, docs[1].length);
    expect(withCtx.k.every((k, l) => k.every((x, i) => x === rows.k[l][i]))).toBe(true);
    expect(withCtx.v.every((v, l) => v.every((x, i) => x === rows.v[l][i]))).toBe(true);
    // Linked right after the same context tokens, nothing recomputed: exactly the full prefill.
    const linked = cpuPrefillLinked(model, { prefix: context, chunks: [withCtx], question, recompute: [[]] });
    expect(maxDiff(linked, full(context, [docs[1]]))).toBe(0);
    // The context changes the chunk's rows (beyond layer 0, which depends on the token alone) ...
    const alone = chunks[1];
    expect(withCtx.k[0].every((x, i) => x === alone.k[0][i])).toBe(true);
    expect(withCtx.k.at(-1)!.some((x, i) => x !== alone.k.at(-1)![i])).toBe(true);
    // ... and an empty context is the chunk alone, as before.
    const empty = cpuComputeChunk(model, docs[1], []);
    expect(empty.k.every((k, l) => k.every((x, i) => x === alone.k[l][i]))).toBe(true);
    expect(empty.v.every((v, l) => v.every((x, i) => x === alone.v[l][i]))).toBe(true);
    expect(() => cpuComputeChunk(model, [], context)).toThrow(InvalidRequestError);
  });

  it('afterToken: an identity hook changes nothing; it sees every token the link runs, and what it writes is read', () => {
    const recompute = attnlinkIndices(chunks, 2);
    const plan = { prefix: [BOS], chunks, question, recompute };
    const plain = cpuPrefillLinked(model, plan);
    const seen: number[] = [];
    const hooked = cpuPrefillLinked(model, plan, { afterToken: (_, p) => void seen.push(p) });
    expect(maxDiff(hooked, plain)).toBe(0);
    const starts = [1, 1 + docs[0].length, 1 + docs[0].length + docs[1].length];
    const end = starts[2] + docs[2].length;
    expect(seen).toEqual([0, ...starts.flatMap((s) => [s, s + 1]), ...question.map((_, i) => end + i)]);
    // A hook that zeroes each prefix row's values changes the output.
    const zeroed = cpuPrefillLinked(model, plan, {
      afterToken: (m, p) => {
        if (p !== 0) return;
        const rows = m.kvRows(p, 1);
        rows.v.forEach((v) => v.fill(0));
        m.setKV(rows, p);
      },
    });
    expect(maxDiff(zeroed, plain)).toBeGreaterThan(1e-4);
  });

  it('recomputing every chunk token equals a full prefill', () => {
    const recompute = chunks.map((c) => c.tokens.map((_, i) => i));
    const linked = cpuPrefillLinked(model, { prefix: [BOS], chunks, question, recompute });
    expect(maxDiff(linked, full([BOS], docs))).toBe(0);
    // AttnLink with k past every chunk's length is the same set.
    expect(attnlinkIndices(chunks, 99)).toEqual(recompute);
  });

  it('naive reuse of several chunks differs from a full prefill; AttnLink k moves towards it', () => {
    const ref = full([BOS], docs);
    const naive = maxDiff(cpuPrefillLinked(model, { prefix: [BOS], chunks, question, recompute: attnlinkIndices(chunks, 0) }), ref);
    expect(naive).toBeGreaterThan(1e-3);
    const k4 = maxDiff(cpuPrefillLinked(model, { prefix: [BOS], chunks, question, recompute: attnlinkIndices(chunks, 4) }), ref);
    expect(k4).toBeGreaterThan(0);
    expect(k4).toBeLessThan(naive);
  });

  it('the linked sequence continues: forward([t]) after the question equals a full prefill plus t', () => {
    cpuPrefillLinked(model, { prefix: [BOS], chunks, question, recompute: chunks.map((c) => c.tokens.map((_, i) => i)) });
    const next = model.forward([7]);
    model.reset();
    expect(maxDiff([next], [model.forward([BOS, ...docs.flat(), ...question, 7])])).toBe(0);
  });

  it('CacheBlend: the first chunk after an empty prefix does not deviate; ratio 1 equals a full prefill', () => {
    const dev = cpuBlendDeviation(model, [], chunks);
    expect(dev.map((d) => d.length)).toEqual(docs.map((d) => d.length));
    expect(Math.max(...dev[0])).toBe(0); // computed alone from position 0 = the full prefill's first tokens
    expect(Math.max(...dev[1])).toBeGreaterThan(0);
    // Layer 0's K/V depend on the token alone, so nothing deviates there.
    expect(cpuBlendDeviation(model, [BOS], chunks, 0).every((d) => d.every((x) => x === 0))).toBe(true);
    const withBos = cpuBlendDeviation(model, [BOS], chunks, 99); // layer clamped to the last one
    expect(withBos.every((d) => d.every((x) => x > 0))).toBe(true);
    const all = selectByDeviation(cpuBlendDeviation(model, [BOS], chunks), 1);
    const linked = cpuPrefillLinked(model, { prefix: [BOS], chunks, question, recompute: all });
    expect(maxDiff(linked, full([BOS], docs))).toBe(0);
  });

  it('kvRows / setKV round trip, and forwardAt equals forward at the same positions', () => {
    model.reset();
    const seq = [BOS, ...docs[0], ...docs[1]];
    const a = model.forward(seq);
    const rows = model.kvRows(0, seq.length);
    expect(rows.k).toHaveLength(model.config.nLayers);
    expect(rows.k[0]).toHaveLength(seq.length * model.config.nKvHeads * model.config.headDim);
    model.reset();
    model.setKV(rows, 0);
    expect(model.length).toBe(seq.length);
    // The last token again at its own position over the placed rows gives the same logits.
    const b = model.forwardAt([seq[seq.length - 1]], [seq.length - 1]);
    expect(maxDiff([b], [a])).toBe(0);
    const back = model.kvRows(0, seq.length);
    expect(back.k.every((k, l) => k.every((x, i) => x === rows.k[l][i]))).toBe(true);
    expect(back.v.every((v, l) => v.every((x, i) => x === rows.v[l][i]))).toBe(true);
    // forwardAt appending at the end is forward.
    const c = model.forwardAt([5, 6], [seq.length, seq.length + 1]);
    expect(model.length).toBe(seq.length + 2);
    model.reset();
    expect(maxDiff([c], [model.forward([...seq, 5, 6])])).toBe(0);
  });

  it('rejects bad rows, positions and recompute lists with typed errors', () => {
    model.reset();
    model.forward([BOS, 5, 6]);
    expect(() => model.kvRows(1, 5)).toThrow(InvalidRequestError);
    expect(() => model.forwardAt([5], [4])).toThrow(InvalidRequestError); // skips position 3
    expect(() => model.forwardAt([5, 6], [3])).toThrow(InvalidRequestError);
    expect(() => model.setKV(chunks[0], 4)).toThrow(InvalidRequestError);
    expect(() => model.setKV({ k: chunks[0].k.slice(1), v: chunks[0].v }, 0)).toThrow(InvalidRequestError);
    expect(() => model.setKV(chunks[0], 120)).toThrow(InvalidRequestError);
    model.reset();
    model.forward(tokensFrom(9, 120));
    expect(() => model.setKV(chunks[0], 120)).toThrow(KVCacheError);
    const bad = (recompute: number[][]) => () => cpuPrefillLinked(model, { prefix: [BOS], chunks, question, recompute });
    expect(bad([[1, 0], [], []])).toThrow(InvalidRequestError);
    expect(bad([[13], [], []])).toThrow(InvalidRequestError);
    expect(bad([[]])).toThrow(InvalidRequestError);
    expect(() => cpuPrefillLinked(model, { prefix: [BOS], chunks, question: [], recompute: [[], [], []] })).toThrow(InvalidRequestError);
    expect(() => attnlinkIndices(chunks, -1)).toThrow(InvalidRequestError);
  });
});
