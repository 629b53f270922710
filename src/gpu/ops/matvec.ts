// Decode matrix-vector dispatches (shaders/matvec.wgsl): y = W x (+ bias) (+ y), one dispatch per
// weight part, plus the helpers the matrix ops share (options, bind groups, bytes moved).
import { GPUError, UnsupportedModelError } from '../../errors.ts';
import { writeParams } from '../arena.ts';
import { grid1d, type Dispatch, type GpuContext } from '../context.ts';
import { GGMLType } from '../../gguf/quant.ts';
import type { ShaderDefines } from '../shaders.ts';
import type { GpuWeight, GpuWeightPart, WeightType } from '../weights.ts';

/** Options shared by the matrix ops. Outputs land at y[yOffset + t*yStride + r]. */
export interface LinearOptions {
  /** f32 [weight.rows] added to every token's output. */
  bias?: GPUBuffer;
  /** Add into y instead of overwriting it (fuses the residual add after attn_output and ffn_down). */
  accumulate?: boolean;
  /** Elements between consecutive tokens' outputs; default weight.rows. */
  yStride?: number;
  /** Element index of token 0, row 0; default 0 (e.g. the K slice of a fused QKV buffer). */
  yOffset?: number;
  /** Token count of the first step; `setTokens` changes it. Default 1. */
  tokens?: number;
  /** Largest token count `setTokens` will get; ops build only the kernel variants it needs. Default: no limit. */
  maxTokens?: number;
}

/** Reusable dispatches for one matrix op; `setTokens(n)` rewrites params and workgroup counts. */
export interface LinearOp {
  readonly dispatches: Dispatch[];
  readonly tokens: number;
  setTokens(n: number): void;
}

/** Rows per matvec workgroup. */
export const MATVEC_ROWS = 4;

const FLAG_ACCUMULATE = 1;
const FLAG_BIAS = 2;

/** Defines for the shared subgroup / shared-memory reduction: `SG` comments out the subgroup lines when absent. */
export function reductionDefines(ctx: GpuContext): ShaderDefines {
  return { SG: ctx.features.subgroups ? '' : '//' };
}

/**
 * Invocations per matvec workgroup: about four units of columns each (so every invocation has
 * several independent loads in flight and the reduction is paid for by real work), between 64
 * and 256. Not yet tuned on GPU hardware; on SwiftShader, where every invocation and barrier
 * costs CPU time, 64 invocations run a 2048-column Q4_0 matvec ten times faster than 256.
 */
export function matvecWorkgroupSize(type: WeightType, cols: number): number {
  const units = cols / (type === GGMLType.F32 || type === GGMLType.F16 || type === GGMLType.BF16 ? 4 : 8);
  return units >= 1024 ? 256 : units >= 512 ? 128 : 64;
}

/** True when the matvec kernel can take this matrix (it reads x as vec4). */
export function matvecSupports(w: { cols: number }): boolean {
  return w.cols % 4 === 0;
}

const zeroBuffers = new WeakMap<GpuContext, GPUBuffer>();
/** A 16-byte zero buffer bound where an op has no bias. */
export function zeroBuffer(ctx: GpuContext): GPUBuffer {
  let b = zeroBuffers.get(ctx);
  if (!b) {
    b = ctx.createBuffer('zero', 16, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    zeroBuffers.set(ctx, b);
  }
  return b;
}

/** A bind group with explicit binding numbers (entry points leave some bindings out of their layout). */
export function bindGroupAt(ctx: GpuContext, pipeline: GPUComputePipeline, entries: [number, GPUBufferBinding | GPUBuffer][], label: string): GPUBindGroup {
  return ctx.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: entries.map(([binding, r]) => ({ binding, resource: 'buffer' in r ? r : { buffer: r } })),
  });
}

export function linearFlags(opts: LinearOptions): number {
  return (opts.accumulate ? FLAG_ACCUMULATE : 0) | (opts.bias ? FLAG_BIAS : 0);
}

export function checkTokens(ctx: GpuContext, n: number, what: string, maxTokens = Infinity): void {
  const max = Math.min(maxTokens, ctx.limits.maxComputeWorkgroupsPerDimension);
  if (!Number.isInteger(n) || n < 0 || n > max) {
    throw new GPUError('bad-token-count', `${what}: token count ${n} must be an integer in 0..${max}`, { tokens: n, max });
  }
}

/**
 * Bytes one application of a `rows` × `cols` matrix to `tokens` tokens moves at best: the packed
 * weights once, x, y (twice when accumulating) and the bias. Divide by the time for GB/s.
 */
export function linearBytes(w: { byteLength: number; rows: number; cols: number }, tokens: number, opts: LinearOptions = {}): number {
  return w.byteLength + tokens * w.cols * 4 + tokens * w.rows * 4 * (opts.accumulate ? 2 : 1) + (opts.bias ? w.rows * 4 : 0);
}

/** The three views of a part the matvec kernel binds (vec4, vec2 and u32 words of the same buffer). */
export function partViews(part: GpuWeightPart, first: number): [number, GPUBuffer][] {
  return [
    [first, part.buffer],
    [first + 1, part.buffer],
    [first + 2, part.buffer],
  ];
}

/**
 * y = W x for `tokens` tokens: x [T, w.cols] f32, y [T, yStride] f32 (see LinearOptions).
 * One dispatch per weight part; T > 1 re-reads the weights per token, so prefer matmulOp
 * (or linearOp, which chooses) for batches. Needs w.cols % 4 == 0.
 */
export function matvecOp(ctx: GpuContext, w: GpuWeight, x: GPUBuffer, y: GPUBuffer, opts: LinearOptions = {}): LinearOp {
  if (!matvecSupports(w)) {
    throw new UnsupportedModelError('bad-shape', `matvec needs a column count divisible by 4, '${w.label}' has ${w.cols}; use matmulOp`, {
      tensor: w.label,
      cols: w.cols,
    });
  }
  const WG = matvecWorkgroupSize(w.type, w.cols);
  const pipeline = ctx.pipeline('matvec', {
    defines: { ...reductionDefines(ctx), WG, ROWS: MATVEC_ROWS },
    constants: { WTYPE: w.type },
    entryPoint: 'main',
  });
  const flags = linearFlags(opts);
  const yStride = opts.yStride ?? w.rows;
  const parts = w.parts.map((part) => {
    const slot = ctx.arena.alloc();
    const bindGroup = bindGroupAt(
      ctx,
      pipeline,
      [[0, slot.binding], [1, x], [2, y], [3, opts.bias ?? zeroBuffer(ctx)], ...partViews(part, 4)],
      `matvec:${w.label}`,
    );
    const d: Dispatch = { label: `matvec:${w.label}`, pipeline, bindGroup, workgroups: [0, 1, 1] };
    return { part, slot, d };
  });
  const op = {
    dispatches: parts.map((p) => p.d),
    tokens: 0,
    setTokens(n: number) {
      checkTokens(ctx, n, `matvec '${w.label}'`, opts.maxTokens);
      op.tokens = n;
      for (const { part, slot, d } of parts) {
        writeParams(ctx.arena, slot, [part.rows, w.cols, part.rowStart, part.scaleOffset, n, yStride, opts.yOffset ?? 0, flags, 0]);
        const [gx, gy] = grid1d(Math.ceil(part.rows / MATVEC_ROWS), ctx.limits.maxComputeWorkgroupsPerDimension);
        d.workgroups = [gx, gy, n];
      }
    },
  };
  op.setTokens(opts.tokens ?? 1);
  return op;
}
