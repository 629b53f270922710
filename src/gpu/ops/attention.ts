// Paged causal attention (shaders/attention.wgsl + attention_reduce.wgsl): the prefill form (many
// query tokens, one pass writing the output) and the decode form (split-K over the page table,
// then a reduce), recorded once and resized per step with setStep.
import { GPUError, UnsupportedModelError } from '../../errors.ts';
import { writeParams, type ArenaSlot } from '../arena.ts';
import type { Dispatch, GpuContext } from '../context.ts';
import { KV_PAGE_SIZE, type KvDtype } from './kv.ts';
import { checkRopeShape, type RopeMode } from './rope.ts';

export interface AttentionShape {
  nHeads: number;
  nKvHeads: number;
  /** Multiple of 4, at most 256 (heads above 128 take tiles of fewer keys). */
  headDim: number;
  ropeDim: number;
  mode: RopeMode;
  /** Rows of the cos/sin table; positions at or past it read its last row. */
  maxPos: number;
  /** Score scale; default 1/sqrt(headDim). */
  scale?: number;
  /**
   * Sliding window: a query at position q sees keys at q - window < p <= q (llama.cpp's standard
   * sliding-window mask). 0 or absent: every key at p <= q.
   */
  window?: number;
  /** Elements between consecutive tokens' q rows (default nHeads*headDim); multiple of 4. */
  qStride?: number;
  /** Element index of token 0, head 0 in q (default 0); multiple of 4. */
  qOffset?: number;
  /** Element type of kPool and vPool (default 'f32'): pass the cache's `dtype`. */
  kvDtype?: KvDtype;
}

export interface AttentionBuffers {
  /** [T, qStride] f32, rotated by rope.wgsl. */
  q: GPUBuffer;
  /** [nPages*16, nKvHeads*headDim] of shape.kvDtype, keys before RoPE (one layer's pool). */
  kPool: GPUBuffer;
  /** [nPages*16, nKvHeads*headDim] of shape.kvDtype. */
  vPool: GPUBuffer;
  /** [nEntries] vec4<u32> (page, start_pos, n_tokens, slot_offset). */
  pageTable: GPUBuffer;
  /** [T] u32 absolute positions of the query tokens. */
  positions: GPUBuffer;
  /** [maxPos, ropeDim/2] (cos, sin) f32 pairs from buildRopeTable. */
  ropeTable: GPUBuffer;
  /** [T, nHeads*headDim] f32. */
  out: GPUBuffer;
}

export interface AttentionOptions {
  /**
   * 'prefill' puts 16 (token, head) rows in a workgroup; 'decode' puts one token's GQA group
   * (few rows, so the dot products are split across threads instead).
   */
  kind: 'prefill' | 'decode';
  /** Largest token count a step will pass to setStep. */
  maxTokens: number;
  /** Largest split-K factor (default 1 for prefill, 32 for decode); > 1 allocates the partial buffer. */
  maxSplits?: number;
  nTokens?: number;
  nEntries?: number;
}

/** The recorded dispatches of one attention layer; unused ones have 0 workgroups and are skipped. */
export interface AttentionStep {
  readonly dispatches: readonly Dispatch[];
  /** Split count of the current step (1: the output is written directly, no reduce). */
  readonly splits: number;
  /** Workgroup layout chosen for this device (for tests and benchmarks). */
  readonly config: { rows: number; bk: number; dsplit: number; wg: number; workgroupBytes: number };
  /**
   * Sets the step's query token count, page-table entry count and, optionally, the split count
   * (default: chooseAttentionSplits) and the key count (when given, splits follow ceil(nKeys / 16)
   * rather than the entry count, since tiles gather keys across short entries). Only params and
   * workgroup counts change.
   */
  setStep(nTokens: number, nEntries: number, nSplits?: number, nKeys?: number): void;
}

const WG = 128;
const REDUCE_WG = 32;
/** Fewest page-table entries (16 keys each) worth a split of their own. */
const MIN_ENTRIES_PER_SPLIT = 4;
/** Workgroups that keep a large GPU busy; splits stop growing past it. */
const TARGET_WORKGROUPS = 256;

/**
 * Split count for a step: enough workgroups to fill the GPU (TARGET_WORKGROUPS over the other grid
 * dimensions), at least MIN_ENTRIES_PER_SPLIT entries each, at most maxSplits.
 */
export function chooseAttentionSplits(nEntries: number, workgroupsPerSplit: number, maxSplits: number): number {
  const byWork = Math.ceil(nEntries / MIN_ENTRIES_PER_SPLIT);
  const byGpu = Math.ceil(TARGET_WORKGROUPS / Math.max(1, workgroupsPerSplit));
  return Math.max(1, Math.min(maxSplits, byWork, byGpu));
}

/** Split count a step of `kind` may use at most (opts.maxSplits, or 32 for decode and 1 for prefill). */
function maxSplitsOf(opts: Pick<AttentionOptions, 'kind' | 'maxSplits'>): number {
  return Math.max(1, opts.maxSplits ?? (opts.kind === 'decode' ? 32 : 1));
}

/** Bytes of the split partials buffer attentionDispatches allocates for these options (0 without splits). */
export function attentionScratchBytes(nHeads: number, headDim: number, opts: Pick<AttentionOptions, 'kind' | 'maxSplits' | 'maxTokens'>): number {
  const maxSplits = maxSplitsOf(opts);
  // [maxTokens, nHeads, maxSplits, headDim/4 + 1] vec4: unnormalized output, then (m, l, 0, 0).
  return maxSplits > 1 ? opts.maxTokens * nHeads * maxSplits * (headDim + 4) * 4 : 0;
}

/** Workgroup memory and dot-product split of `rows` query rows over tiles of `bk` keys. */
function layout(rows: number, bk: number, headDim: number): { rows: number; bk: number; dsplit: number; bytes: number } {
  const hd4 = headDim / 4;
  let dsplit = 1;
  while (dsplit * 2 <= hd4 && rows * bk * dsplit * 2 <= WG) dsplit *= 2;
  const vec4s = rows * hd4 + bk * (hd4 + 1) + bk * hd4;
  const words = rows * bk * dsplit + rows * bk + 3 * rows;
  return { rows, bk, dsplit, bytes: vec4s * 16 + words * 4 };
}

/**
 * The first layout that fits `limit` bytes of workgroup memory: tiles of a whole page (16 keys) with
 * the wanted rows, halved down to 4; then tiles of 8 and 4 keys (large heads), rows halved down to 1.
 */
function chooseLayout(wantRows: number, headDim: number, limit: number): ReturnType<typeof layout> {
  let last = layout(1, 4, headDim);
  for (const bk of [KV_PAGE_SIZE, 8, 4]) {
    const minRows = bk === 4 ? 1 : Math.min(wantRows, 4);
    for (let rows = wantRows; rows >= minRows; rows >>= 1) {
      last = layout(rows, bk, headDim);
      if (last.bytes <= limit) return last;
    }
  }
  return last;
}

export function attentionDispatches(ctx: GpuContext, bufs: AttentionBuffers, shape: AttentionShape, opts: AttentionOptions): AttentionStep {
  const { nHeads, nKvHeads, headDim } = shape;
  checkRopeShape(shape);
  if (nKvHeads <= 0 || nHeads % nKvHeads !== 0) {
    throw new UnsupportedModelError('bad-shape', `${nHeads} query heads cannot be grouped over ${nKvHeads} KV heads`, { nHeads, nKvHeads });
  }
  if (headDim % 4 !== 0 || headDim > 256) {
    throw new UnsupportedModelError('bad-shape', `attention supports head dimensions that are multiples of 4 up to 256, got ${headDim}`, { headDim });
  }
  const window = shape.window ?? 0;
  if (!Number.isInteger(window) || window < 0) {
    throw new UnsupportedModelError('bad-shape', `the attention window must be a non-negative integer, got ${window}`, { window });
  }
  const qStride = shape.qStride ?? nHeads * headDim;
  const qOffset = shape.qOffset ?? 0;
  if (qStride % 4 !== 0 || qOffset % 4 !== 0) {
    throw new UnsupportedModelError('bad-shape', `q stride ${qStride} and offset ${qOffset} must be multiples of 4`, { qStride, qOffset });
  }
  const group = nHeads / nKvHeads;
  const maxSplits = maxSplitsOf(opts);

  // Rows per workgroup: 16 for prefill, the GQA group for decode; fewer, or smaller key tiles, until
  // workgroup memory fits.
  const limit = ctx.limits.maxComputeWorkgroupStorageSize;
  const lay = chooseLayout(opts.kind === 'prefill' ? 16 : Math.min(group, 16), headDim, limit);
  const rows = lay.rows;
  if (lay.bytes > limit) {
    throw new GPUError(
      'workgroup-memory',
      `attention with head dimension ${headDim} needs ${lay.bytes} bytes of workgroup memory but this device offers ${limit}`,
      { headDim, need: lay.bytes, limit },
    );
  }
  const defines = { HEAD_DIM: headDim, GROUP: group, ROWS: rows, WG, BK: lay.bk, DSPLIT: lay.dsplit, KV_DTYPE: shape.kvDtype ?? 'f32' };
  const pipeline = ctx.pipeline('attention', { defines });
  const scale = shape.scale ?? 1 / Math.sqrt(headDim);

  const directSlot = ctx.arena.alloc();
  const direct: Dispatch = {
    label: `attention-${opts.kind}`,
    pipeline,
    bindGroup: ctx.bindGroup(
      pipeline,
      [directSlot.binding, bufs.q, bufs.kPool, bufs.vPool, bufs.pageTable, bufs.positions, bufs.ropeTable, bufs.out],
      `attention-${opts.kind}`,
    ),
    workgroups: [0, 1, 1],
  };
  const dispatches: Dispatch[] = [direct];

  let split: { slot: ArenaSlot; d: Dispatch; reduceSlot: ArenaSlot; reduce: Dispatch } | undefined;
  if (maxSplits > 1) {
    const partial = ctx.createBuffer('attention-partial', attentionScratchBytes(nHeads, headDim, opts), GPUBufferUsage.STORAGE);
    const slot = ctx.arena.alloc();
    const d: Dispatch = {
      label: `attention-${opts.kind}-split`,
      pipeline,
      bindGroup: ctx.bindGroup(
        pipeline,
        [slot.binding, bufs.q, bufs.kPool, bufs.vPool, bufs.pageTable, bufs.positions, bufs.ropeTable, partial],
        `attention-${opts.kind}-split`,
      ),
      workgroups: [0, 1, 1],
    };
    const reducePipeline = ctx.pipeline('attention_reduce', { constants: { WG: REDUCE_WG } });
    const reduceSlot = ctx.arena.alloc();
    const reduce: Dispatch = {
      label: 'attention-reduce',
      pipeline: reducePipeline,
      bindGroup: ctx.bindGroup(reducePipeline, [reduceSlot.binding, partial, bufs.out], 'attention-reduce'),
      workgroups: [0, 1, 1],
    };
    dispatches.push(d, reduce);
    split = { slot, d, reduceSlot, reduce };
  }

  const blocksFor = (nTokens: number) => Math.ceil((nTokens * group) / rows);
  let current = 1;
  const step: AttentionStep = {
    dispatches,
    get splits() {
      return current;
    },
    config: { rows, bk: lay.bk, dsplit: lay.dsplit, wg: WG, workgroupBytes: lay.bytes },
    setStep(nTokens: number, nEntries: number, nSplits?: number, nKeys?: number) {
      if (nTokens > opts.maxTokens) {
        throw new GPUError('batch-too-large', `attention was recorded for at most ${opts.maxTokens} tokens, got ${nTokens}`, {
          nTokens,
          maxTokens: opts.maxTokens,
        });
      }
      const blocks = blocksFor(nTokens);
      // Splits follow the keys, not the entries: many short entries still fill tiles of 16 keys.
      let want = nSplits ?? chooseAttentionSplits(nKeys !== undefined ? Math.ceil(nKeys / KV_PAGE_SIZE) : nEntries, blocks * nKvHeads, maxSplits);
      want = Math.max(1, Math.min(want, maxSplits, Math.max(1, nEntries)));
      const perSplit = Math.max(1, Math.ceil(nEntries / want));
      const splits = Math.max(1, Math.ceil(nEntries / perSplit));
      const words = (n: number, isDirect: boolean) => [
        nTokens,
        nHeads,
        nKvHeads,
        shape.ropeDim,
        shape.mode === 'neox' ? 1 : 0,
        shape.maxPos,
        nEntries,
        perSplit,
        n,
        isDirect ? 1 : 0,
        qStride,
        qOffset,
        { f32: scale },
        window,
      ];
      if (splits === 1 || !split) {
        writeParams(ctx.arena, directSlot, words(1, true));
        direct.workgroups = [blocks, nKvHeads, 1];
        if (split) {
          split.d.workgroups = [0, 1, 1];
          split.reduce.workgroups = [0, 1, 1];
        }
      } else {
        direct.workgroups = [0, 1, 1];
        writeParams(ctx.arena, split.slot, words(splits, false));
        split.d.workgroups = [blocks, nKvHeads, splits];
        writeParams(ctx.arena, split.reduceSlot, [nHeads, splits, headDim / 4]);
        split.reduce.workgroups = [nHeads, nTokens, 1];
      }
      current = splits;
    },
  };
  step.setStep(opts.nTokens ?? 0, opts.nEntries ?? 0);
  return step;
}
