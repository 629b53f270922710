// What a family of architectures provides: one forward program, written twice (recorded on the GPU
// from src/model/blocks.ts, run on the CPU reference from src/model/cpu-blocks.ts), over the weights
// its section of the tensor table (src/model/tensors.ts) loads.
import type { GpuWeight } from '../../gpu/weights.ts';
import type { StepRecorder } from '../blocks.ts';
import type { CpuRun } from '../cpu-blocks.ts';
import type { LoadedGroup } from '../tensors.ts';

/** Loaded weights as the table gives them: globals by role, and per layer its roles (fused matrices split). */
export interface LoadedWeights<M, V> {
  global: LoadedGroup<M, V>;
  layers: LoadedGroup<M, V>[];
}

/** GPU weights: packed matrices and f32 vector buffers. */
export type GpuWeights = LoadedWeights<GpuWeight, GPUBuffer>;
/** CPU weights: every tensor dequantized to f32 (matrices row-major, (rows, cols)). */
export type CpuWeights = LoadedWeights<Float32Array, Float32Array>;

export interface FamilyProgram {
  /** Records one step (embedding, every layer, head) for any token count. */
  recordGpu(b: StepRecorder, w: GpuWeights): void;
  /** Runs one token at `pos` through every layer and the head, leaving its logits in r.s.logits. */
  forwardCpu(r: CpuRun, w: CpuWeights, token: number, pos: number): void;
}

/**
 * The loaded groups as a family's typed weights. The family's table section guarantees each
 * required role (fused matrices supply theirs by splitting), so the view is a cast.
 */
export function typedWeights<T>(w: LoadedWeights<unknown, unknown>): T {
  return { ...w.global, layers: w.layers } as T;
}
