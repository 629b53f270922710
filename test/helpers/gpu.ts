// GPU test harness: one Dawn device per test file, upload/readback helpers and guard words
// that catch out-of-bounds writes.
import { GpuContext, encodeDispatches, type Dispatch } from '../../src/gpu/context.ts';
import { acquireNodeDevice } from '../../src/node/gpu.ts';
import { fsShaderSources } from '../../src/node/shaders-fs.ts';
import { xorshift32 } from '../../src/random.ts';

let ctxPromise: Promise<GpuContext> | undefined;

// Arena slots are never freed: a test file's shared context serves every model it loads (a
// 2-layer model records about 70 ops, stories260K about 150), so the arena holds 4096 of them.
const ARENA_SLOTS = 4096;

/** Shared context; `variant` 'plain' disables subgroups so both paths can be tested. */
export function testContext(variant: 'default' | 'plain' = 'default'): Promise<GpuContext> {
  if (variant === 'plain') {
    return acquireNodeDevice({ useSubgroups: false, useF16: false }).then(
      (d) => new GpuContext(d.device, d.features, fsShaderSources(), { arenaSlots: ARENA_SLOTS }),
    );
  }
  ctxPromise ??= acquireNodeDevice().then((d) => new GpuContext(d.device, d.features, fsShaderSources(), { arenaSlots: ARENA_SLOTS }));
  return ctxPromise;
}

export const GUARD_WORD = 0x7fc0dead; // a NaN pattern no kernel writes
export const GUARD_WORDS = 64;
const STORAGE = 0x80 | 0x8 | 0x4; // STORAGE | COPY_DST | COPY_SRC

/** A storage buffer holding `data`, followed by guard words. */
export function uploadWords(ctx: GpuContext, data: Uint32Array | Float32Array | Int32Array, label = 'test-in'): GPUBuffer {
  const words = new Uint32Array(data.length + GUARD_WORDS).fill(GUARD_WORD);
  words.set(new Uint32Array(data.buffer, data.byteOffset, data.length));
  const buf = ctx.createBuffer(label, words.byteLength, STORAGE);
  ctx.device.queue.writeBuffer(buf, 0, words);
  return buf;
}

/** An output buffer of `n` words, all guard words. */
export function outputBuffer(ctx: GpuContext, n: number, label = 'test-out'): GPUBuffer {
  return uploadWords(ctx, new Uint32Array(n).fill(GUARD_WORD), label);
}

export async function readWords(ctx: GpuContext, buf: GPUBuffer, n: number): Promise<Uint32Array> {
  const bytes = (n + GUARD_WORDS) * 4;
  const staging = ctx.device.createBuffer({ size: Math.ceil(bytes / 16) * 16, usage: 0x1 | 0x8 }); // MAP_READ | COPY_DST
  const enc = ctx.device.createCommandEncoder();
  enc.copyBufferToBuffer(buf, 0, staging, 0, Math.ceil(bytes / 16) * 16 > buf.size ? buf.size : Math.ceil(bytes / 16) * 16);
  ctx.device.queue.submit([enc.finish()]);
  await staging.mapAsync(1);
  const out = new Uint32Array(staging.getMappedRange().slice(0, bytes));
  staging.unmap();
  staging.destroy();
  return out;
}

/** Reads `n` f32 values and checks the guard words after them are untouched. */
export async function readF32(ctx: GpuContext, buf: GPUBuffer, n: number): Promise<Float32Array> {
  const words = await readWords(ctx, buf, n);
  for (let i = n; i < n + GUARD_WORDS; i++) {
    if (words[i] !== GUARD_WORD) throw new Error(`out-of-bounds write: guard word ${i - n} after ${n} outputs was overwritten`);
  }
  return new Float32Array(words.buffer, 0, n).slice();
}

export async function readU32(ctx: GpuContext, buf: GPUBuffer, n: number): Promise<Uint32Array> {
  const words = await readWords(ctx, buf, n);
  for (let i = n; i < n + GUARD_WORDS; i++) {
    if (words[i] !== GUARD_WORD) throw new Error(`out-of-bounds write: guard word ${i - n} after ${n} outputs was overwritten`);
  }
  return words.slice(0, n);
}

/** Flushes the arena and runs the dispatches in one pass; waits for completion. */
export async function run(ctx: GpuContext, dispatches: Dispatch[]): Promise<void> {
  ctx.device.pushErrorScope('validation');
  ctx.arena.flush();
  const enc = ctx.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  encodeDispatches(pass, dispatches);
  pass.end();
  ctx.device.queue.submit([enc.finish()]);
  await ctx.device.queue.onSubmittedWorkDone();
  const err = await ctx.device.popErrorScope();
  if (err) throw new Error(`WebGPU validation error: ${err.message}`);
}

/** Seeded uniform random numbers in [lo, hi). */
export function randomF32(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const next = xorshift32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + ((next() >>> 8) / 16777216) * (hi - lo);
  return out;
}

/** Largest absolute difference and the relative error max|a-b| / max|b|. */
export function compare(a: Float32Array, b: Float32Array): { maxAbs: number; rel: number } {
  let maxAbs = 0;
  let ref = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : d;
    ref = Math.max(ref, Math.abs(b[i]));
  }
  return { maxAbs, rel: maxAbs / Math.max(ref, 1e-30) };
}
