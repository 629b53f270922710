// Prefill matrix-multiply dispatches (shaders/matmul.wgsl), and linearOp, which records both the
// matvec and the matmul form of one matrix and picks one per step by token count.
import { writeParams } from '../arena.ts';
import type { Dispatch, GpuContext } from '../context.ts';
import type { GpuWeight } from '../weights.ts';
import {
  bindGroupAt,
  checkTokens,
  linearFlags,
  matvecOp,
  matvecSupports,
  zeroBuffer,
  type LinearOp,
  type LinearOptions,
} from './matvec.ts';

const BN = 64; // rows per tile

/** Tile variants: tokens per invocation (TM) and the largest batch each serves best. */
const TILES = [
  { TM: 1, maxTokens: 16 }, // 16 × 64 tiles: small batches waste little work on padding tokens
  { TM: 4, maxTokens: Infinity }, // 64 × 64 tiles: four times the reuse of every weight load
] as const;

/** Index into TILES of the tile used for a batch of `n` tokens. */
function tileFor(n: number): number {
  return n <= TILES[0].maxTokens ? 0 : 1;
}

/**
 * Y = X Wᵀ for a batch: x [T, w.cols] f32 row-major, y [T, yStride] f32 (see LinearOptions).
 * Records every tile variant (up to the one `maxTokens` needs) for every weight part;
 * `setTokens(n)` enables the one that suits n (the others get zero workgroups, which
 * encodeDispatches skips). Any T, N and K.
 */
export function matmulOp(ctx: GpuContext, w: GpuWeight, x: GPUBuffer, y: GPUBuffer, opts: LinearOptions = {}): LinearOp {
  const flags = linearFlags(opts);
  const yStride = opts.yStride ?? w.rows;
  const maxTile = tileFor(opts.maxTokens ?? Infinity);
  const records = TILES.flatMap((tile, ti) => {
    if (ti > maxTile) return [];
    const pipeline = ctx.pipeline('matmul', { defines: { TM: tile.TM }, constants: { WTYPE: w.type } });
    return w.parts.map((part) => {
      const slot = ctx.arena.alloc();
      const bindGroup = bindGroupAt(
        ctx,
        pipeline,
        [[0, slot.binding], [1, x], [2, y], [3, opts.bias ?? zeroBuffer(ctx)], [4, part.buffer]],
        `matmul:${w.label}`,
      );
      const d: Dispatch = { label: `matmul:${w.label}`, pipeline, bindGroup, workgroups: [0, 1, 1] };
      return { ti, bm: 16 * tile.TM, part, slot, d };
    });
  });
  const op = {
    dispatches: records.map((r) => r.d),
    tokens: 0,
    setTokens(n: number) {
      checkTokens(ctx, n, `matmul '${w.label}'`, opts.maxTokens);
      op.tokens = n;
      const chosen = tileFor(n);
      for (const { ti, bm, part, slot, d } of records) {
        writeParams(ctx.arena, slot, [n, part.rows, w.cols, part.rowStart, part.scaleOffset, yStride, opts.yOffset ?? 0, flags]);
        d.workgroups = ti === chosen ? [Math.ceil(part.rows / BN), Math.ceil(n / bm), 1] : [0, 1, 1];
      }
    },
  };
  op.setTokens(opts.tokens ?? 1);
  return op;
}

export interface LinearOpOptions extends LinearOptions {
  /** Largest batch still run as matrix-vector products (each token re-reads the weights); default 1. */
  matvecMaxTokens?: number;
}

/**
 * One matrix applied to a batch of any size: the matvec form for batches up to
 * `matvecMaxTokens` (decode), the tiled matmul otherwise (prefill). Both are recorded once;
 * `setTokens(n)` enables one. Matrices whose column count is not a multiple of 4 always use matmul.
 */
export function linearOp(ctx: GpuContext, w: GpuWeight, x: GPUBuffer, y: GPUBuffer, opts: LinearOpOptions = {}): LinearOp {
  const maxMv = matvecSupports(w) ? (opts.matvecMaxTokens ?? 1) : 0;
  const mv = maxMv > 0 ? matvecOp(ctx, w, x, y, { ...opts, tokens: 0 }) : undefined;
  const mm = matmulOp(ctx, w, x, y, { ...opts, tokens: 0 });
  const op = {
    dispatches: [...(mv?.dispatches ?? []), ...mm.dispatches],
    tokens: 0,
    setTokens(n: number) {
      op.tokens = n;
      const useMv = mv !== undefined && n <= maxMv;
      mv?.setTokens(useMv ? n : 0);
      mm.setTokens(useMv ? 0 : n);
    },
  };
  op.setTokens(opts.tokens ?? 1);
  return op;
}
