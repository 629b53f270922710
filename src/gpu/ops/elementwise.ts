// Residual add and buffer copy dispatches (shaders/elementwise.wgsl, shaders/copy.wgsl).
import { writeParams } from '../arena.ts';
import { grid1d, type Dispatch, type GpuContext } from '../context.ts';

const WG = 256;

/** x[0..n) += y[0..n). `setN` changes n for later steps without new bind groups. */
export function addDispatch(ctx: GpuContext, x: GPUBuffer, y: GPUBuffer, n: number): Dispatch & { setN(n: number): void } {
  const pipeline = ctx.pipeline('elementwise', { constants: { WG } });
  const slot = ctx.arena.alloc();
  const d = {
    label: 'add',
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [slot.binding, x, y], 'add'),
    workgroups: [0, 1, 1] as [number, number, number],
    setN(m: number) {
      writeParams(ctx.arena, slot, [m]);
      d.workgroups = grid1d(Math.ceil(m / WG), ctx.limits.maxComputeWorkgroupsPerDimension);
    },
  };
  d.setN(n);
  return d;
}

/** dst[0..bytes) = src[0..bytes); bytes must be a multiple of 16. */
export function copyDispatch(ctx: GpuContext, dst: GPUBuffer, src: GPUBuffer, bytes: number): Dispatch {
  const pipeline = ctx.pipeline('copy', { constants: { WG } });
  const slot = ctx.arena.alloc();
  const n4 = bytes / 16;
  writeParams(ctx.arena, slot, [n4]);
  return {
    label: 'copy',
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [slot.binding, dst, src], 'copy'),
    workgroups: grid1d(Math.ceil(n4 / (WG * 4)), ctx.limits.maxComputeWorkgroupsPerDimension),
  };
}
