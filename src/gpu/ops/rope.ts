// RoPE: the cos/sin table shared by the query rotation and the attention kernels, and the
// in-place query rotation dispatch (shaders/rope.wgsl).
import { UnsupportedModelError } from '../../errors.ts';
import { writeParams } from '../arena.ts';
import { grid1d, type Dispatch, type GpuContext } from '../context.ts';

/** 'norm' rotates adjacent pairs (2i, 2i+1) like llama; 'neox' rotates (i, i + ropeDim/2) like qwen2. */
export type RopeMode = 'norm' | 'neox';

const WG = 256;

/** RoPE scaling applied to the table: ggml's rope with freq_scale and attn_factor (no YaRN). */
export interface RopeScaling {
  /** Angles are multiplied by it (linear scaling: 1 / factor). Default 1. */
  freqScale?: number;
  /** cos and sin are multiplied by it, so rotated Q and K both are (Phi-3 LongRoPE). Default 1. */
  attnFactor?: number;
}

/**
 * The cos/sin table, [maxPos, ropeDim/2] pairs of (cos, sin) as f32, computed in f64:
 * theta(pos, i) = pos * freqScale * base^(-2i/ropeDim) / freqFactors[i] (freqFactors: `rope_freqs`
 * or a LongRoPE factor tensor, all ones when absent), each value times attnFactor, as ggml's rope
 * computes them. Row `pos` serves every token at that absolute position.
 */
export function buildRopeTable(maxPos: number, ropeDim: number, base: number, freqFactors?: Float32Array, scaling: RopeScaling = {}): Float32Array {
  if (ropeDim <= 0 || ropeDim % 2 !== 0) {
    throw new UnsupportedModelError('bad-shape', `RoPE dimension ${ropeDim} must be a positive even number`, { ropeDim });
  }
  const half = ropeDim / 2;
  if (freqFactors && freqFactors.length < half) {
    throw new UnsupportedModelError('bad-shape', `rope_freqs has ${freqFactors.length} values but RoPE needs ${half}`, {
      have: freqFactors.length,
      need: half,
    });
  }
  const freqScale = scaling.freqScale ?? 1;
  const mscale = scaling.attnFactor ?? 1;
  const freq = new Float64Array(half);
  for (let i = 0; i < half; i++) freq[i] = (freqScale * Math.pow(base, (-2 * i) / ropeDim)) / (freqFactors ? freqFactors[i] : 1);
  const table = new Float32Array(maxPos * half * 2);
  for (let pos = 0; pos < maxPos; pos++) {
    for (let i = 0; i < half; i++) {
      const theta = pos * freq[i];
      table[(pos * half + i) * 2] = Math.cos(theta) * mscale;
      table[(pos * half + i) * 2 + 1] = Math.sin(theta) * mscale;
    }
  }
  return table;
}

/** Uploads a table from buildRopeTable into a read-only storage buffer. */
export function uploadRopeTable(ctx: GpuContext, table: Float32Array): GPUBuffer {
  const buf = ctx.createBuffer('rope-table', table.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
  ctx.device.queue.writeBuffer(buf, 0, table);
  return buf;
}

export interface RopeShape {
  nHeads: number;
  headDim: number;
  ropeDim: number;
  mode: RopeMode;
  /** Rows in the cos/sin table; positions must stay below it. */
  maxPos: number;
  /** Elements between consecutive tokens' rows (default nHeads*headDim, larger inside a fused QKV buffer). */
  stride?: number;
  /** Element index of token 0, head 0 (default 0). */
  offset?: number;
}

export function checkRopeShape(s: { headDim: number; ropeDim: number }): void {
  if (s.ropeDim <= 0 || s.ropeDim % 2 !== 0 || s.ropeDim > s.headDim) {
    throw new UnsupportedModelError(
      'bad-shape',
      `RoPE dimension ${s.ropeDim} must be even and at most the head dimension ${s.headDim}`,
      { ropeDim: s.ropeDim, headDim: s.headDim },
    );
  }
}

/**
 * Rotates x in place: x [nTokens, stride] f32 holding nHeads heads of headDim values per token
 * from `offset`; positions [nTokens] u32; table [maxPos, ropeDim/2] vec2 f32.
 * `setTokens(n)` changes the token count for later steps without new bind groups.
 */
export function ropeDispatch(
  ctx: GpuContext,
  x: GPUBuffer,
  positions: GPUBuffer,
  table: GPUBuffer,
  shape: RopeShape,
  nTokens: number,
): Dispatch & { setTokens(n: number): void } {
  checkRopeShape(shape);
  const pipeline = ctx.pipeline('rope', { constants: { WG } });
  const slot = ctx.arena.alloc();
  const half = shape.ropeDim / 2;
  const d = {
    label: 'rope',
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [slot.binding, x, positions, table], 'rope'),
    workgroups: [0, 1, 1] as [number, number, number],
    setTokens(n: number) {
      writeParams(ctx.arena, slot, [
        n,
        shape.nHeads,
        shape.headDim,
        shape.ropeDim,
        shape.mode === 'neox' ? 1 : 0,
        shape.maxPos,
        shape.stride ?? shape.nHeads * shape.headDim,
        shape.offset ?? 0,
      ]);
      d.workgroups = grid1d(Math.ceil((n * shape.nHeads * half) / WG), ctx.limits.maxComputeWorkgroupsPerDimension);
    },
  };
  d.setTokens(nTokens);
  return d;
}
