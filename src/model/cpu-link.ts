// The CPU reference of chunk linking: what GpuModel.prefillLinked computes, one token at a time on
// the CPU oracle, so that the engine can be checked against it and quality can be measured on many
// prompts without a GPU.
//
// A linked sequence is `[prefix] [chunk 1] ... [chunk m] [question]`. The prefix runs normally from
// position 0. Every chunk's KV (all layers), computed alone from position 0 (or after a few context
// tokens whose KV is then dropped, like GpuModel.computeChunk's `context`), is copied to its
// absolute position: keys are kept before RoPE and rotated by position inside attention, so placing
// is a plain copy. The chosen chunk tokens are then recomputed in place, in increasing position,
// each through all layers attending causally to positions 0..its own: recomputed tokens before it
// are seen with their fresh K/V, the others with their cached K/V. Then the question runs at the
// positions after the last chunk.
//
// Which tokens are recomputed is the method: none (naive reuse), the first k of each chunk
// (AttnLink, `attnlinkIndices`), or the ones whose cached KV is furthest from a full prefill's at
// one early layer (CacheBlend, `cpuBlendDeviation` + `selectByDeviation` from kv/cacheblend.ts).
import { InvalidRequestError, KVCacheError } from '../errors.ts';
import { DEFAULT_BLEND_LAYER, kvDeviation } from '../kv/cacheblend.ts';
import type { CpuModel } from './cpu-reference.ts';

/** A chunk's KV as computed (alone, or after a context): per layer (n, nKvHeads*headDim), keys before RoPE. */
export interface CpuChunkKV {
  tokens: number[];
  k: Float32Array[];
  v: Float32Array[];
}

/** What to link; recompute[c] holds chunk c's token indices to recompute, in increasing order. */
export interface CpuLinkPlan {
  prefix: number[];
  chunks: CpuChunkKV[];
  question: number[];
  recompute: number[][];
}

/** How a link or a chunk compute runs. */
export interface CpuLinkOptions {
  /**
   * Called after every token the call itself runs (cpuPrefillLinked: prefix, recomputed chunk
   * tokens, question; cpuComputeChunk: context and chunk), with the position whose K/V rows that
   * token has just written: a caller may rewrite them (through `kvRows`/`setKV`), e.g. round them to
   * f16 as an f16 KV pool holds them. The token's own step has already read its rows as computed.
   * With a hook, tokens run one at a time: the same math, since the CPU reference runs every token
   * on its own anyway.
   */
  afterToken?: (model: CpuModel, position: number) => void;
}

/**
 * Runs `context` then `tokens` from position 0 and keeps the KV of `tokens` only (the chunk sits at
 * positions context.length.. during the compute; its keys are kept before RoPE, so linking places
 * them anywhere). An empty context is the chunk alone. Resets the model's sequence.
 */
export function cpuComputeChunk(model: CpuModel, tokens: number[], context: readonly number[] = [], opts: CpuLinkOptions = {}): CpuChunkKV {
  if (tokens.length === 0) throw new InvalidRequestError('empty-input', 'a chunk needs at least one token');
  model.reset();
  const all = [...context, ...tokens];
  const after = opts.afterToken;
  if (!after) model.forward(all);
  else {
    all.forEach((t, p) => {
      model.forward([t]);
      after(model, p);
    });
  }
  const { k, v } = model.kvRows(context.length, tokens.length);
  return { tokens: [...tokens], k, v };
}

/**
 * Builds the linked sequence of `plan` in the model (see the top of this file) and returns the
 * logits after each question token: (question.length) arrays of (vocab). The model then holds the
 * whole sequence, so `model.forward([t])` continues decoding after the question.
 */
export function cpuPrefillLinked(model: CpuModel, plan: CpuLinkPlan, opts: CpuLinkOptions = {}): Float32Array[] {
  const { prefix, chunks, question, recompute } = plan;
  if (question.length === 0) throw new InvalidRequestError('empty-question', 'a linked request needs at least one question token to read logits from');
  if (recompute.length !== chunks.length) {
    throw new InvalidRequestError('bad-recompute', `recompute has ${recompute.length} entries for ${chunks.length} chunks; give one list (maybe empty) per chunk`);
  }
  const chunkTokens = chunks.reduce((s, c) => s + c.tokens.length, 0);
  const total = prefix.length + chunkTokens + question.length;
  if (total > model.maxPos) {
    throw new KVCacheError('kv-cache-full', `the linked sequence has ${total} tokens but the CPU reference holds ${model.maxPos} positions (load it with a larger maxPos)`, {
      maxPos: model.maxPos,
      requested: total,
    });
  }
  const tokens: number[] = [];
  const positions: number[] = [];
  let pos = prefix.length;
  chunks.forEach((c, ci) => {
    let last = -1;
    for (const i of recompute[ci]) {
      if (!Number.isInteger(i) || i <= last || i >= c.tokens.length) {
        throw new InvalidRequestError('bad-recompute', `recompute[${ci}] must hold increasing token indices of chunk ${ci} (0..${c.tokens.length - 1}); ${i} is not one`, { chunk: ci, index: i });
      }
      last = i;
      tokens.push(c.tokens[i]);
      positions.push(pos + i);
    }
    pos += c.tokens.length;
  });

  model.reset();
  const after = opts.afterToken;
  if (after) return linkTokenByToken(model, plan, tokens, positions, after);
  if (prefix.length > 0) model.forward(prefix);
  pos = prefix.length;
  for (const c of chunks) {
    model.setKV(c, pos);
    pos += c.tokens.length;
  }
  if (tokens.length > 0) model.forwardAt(tokens, positions);
  return model.forwardAll(question, pos);
}

/** cpuPrefillLinked with a hook after every token: the same steps, one token at a time. */
function linkTokenByToken(model: CpuModel, plan: CpuLinkPlan, tokens: number[], positions: number[], after: (model: CpuModel, position: number) => void): Float32Array[] {
  const run = (t: number, p: number): Float32Array => {
    const logits = model.forwardAt([t], [p]);
    after(model, p);
    return logits;
  };
  plan.prefix.forEach(run);
  let pos = plan.prefix.length;
  for (const c of plan.chunks) {
    model.setKV(c, pos);
    pos += c.tokens.length;
  }
  tokens.forEach((t, i) => run(t, positions[i]));
  return plan.question.map((t, i) => run(t, pos + i));
}

/** AttnLink's recompute set: the first min(k, length) token indices of each chunk. */
export function attnlinkIndices(chunks: readonly { tokens: readonly number[] }[], k: number): number[][] {
  if (!Number.isInteger(k) || k < 0) throw new InvalidRequestError('bad-k', `k must be a non-negative integer, got ${k}`);
  return chunks.map((c) => Array.from({ length: Math.min(k, c.tokens.length) }, (_, i) => i));
}

/** The layer CacheBlend compares at: `layer` clamped to the model's layers. */
export function blendLayer(model: CpuModel, layer: number): number {
  if (!Number.isInteger(layer)) throw new InvalidRequestError('bad-layer', `the CacheBlend layer must be an integer, got ${layer}`);
  return Math.min(Math.max(0, layer), model.config.nLayers - 1);
}

/**
 * CacheBlend's deviation of every chunk token: per chunk, per token, the squared distance between
 * its cached K/V rows and those a full causal prefill of `[prefix] [all chunks' tokens]` gives it,
 * at `layer` (clamped to the model). Runs that prefill, so it resets the model's sequence.
 */
export function cpuBlendDeviation(model: CpuModel, prefix: number[], chunks: CpuChunkKV[], layer = DEFAULT_BLEND_LAYER): Float32Array[] {
  const all = [...prefix, ...chunks.flatMap((c) => c.tokens)];
  model.reset();
  if (all.length > 0) model.forward(all);
  return cpuBlendDeviationFromSequence(model, prefix.length, chunks, layer);
}

/**
 * The deviation against the rows the model holds now, the chunks starting at position `start`:
 * for a caller that has already run a full prefill of `[prefix] [chunks] ...` (causal, so tokens
 * after the chunks change nothing) and wants to avoid a second one.
 */
export function cpuBlendDeviationFromSequence(model: CpuModel, start: number, chunks: readonly CpuChunkKV[], layer = DEFAULT_BLEND_LAYER): Float32Array[] {
  const l = blendLayer(model, layer);
  const kvDim = model.config.nKvHeads * model.config.headDim;
  const out: Float32Array[] = [];
  let pos = start;
  for (const c of chunks) {
    const fresh = model.kvRows(pos, c.tokens.length);
    out.push(kvDeviation(fresh.k[l], fresh.v[l], c.k[l], c.v[l], kvDim));
    pos += c.tokens.length;
  }
  return out;
}
