// RMSNorm dispatches (shaders/rmsnorm.wgsl): one workgroup per row, in place or out of place.
import { GPUError } from '../../errors.ts';
import { writeParams } from '../arena.ts';
import { grid1d, type Dispatch, type GpuContext } from '../context.ts';
import { reductionDefines } from './matvec.ts';

export interface RmsNormOptions {
  /** Elements between rows of x; default cols. */
  xStride?: number;
  /** Elements between rows of out; default cols. */
  outStride?: number;
  /** Rows of the first step (tokens, or tokens × heads for a per-head norm); default 1. */
  rows?: number;
}

export interface RmsNormOp extends Dispatch {
  readonly rows: number;
  /** Changes the row count for later steps without new bind groups. */
  setRows(n: number): void;
}

/**
 * out[r, :] = x[r, :] / sqrt(mean(x[r, :]²) + eps) * w, for `rows` rows of `cols` values:
 * x [rows, xStride] f32, w [cols] f32, out [rows, outStride] f32. Pass `out` = undefined (or x
 * itself) to normalize x in place.
 */
export function rmsnormOp(
  ctx: GpuContext,
  x: GPUBuffer,
  w: GPUBuffer,
  out: GPUBuffer | undefined,
  cols: number,
  eps: number,
  opts: RmsNormOptions = {},
): RmsNormOp {
  const inPlace = out === undefined || out === x;
  const WG = cols >= 1024 ? 256 : cols >= 256 ? 128 : 64;
  const pipeline = ctx.pipeline('rmsnorm', {
    defines: { ...reductionDefines(ctx), WG },
    entryPoint: inPlace ? 'main_in_place' : 'main',
  });
  const slot = ctx.arena.alloc();
  const bindGroup = ctx.device.createBindGroup({
    label: 'rmsnorm',
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: slot.binding },
      { binding: 1, resource: { buffer: x } },
      { binding: 2, resource: { buffer: w } },
      ...(inPlace ? [] : [{ binding: 3, resource: { buffer: out! } }]),
    ],
  });
  const d = {
    label: inPlace ? 'rmsnorm-in-place' : 'rmsnorm',
    pipeline,
    bindGroup,
    workgroups: [0, 1, 1] as [number, number, number],
    rows: 0,
    setRows(n: number) {
      if (!Number.isInteger(n) || n < 0) throw new GPUError('bad-row-count', `rmsnorm: row count ${n} must be a non-negative integer`, { rows: n });
      d.rows = n;
      writeParams(ctx.arena, slot, [n, cols, opts.xStride ?? cols, opts.outStride ?? cols, { f32: eps }]);
      d.workgroups = n === 0 ? [0, 1, 1] : grid1d(n, ctx.limits.maxComputeWorkgroupsPerDimension);
    },
  };
  d.setRows(opts.rows ?? 1);
  return d;
}

/** Bytes one normalization of `rows` rows moves at best: x and out once each (the second read of a row hits the cache), w. */
export function rmsnormBytes(rows: number, cols: number): number {
  return rows * cols * 4 * 2 + cols * 4;
}
