// MLP gate dispatches: the fused gate+up+SiLU matvec for decode (matvec.wgsl main_gated), the
// SiLU-multiply for batches (mlp.wgsl), and gateUpOp, which records both forms and picks one per
// step by token count.
import { UnsupportedModelError } from '../../errors.ts';
import { writeParams } from '../arena.ts';
import { grid1d, type Dispatch, type GpuContext } from '../context.ts';
import type { GpuWeight } from '../weights.ts';
import { matmulOp } from './matmul.ts';
import {
  MATVEC_ROWS,
  bindGroupAt,
  checkTokens,
  linearBytes,
  matvecSupports,
  matvecWorkgroupSize,
  partViews,
  reductionDefines,
  type LinearOp,
} from './matvec.ts';

const WG = 256;

/** gate[0..n) = silu(gate) * up, in place. `setN` changes n for later steps without new bind groups. */
export function siluMulOp(ctx: GpuContext, gate: GPUBuffer, up: GPUBuffer, n: number): Dispatch & { setN(n: number): void } {
  const pipeline = ctx.pipeline('mlp', { constants: { WG } });
  const slot = ctx.arena.alloc();
  const d = {
    label: 'silu-mul',
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [slot.binding, gate, up], 'silu-mul'),
    workgroups: [0, 1, 1] as [number, number, number],
    setN(m: number) {
      writeParams(ctx.arena, slot, [m]);
      d.workgroups = m === 0 ? [0, 1, 1] : grid1d(Math.ceil(m / WG), ctx.limits.maxComputeWorkgroupsPerDimension);
    },
  };
  d.setN(n);
  return d;
}

function checkPair(gate: GpuWeight, up: GpuWeight): void {
  const same =
    gate.type === up.type &&
    gate.rows === up.rows &&
    gate.cols === up.cols &&
    gate.parts.length === up.parts.length &&
    gate.parts.every((p, i) => p.rowStart === up.parts[i].rowStart && p.rows === up.parts[i].rows);
  if (!same) {
    throw new UnsupportedModelError(
      'bad-shape',
      `the fused MLP needs gate '${gate.label}' and up '${up.label}' of the same type, shape and row split`,
      { gate: gate.label, up: up.label },
    );
  }
}

export interface GateUpOptions {
  /** Token count of the first step; default 1. */
  tokens?: number;
  /** Largest token count `setTokens` will get; default: no limit. */
  maxTokens?: number;
}

/**
 * Fused decode MLP gate: h[t, r] = silu(G x[t])[r] * (U x[t])[r] for T tokens, reading each
 * weight once per token. x [T, cols] f32, h [T, gate.rows] f32. Needs cols % 4 == 0.
 */
export function gateUpMatvecOp(ctx: GpuContext, gate: GpuWeight, up: GpuWeight, x: GPUBuffer, h: GPUBuffer, opts: GateUpOptions = {}): LinearOp {
  checkPair(gate, up);
  if (!matvecSupports(gate)) {
    throw new UnsupportedModelError('bad-shape', `the fused MLP matvec needs a column count divisible by 4, '${gate.label}' has ${gate.cols}`, {
      cols: gate.cols,
    });
  }
  const pipeline = ctx.pipeline('matvec', {
    defines: { ...reductionDefines(ctx), WG: matvecWorkgroupSize(gate.type, gate.cols), ROWS: MATVEC_ROWS },
    constants: { WTYPE: gate.type },
    entryPoint: 'main_gated',
  });
  const records = gate.parts.map((gp, i) => {
    const upPart = up.parts[i];
    const slot = ctx.arena.alloc();
    const label = `gate-up:${gate.label}`;
    const bindGroup = bindGroupAt(ctx, pipeline, [[0, slot.binding], [1, x], [2, h], ...partViews(gp, 4), ...partViews(upPart, 7)], label);
    const d: Dispatch = { label, pipeline, bindGroup, workgroups: [0, 1, 1] };
    return { gp, upPart, slot, d };
  });
  const op = {
    dispatches: records.map((r) => r.d),
    tokens: 0,
    setTokens(n: number) {
      checkTokens(ctx, n, `gate-up '${gate.label}'`, opts.maxTokens);
      op.tokens = n;
      for (const { gp, upPart, slot, d } of records) {
        writeParams(ctx.arena, slot, [gp.rows, gate.cols, gp.rowStart, gp.scaleOffset, n, gate.rows, 0, 0, upPart.scaleOffset]);
        const [gx, gy] = grid1d(Math.ceil(gp.rows / MATVEC_ROWS), ctx.limits.maxComputeWorkgroupsPerDimension);
        d.workgroups = [gx, gy, n];
      }
    },
  };
  op.setTokens(opts.tokens ?? 1);
  return op;
}

export interface MlpGateOptions extends GateUpOptions {
  /** Largest batch run through the fused matvec; default 1. */
  matvecMaxTokens?: number;
}

/**
 * The MLP gate for any batch: h [T, ffn] = silu(x Gᵀ) * (x Uᵀ), x [T, cols] f32. Batches up to
 * `matvecMaxTokens` use the fused matvec; larger ones run the gate matmul into h, the up matmul
 * into `scratch` ([maxTokens, ffn] f32) and the in-place SiLU-multiply. All are recorded
 * once; `setTokens(n)` enables the right ones.
 */
export function mlpGateOp(
  ctx: GpuContext,
  gate: GpuWeight,
  up: GpuWeight,
  x: GPUBuffer,
  h: GPUBuffer,
  scratch: GPUBuffer,
  opts: MlpGateOptions = {},
): LinearOp {
  checkPair(gate, up);
  const maxMv = matvecSupports(gate) ? (opts.matvecMaxTokens ?? 1) : 0;
  const fused = maxMv > 0 ? gateUpMatvecOp(ctx, gate, up, x, h, { ...opts, tokens: 0 }) : undefined;
  const common = { tokens: 0, maxTokens: opts.maxTokens };
  const g = matmulOp(ctx, gate, x, h, common);
  const u = matmulOp(ctx, up, x, scratch, common);
  const act = siluMulOp(ctx, h, scratch, 0);
  const op = {
    dispatches: [...(fused?.dispatches ?? []), ...g.dispatches, ...u.dispatches, act],
    tokens: 0,
    setTokens(n: number) {
      op.tokens = n;
      const useMv = fused !== undefined && n <= maxMv;
      fused?.setTokens(useMv ? n : 0);
      g.setTokens(useMv ? 0 : n);
      u.setTokens(useMv ? 0 : n);
      act.setN(useMv ? 0 : n * gate.rows);
    },
  };
  op.setTokens(opts.tokens ?? 1);
  return op;
}

/** Bytes the fused gate/up matvec moves for `tokens` tokens: both weights, x, h. */
export function gateUpBytes(gate: GpuWeight, up: GpuWeight, tokens: number): number {
  return linearBytes(gate, tokens) + up.byteLength;
}
