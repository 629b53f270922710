// Elementwise dispatches (shaders/elementwise.wgsl: residual add, scale, GELU-tanh gate, softcap)
// and the buffer copy (shaders/copy.wgsl).
import { writeParams } from '../arena.ts';
import { grid1d, type Dispatch, type GpuContext } from '../context.ts';

const WG = 256;

/** A dispatch over n elements whose n (and scalar) can change for later steps without new bind groups. */
export type ElementwiseDispatch = Dispatch & { setN(n: number): void };

function elementwise(ctx: GpuContext, entryPoint: 'main' | 'scale' | 'gelu_mul' | 'softcap', buffers: GPUBuffer[], n: number, s = 0): ElementwiseDispatch {
  const pipeline = ctx.pipeline('elementwise', { constants: { WG }, entryPoint });
  const slot = ctx.arena.alloc();
  const label = entryPoint === 'main' ? 'add' : entryPoint.replace('_', '-');
  const d = {
    label,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [slot.binding, ...buffers], label),
    workgroups: [0, 1, 1] as [number, number, number],
    setN(m: number) {
      writeParams(ctx.arena, slot, [m, { f32: s }]);
      d.workgroups = m === 0 ? [0, 1, 1] : grid1d(Math.ceil(m / WG), ctx.limits.maxComputeWorkgroupsPerDimension);
    },
  };
  d.setN(n);
  return d;
}

/** x[0..n) += y[0..n). */
export function addDispatch(ctx: GpuContext, x: GPUBuffer, y: GPUBuffer, n: number): ElementwiseDispatch {
  return elementwise(ctx, 'main', [x, y], n);
}

/** x[0..n) *= s. */
export function scaleDispatch(ctx: GpuContext, x: GPUBuffer, n: number, s: number): ElementwiseDispatch {
  return elementwise(ctx, 'scale', [x], n, s);
}

/** gate[0..n) = gelu_tanh(gate) * up, in place (GEGLU). */
export function geluMulDispatch(ctx: GpuContext, gate: GPUBuffer, up: GPUBuffer, n: number): ElementwiseDispatch {
  return elementwise(ctx, 'gelu_mul', [gate, up], n);
}

/** x[0..n) = cap * tanh(x / cap). */
export function softcapDispatch(ctx: GpuContext, x: GPUBuffer, n: number, cap: number): ElementwiseDispatch {
  return elementwise(ctx, 'softcap', [x], n, cap);
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
