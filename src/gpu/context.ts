// GPU context: one device, its granted limits and features, the shader registry, a pipeline
// cache and the uniform arena. Knows nothing about models.
import { GPUError } from '../errors.ts';
import { UniformArena } from './arena.ts';
import { expandShader, type ShaderDefines, type ShaderSources } from './shaders.ts';

export interface GpuFeatures {
  /** `shader-f16` granted: kernels may use f16 arithmetic and storage. */
  shaderF16: boolean;
  /** `subgroups` granted: reductions may use subgroupAdd/subgroupMax. */
  subgroups: boolean;
  timestampQuery: boolean;
}

export interface GpuContextOptions {
  /** Set false to force the f32 / shared-memory paths even when the adapter has the features. */
  useF16?: boolean;
  useSubgroups?: boolean;
  arenaSlots?: number;
}

/** Describes the adapter in one line (vendor, architecture, fallback flag). */
export function describeAdapter(info: GPUAdapterInfo | undefined): string {
  if (!info) return 'unknown adapter';
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((s) => s && s.length > 0);
  const name = parts.length > 0 ? parts.join(' ') : 'unnamed adapter';
  return (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter ? `${name} (fallback)` : name;
}

/**
 * Requests a device with the adapter's full limits (the defaults are far smaller: 128 MiB per
 * storage binding, 16 KiB workgroup memory) and the optional features chunklm uses.
 */
export async function requestChunklmDevice(
  adapter: GPUAdapter,
  opts: GpuContextOptions = {},
): Promise<{ device: GPUDevice; features: GpuFeatures }> {
  const want: GPUFeatureName[] = [];
  const shaderF16 = opts.useF16 !== false && adapter.features.has('shader-f16');
  const subgroups = opts.useSubgroups !== false && adapter.features.has('subgroups' as GPUFeatureName);
  const timestampQuery = adapter.features.has('timestamp-query');
  if (shaderF16) want.push('shader-f16');
  if (subgroups) want.push('subgroups' as GPUFeatureName);
  if (timestampQuery) want.push('timestamp-query');
  const l = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
  };
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures: want, requiredLimits });
  } catch (err) {
    throw new GPUError('device-request-failed', `the WebGPU adapter refused a device: ${(err as Error).message}`, {}, { cause: err });
  }
  return { device, features: { shaderF16, subgroups, timestampQuery } };
}

export class GpuContext {
  readonly arena: UniformArena;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private lost: GPUDeviceLostInfo | undefined;
  private liveBytes = 0;
  private peakBytes = 0;

  constructor(
    readonly device: GPUDevice,
    readonly features: GpuFeatures,
    readonly shaders: ShaderSources,
    opts: GpuContextOptions = {},
  ) {
    this.arena = new UniformArena(device, opts.arenaSlots);
    device.lost.then((info) => {
      this.lost = info;
    });
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** Throws a GPUError when the device has been lost (driver reset, tab in background too long, destroy()). */
  assertAlive(): void {
    if (this.lost) {
      throw new GPUError('device-lost', `the GPU device was lost (${this.lost.reason}: ${this.lost.message}); reload the model`);
    }
  }

  /** Defines every shader gets: feature switches for the `{{...}}` placeholder step. */
  baseDefines(): ShaderDefines {
    return {
      ENABLE_SUBGROUPS: this.features.subgroups ? 'enable subgroups;' : '',
      ENABLE_F16: this.features.shaderF16 ? 'enable f16;' : '',
    };
  }

  /** A compute pipeline for `shaders/<name>.wgsl`, made once per (defines, constants, entry point). */
  pipeline(
    name: string,
    opts: { defines?: ShaderDefines; constants?: Record<string, number>; entryPoint?: string } = {},
  ): GPUComputePipeline {
    const defines = { ...this.baseDefines(), ...opts.defines };
    const key = JSON.stringify([name, defines, opts.constants ?? {}, opts.entryPoint ?? 'main']);
    let p = this.pipelines.get(key);
    if (!p) {
      const code = expandShader(this.shaders, name, defines);
      const module = this.device.createShaderModule({ label: name, code });
      p = this.device.createComputePipeline({
        label: `${name}:${opts.entryPoint ?? 'main'}`,
        layout: 'auto',
        compute: { module, entryPoint: opts.entryPoint ?? 'main', constants: opts.constants },
      });
      this.pipelines.set(key, p);
    }
    return p;
  }

  createBuffer(label: string, size: number, usage: GPUBufferUsageFlags): GPUBuffer {
    const max = this.device.limits.maxBufferSize;
    if (size > max) {
      throw new GPUError('buffer-too-large', `buffer '${label}' needs ${size} bytes but this device allows at most ${max}`, {
        size,
        max,
      });
    }
    // Sizes are padded to 16 bytes so vectorized loads never step past the end.
    const bytes = Math.max(16, Math.ceil(size / 16) * 16);
    const buffer = this.device.createBuffer({ label, size: bytes, usage });
    // Every buffer the project makes goes through here, so live and peak bytes are counted here:
    // destroy() (called on the buffer itself, anywhere) gives its bytes back once.
    this.liveBytes += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    const destroy = buffer.destroy.bind(buffer);
    let live = true;
    buffer.destroy = () => {
      if (live) this.liveBytes -= bytes;
      live = false;
      destroy();
    };
    return buffer;
  }

  /** GPU bytes of the buffers made through createBuffer and not destroyed, and the most there were at once. */
  memory(): { liveBytes: number; peakBytes: number } {
    return { liveBytes: this.liveBytes, peakBytes: this.peakBytes };
  }

  /** Starts a new peak from what is live now (say, before a model loads). */
  resetPeak(): void {
    this.peakBytes = this.liveBytes;
  }

  bindGroup(pipeline: GPUComputePipeline, resources: (GPUBufferBinding | GPUBuffer)[], label?: string): GPUBindGroup {
    return this.device.createBindGroup({
      label,
      layout: pipeline.getBindGroupLayout(0),
      entries: resources.map((r, i) => ({ binding: i, resource: 'buffer' in r ? r : { buffer: r } })),
    });
  }
}

/** One recorded kernel launch, made once and replayed every step. */
export interface Dispatch {
  readonly label: string;
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
  /** Workgroup counts; mutable so per-step sizes (tokens in a batch, KV length) can change without new bind groups. */
  workgroups: [number, number, number];
}

export function encodeDispatches(pass: GPUComputePassEncoder, dispatches: readonly Dispatch[]): void {
  for (const d of dispatches) {
    const [x, y, z] = d.workgroups;
    if (x === 0 || y === 0 || z === 0) continue;
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(x, y, z);
  }
}

/** Splits a 1-D workgroup count across x and y when it exceeds the per-dimension limit. */
export function grid1d(n: number, maxPerDim: number): [number, number, number] {
  if (n <= maxPerDim) return [n, 1, 1];
  const y = Math.ceil(n / maxPerDim);
  return [Math.ceil(n / y), y, 1];
}
