// Token sampling on the GPU (shaders/sample.wgsl): greedy, or temperature with top-k and top-p and a
// seeded counter-based PRNG. One workgroup; the result is one u32 the host reads back and the next
// step's embedding kernel reads directly.
import { InvalidRequestError } from '../../errors.ts';
import { writeParams } from '../arena.ts';
import type { Dispatch, GpuContext } from '../context.ts';

export interface SampleParams {
  /** <= 0: greedy (argmax). */
  temperature: number;
  /** 0 (or >= vocab): off; 1: greedy. */
  topK: number;
  /** 1: off. Quantized to 1/65536 (samplingTopP16); 0 keeps only the top token (and its ties). */
  topP: number;
  /** u32 seed; with the step it fully determines the draw. */
  seed: number;
  /** Step counter (the index of the generated token), mixed with the seed by the PRNG. */
  step: number;
}

/** top-p as the kernel's 1/65536 fixed point (65536: off). */
export function samplingTopP16(topP: number): number {
  if (!(topP < 1)) return 65536;
  return Math.max(0, Math.min(65535, Math.round(topP * 65536)));
}

/** 1/temperature as the kernel's f32, capped so that (x - max) * it never makes 0 * inf. */
export function samplingInvTemp(temperature: number): number {
  return Math.fround(Math.min(1 / temperature, 1e30));
}

export interface SampleDispatch extends Dispatch {
  /** Sets temperature, topK, topP, seed and step (all of them; a step is a new token). */
  setParams(params: SampleParams): void;
  /** Advances only the step counter (the token index the PRNG mixes with the seed). */
  setStep(step: number): void;
}

/** Threads of the sampling workgroup: 1024 where allowed (more loads in flight), never below 256. */
export function sampleWorkgroupSize(ctx: GpuContext): number {
  const max = Math.min(ctx.limits.maxComputeInvocationsPerWorkgroup, ctx.limits.maxComputeWorkgroupSizeX);
  return max >= 1024 ? 1024 : max >= 512 ? 512 : 256;
}

/**
 * logits [vocab] f32 -> out[outIndex] u32 token id. `outIndex` lets a caller keep a ring of ids.
 * Throws InvalidRequestError for a negative topK, a topP outside [0, 1] or a non-u32 seed.
 */
export function sampleDispatch(
  ctx: GpuContext,
  logits: GPUBuffer,
  out: GPUBuffer,
  vocab: number,
  params: SampleParams,
  outIndex = 0,
): SampleDispatch {
  const wg = sampleWorkgroupSize(ctx);
  const pipeline = ctx.pipeline('sample', { constants: { WG: wg } });
  const slot = ctx.arena.alloc();
  let current = params;
  const write = () => {
    const p = current;
    const greedy = !(p.temperature > 0) || p.topK === 1;
    writeParams(ctx.arena, slot, [
      vocab,
      greedy ? 1 : 0,
      { f32: greedy ? 1 : samplingInvTemp(p.temperature) },
      p.topK,
      samplingTopP16(p.topP),
      p.seed >>> 0,
      p.step >>> 0,
      outIndex,
    ]);
  };
  const d: SampleDispatch = {
    label: 'sample',
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [slot.binding, logits, out], 'sample'),
    workgroups: [1, 1, 1],
    setParams(p: SampleParams) {
      checkSampleParams(p);
      current = { ...p };
      write();
    },
    setStep(step: number) {
      current = { ...current, step };
      write();
    },
  };
  d.setParams(params);
  return d;
}

export function checkSampleParams(p: SampleParams): void {
  if (!Number.isInteger(p.topK) || p.topK < 0) {
    throw new InvalidRequestError('bad-top-k', `topK must be a whole number >= 0 (0 turns it off), got ${p.topK}`, { topK: p.topK });
  }
  if (!(p.topP >= 0 && p.topP <= 1)) {
    throw new InvalidRequestError('bad-top-p', `topP must be in [0, 1] (1 turns it off), got ${p.topP}`, { topP: p.topP });
  }
  if (Number.isNaN(p.temperature)) {
    throw new InvalidRequestError('bad-temperature', 'temperature must be a number (0 or less means greedy)');
  }
  if (!Number.isInteger(p.seed) || p.seed < 0 || p.seed > 0xffffffff) {
    throw new InvalidRequestError('bad-seed', `seed must be a whole number in [0, 2^32), got ${p.seed}`, { seed: p.seed });
  }
}
