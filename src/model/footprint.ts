// What a model takes on the GPU, computed from its GGUF header alone (no weight is read), so that
// a model too large for the device is refused before its weights are downloaded. The numbers are
// the ones load uses: the packed weight layouts and their split into parts (src/gpu/weights.ts),
// the KV pool (PagedKvCache.poolBytes), and the activations, page table and attention scratch that
// GpuModel.load allocates (gpuModelSizes).
import { GPUError, KVCacheError } from '../errors.ts';
import { formatBytes } from '../format.ts';
import type { GGUFFile } from '../gguf/reader.ts';
import { attentionScratchBytes } from '../gpu/ops/attention.ts';
import { isWeightType, packedLayout, weightRowsPerPart } from '../gpu/weights.ts';
import { PagedKvCache } from '../kv/paged-cache.ts';
import type { KvDtype } from '../kv/chunk-record.ts';
import { KV_PAGE_SIZE } from '../kv/pages.ts';
import type { ModelConfig } from './config.ts';
import { gpuModelSizes } from './gpu-model.ts';
import { resolveTensors, tensorsByKind } from './tensors.ts';

export interface FootprintPlan {
  maxContext: number;
  kvBudgetTokens?: number;
  maxBatch?: number;
  kvDtype: KvDtype;
}

/** GPU bytes of a model at a plan, as allocated (buffers padded to 16 bytes). */
export interface Footprint {
  /** Packed matrices (in their parts) and f32 norm weights and biases. */
  weightBytes: number;
  /** The K and V pools of every layer. */
  kvBytes: number;
  /** Token slots of the pool. */
  kvTokens: number;
  /** One layer's K (or V) pool: one buffer, so it must fit one binding. */
  kvLayerPoolBytes: number;
  /** Activations, page table, RoPE table, attention split partials and readback buffers. */
  activationBytes: number;
  /** The largest activation buffer (one binding). */
  largestActivation: { name: string; bytes: number };
  /** A matrix whose single row does not fit one binding (it cannot be split further), if any. */
  rowTooLarge?: { tensor: string; rowBytes: number };
  totalBytes: number;
}

/** What the device offers: one binding, and a total it can plausibly hold (with where that number comes from). */
export interface DeviceBudget {
  /** min(maxStorageBufferBindingSize, maxBufferSize): what one weight part, pool or activation may take. */
  maxBindingBytes: number;
  /** Total bytes; undefined: unknown, only bindings are checked. */
  totalBytes?: number;
  /** Where totalBytes comes from, for the message ("navigator.deviceMemory", "os.totalmem()", "gpuMemoryBytes"). */
  totalSource?: string;
}

const pad16 = (n: number) => Math.max(16, Math.ceil(n / 16) * 16);

/** The model's GPU footprint at `plan` on a device binding at most `maxBindingBytes` per buffer. */
export function modelFootprint(file: GGUFFile, config: ModelConfig, plan: FootprintPlan, maxBindingBytes: number): Footprint {
  const { matrices, vectors } = tensorsByKind(resolveTensors(file, config));
  let weightBytes = 0;
  let rowTooLarge: Footprint['rowTooLarge'];
  for (const t of matrices) {
    if (!isWeightType(t.type)) continue; // resolveTensors refused it already
    const rows = t.shape[1] ?? 1;
    const cols = t.shape[0];
    const { rowsPerPart, rowBytes } = weightRowsPerPart(t.type, rows, cols, maxBindingBytes);
    if (rowsPerPart < 1) {
      rowTooLarge ??= { tensor: t.name, rowBytes };
      weightBytes += pad16(packedLayout(t.type, rows, cols).words * 4);
      continue;
    }
    for (let r0 = 0; r0 < rows; r0 += rowsPerPart) weightBytes += pad16(packedLayout(t.type, Math.min(rowsPerPart, rows - r0), cols).words * 4);
  }
  for (const t of vectors) weightBytes += pad16(t.nElements * 4);

  const sizes = gpuModelSizes(config, plan);
  const kvLayerPoolBytes = PagedKvCache.poolBytes(config, sizes.poolTokens, plan.kvDtype);
  const kvBytes = 2 * config.nLayers * pad16(kvLayerPoolBytes);
  const kvTokens = PagedKvCache.pagesFor(sizes.poolTokens) * KV_PAGE_SIZE;

  let largestActivation = { name: '', bytes: 0 };
  let activationBytes = 0;
  for (const [name, bytes] of Object.entries(sizes.activations)) {
    activationBytes += pad16(bytes);
    if (bytes > largestActivation.bytes) largestActivation = { name, bytes };
  }
  activationBytes += pad16(PagedKvCache.pageTableBytes(sizes.pageTableEntries));
  // RoPE tables: (maxContext, ropeDim/2) (cos, sin) f32 pairs; models with local layers have a second one.
  activationBytes += (config.localLayers.some(Boolean) ? 2 : 1) * pad16(plan.maxContext * config.ropeDim * 4);
  for (const opts of [sizes.attention.prefill, sizes.attention.decode]) {
    const scratch = attentionScratchBytes(config.nHeads, config.headDim, opts);
    if (scratch > 0) activationBytes += config.nLayers * pad16(scratch);
  }
  return {
    weightBytes,
    kvBytes,
    kvTokens,
    kvLayerPoolBytes,
    activationBytes,
    largestActivation,
    rowTooLarge,
    totalBytes: weightBytes + kvBytes + activationBytes,
  };
}

/**
 * Throws when the footprint does not fit the device, saying by how much and what to change: a
 * weight row or an activation larger than one binding (GPUError 'model-too-large'), a layer's KV
 * pool larger than one binding (KVCacheError 'kv-pool-too-large'), or a total above what the device
 * can plausibly hold (GPUError 'does-not-fit'). `fixedBytes` is memory the engine holds anyway
 * (the uniform arena).
 */
export function checkFootprint(name: string, fp: Footprint, budget: DeviceBudget, plan: FootprintPlan, fixedBytes = 0): void {
  const limit = budget.maxBindingBytes;
  if (fp.rowTooLarge) {
    const { tensor, rowBytes } = fp.rowTooLarge;
    throw new GPUError(
      'model-too-large',
      `${name}: one row of '${tensor}' takes ${formatBytes(rowBytes)} but this device binds at most ${formatBytes(limit)} per buffer (${formatBytes(rowBytes + 20 - limit)} over); use a GPU with larger storage bindings`,
      { tensor, needBytes: rowBytes, limitBytes: limit, overBytes: rowBytes + 20 - limit },
    );
  }
  if (fp.largestActivation.bytes > limit) {
    const { name: buffer, bytes } = fp.largestActivation;
    throw new GPUError(
      'model-too-large',
      `${name}: the activation buffer '${buffer}' needs ${formatBytes(bytes)} but this device binds at most ${formatBytes(limit)} per buffer (${formatBytes(bytes - limit)} over); use a smaller batch or a larger GPU`,
      { buffer, needBytes: bytes, limitBytes: limit, overBytes: bytes - limit },
    );
  }
  if (fp.kvLayerPoolBytes > limit) {
    const tokenBytes = fp.kvLayerPoolBytes / fp.kvTokens;
    const maxTokens = Math.floor(limit / (tokenBytes * KV_PAGE_SIZE)) * KV_PAGE_SIZE;
    throw new KVCacheError(
      'kv-pool-too-large',
      `${name}: a KV pool of ${fp.kvTokens} tokens needs ${formatBytes(fp.kvLayerPoolBytes)} per layer but this device binds at most ${formatBytes(limit)} per buffer (${formatBytes(fp.kvLayerPoolBytes - limit)} over); use a KV budget (kvBudgetTokens, maxContext) of at most ${maxTokens} tokens${plan.kvDtype === 'f32' ? ", or kvDtype 'f16'" : ''}`,
      { tokenBudget: fp.kvTokens, poolBytes: fp.kvLayerPoolBytes, max: limit, maxTokens, overBytes: fp.kvLayerPoolBytes - limit },
    );
  }
  const need = fp.totalBytes + fixedBytes;
  if (budget.totalBytes !== undefined && need > budget.totalBytes) {
    const over = need - budget.totalBytes;
    throw new GPUError(
      'does-not-fit',
      `${name} needs ${formatBytes(need)} of GPU memory (weights ${formatBytes(fp.weightBytes)}, KV pool ${formatBytes(fp.kvBytes)} for ${fp.kvTokens} tokens, ` +
        `activations ${formatBytes(fp.activationBytes + fixedBytes)}) but this device can plausibly hold ${formatBytes(budget.totalBytes)} ` +
        `(${budget.totalSource ?? 'given'}): ${formatBytes(over)} too much. Use a smaller maxContext or kvBudgetTokens, a smaller quantization of the model, ` +
        `or pass gpuMemoryBytes when the device has more memory`,
      {
        needBytes: need,
        availableBytes: budget.totalBytes,
        overBytes: over,
        weightBytes: fp.weightBytes,
        kvBytes: fp.kvBytes,
        activationBytes: fp.activationBytes + fixedBytes,
        source: budget.totalSource,
      },
    );
  }
}
