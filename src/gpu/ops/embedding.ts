// Token embedding lookup dispatches (shaders/embedding.wgsl): one per weight part.
import { GPUError } from '../../errors.ts';
import { writeParams } from '../arena.ts';
import type { Dispatch, GpuContext } from '../context.ts';
import type { GpuWeight } from '../weights.ts';
import { checkTokens } from './matvec.ts';

const WG = 256;

export interface EmbeddingOptions {
  /** Elements between consecutive tokens' rows of `out`; default weight.cols. */
  outStride?: number;
  /** Element index of token 0 in `out`; default 0. */
  outOffset?: number;
  /** Index of token 0's id in `ids`; default 0. */
  idsOffset?: number;
  /** Token count of the first step; default 1. */
  tokens?: number;
}

export interface EmbeddingOp {
  readonly dispatches: Dispatch[];
  readonly tokens: number;
  setTokens(n: number): void;
}

/**
 * out[t, :] = dequant(E[ids[t], :]) for t < T: ids [T] u32 (validated by the caller: every id
 * must be < E.rows; an invalid id leaves its row of `out` untouched), out [T, outStride] f32.
 */
export function embeddingOp(ctx: GpuContext, table: GpuWeight, ids: GPUBuffer, out: GPUBuffer, opts: EmbeddingOptions = {}): EmbeddingOp {
  const pipeline = ctx.pipeline('embedding', { constants: { WTYPE: table.type, WG } });
  const records = table.parts.map((part) => {
    const slot = ctx.arena.alloc();
    const d: Dispatch = {
      label: `embedding:${table.label}`,
      pipeline,
      bindGroup: ctx.bindGroup(pipeline, [slot.binding, ids, part.buffer, out], `embedding:${table.label}`),
      workgroups: [0, 1, 1],
    };
    return { part, slot, d };
  });
  const op = {
    dispatches: records.map((r) => r.d),
    tokens: 0,
    setTokens(n: number) {
      checkTokens(ctx, n, `embedding '${table.label}'`);
      op.tokens = n;
      for (const { part, slot, d } of records) {
        writeParams(ctx.arena, slot, [
          n,
          table.cols,
          part.rowStart,
          part.rows,
          part.scaleOffset,
          opts.outStride ?? table.cols,
          opts.outOffset ?? 0,
          opts.idsOffset ?? 0,
        ]);
        d.workgroups = [Math.ceil(table.cols / WG), n, 1];
      }
    },
  };
  if (Math.ceil(table.cols / WG) > ctx.limits.maxComputeWorkgroupsPerDimension) {
    throw new GPUError('bad-shape', `embedding '${table.label}' has ${table.cols} columns, more than one dispatch row can cover`, { cols: table.cols });
  }
  op.setTokens(opts.tokens ?? 1);
  return op;
}

/** Bytes one lookup of `tokens` rows moves: the packed rows read, ids and outputs. */
export function embeddingBytes(table: { byteLength: number; rows: number; cols: number }, tokens: number): number {
  return tokens * ((table.byteLength / table.rows) + 4 + table.cols * 4);
}
