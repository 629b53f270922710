// Timing of recorded dispatches: many repetitions in one compute pass, one submit per trial,
// waited for with onSubmittedWorkDone; warm-up first, the median of several trials reported.
// Wall-clock time is the primary measure (it is what a user waits for, and it works on every
// adapter); when the device has timestamp queries, the pass's own GPU time is recorded beside it.
import { GPUError } from '../src/errors.ts';
import { encodeDispatches, type Dispatch, type GpuContext } from '../src/gpu/context.ts';

export interface TimingBudget {
  /** Wall time one trial should take; the repetition count is chosen to reach it. */
  targetTrialMs: number;
  /** Measured trials (after the warm-up); the median is reported. */
  trials: number;
  /** Upper bound on repetitions per trial (keeps command buffers of tiny kernels reasonable). */
  maxReps: number;
}

export interface Timing {
  /** Median milliseconds per repetition, wall clock from submit to onSubmittedWorkDone. */
  ms: number;
  /** Median milliseconds per repetition from timestamp queries around the pass (when available). */
  gpuMs?: number;
  reps: number;
  /** Per-repetition milliseconds of every trial, in order. */
  trialsMs: number[];
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Timestamp query resources, made once per device when it has the feature. */
class PassTimer {
  private readonly querySet: GPUQuerySet;
  private readonly resolve: GPUBuffer;
  private readonly readback: GPUBuffer;

  constructor(private readonly device: GPUDevice) {
    this.querySet = device.createQuerySet({ type: 'timestamp', count: 2 });
    this.resolve = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    this.readback = device.createBuffer({ size: 16, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
  }

  passDescriptor(): GPUComputePassDescriptor {
    return { timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } };
  }

  encodeResolve(enc: GPUCommandEncoder): void {
    enc.resolveQuerySet(this.querySet, 0, 2, this.resolve, 0);
    enc.copyBufferToBuffer(this.resolve, 0, this.readback, 0, 16);
  }

  /** Nanoseconds between the two timestamps of the last resolved pass, or undefined when they are unusable. */
  async read(): Promise<number | undefined> {
    await this.readback.mapAsync(GPUMapMode.READ);
    const [t0, t1] = new BigInt64Array(this.readback.getMappedRange().slice(0));
    this.readback.unmap();
    // Implementations may return zeros or a non-monotonic pair (e.g. across a clock change).
    return t1 > t0 && t0 > 0n ? Number(t1 - t0) : undefined;
  }
}

const timers = new WeakMap<GpuContext, PassTimer>();

export class KernelTimer {
  constructor(
    private readonly ctx: GpuContext,
    private readonly budget: TimingBudget,
  ) {}

  /**
   * Times `variants` (each a full set of dispatches for one repetition), cycling through them:
   * repetition i runs variants[i % variants.length]. Rotating through copies of the data that
   * together exceed the GPU's caches keeps small matrices from being served from cache.
   */
  async time(variants: readonly (readonly Dispatch[])[]): Promise<Timing> {
    const { ctx, budget } = this;
    ctx.arena.flush();
    // Warm-up: the first run pays for first touches and lazy driver work; the second estimates a repetition.
    await this.trial(variants, 1, false);
    const one = await this.trial(variants, Math.min(variants.length, budget.maxReps), false);
    const perRep = Math.max(one.wallMs / Math.min(variants.length, budget.maxReps), 1e-4);
    const reps = Math.max(1, Math.min(budget.maxReps, Math.round(budget.targetTrialMs / perRep)));
    if (reps > 1) await this.trial(variants, reps, false);
    const wall: number[] = [];
    const gpu: number[] = [];
    for (let t = 0; t < budget.trials; t++) {
      const r = await this.trial(variants, reps, true);
      wall.push(r.wallMs / reps);
      if (r.gpuNs !== undefined) gpu.push(r.gpuNs / 1e6 / reps);
    }
    return {
      ms: median(wall),
      gpuMs: gpu.length === wall.length ? median(gpu) : undefined,
      reps,
      trialsMs: wall,
    };
  }

  private async trial(variants: readonly (readonly Dispatch[])[], reps: number, stamp: boolean): Promise<{ wallMs: number; gpuNs?: number }> {
    const { device } = this.ctx;
    const timer = stamp && this.ctx.features.timestampQuery ? this.passTimer() : undefined;
    device.pushErrorScope('validation');
    const enc = device.createCommandEncoder({ label: 'bench' });
    const pass = enc.beginComputePass(timer?.passDescriptor());
    for (let i = 0; i < reps; i++) encodeDispatches(pass, variants[i % variants.length]);
    pass.end();
    timer?.encodeResolve(enc);
    const cmd = enc.finish();
    // Wait for anything queued earlier (uploads) so it is not counted.
    await device.queue.onSubmittedWorkDone();
    const t0 = performance.now();
    device.queue.submit([cmd]);
    await device.queue.onSubmittedWorkDone();
    const wallMs = performance.now() - t0;
    // A dispatch the device rejected would time as free; refuse the measurement instead.
    const err = await device.popErrorScope();
    if (err) throw new GPUError('bench-validation', `a benchmarked dispatch failed validation: ${err.message}`);
    return { wallMs, gpuNs: timer ? await timer.read() : undefined };
  }

  private passTimer(): PassTimer {
    let t = timers.get(this.ctx);
    if (!t) {
      t = new PassTimer(this.ctx.device);
      timers.set(this.ctx, t);
    }
    return t;
  }
}
