// KV write dispatch (shaders/kv_write.wgsl): copies the new tokens' K and V rows into their
// page slots. Keys are stored before RoPE; attention rotates them by position when it loads them.
// Pools hold f32 values or f16 halves (two per u32 word, element 2i in the low half of word i).
import { UnsupportedModelError } from '../../errors.ts';
import { writeParams } from '../arena.ts';
import { grid1d, type Dispatch, type GpuContext } from '../context.ts';

/** Token slots per KV page. The page table and the attention kernels assume this value. */
export const KV_PAGE_SIZE = 16;

/** Element type of the KV pools: 'f16' halves the bytes per key and value (storage only; math stays f32). */
export type KvDtype = 'f32' | 'f16';

/** Bytes of one value in a pool of this dtype. */
export function kvDtypeBytes(dtype: KvDtype): number {
  return dtype === 'f16' ? 2 : 4;
}

/** A slot value that makes kv_write skip the token (padding rows of a batch). */
export const KV_SLOT_SKIP = 0xffffffff;

const WG = 256;

/**
 * Writes rows t < nTokens of kNew, vNew ([nTokens, kvDim] f32) into kPool, vPool ([nPages*16, kvDim]
 * of `opts.kvDtype`, default f32) at row slots[t] (u32 [nTokens], slot = page*16 + offset within the
 * page; KV_SLOT_SKIP skips). kvDim = nKvHeads*headDim must be a multiple of 4. f16 goes through WGSL's
 * pack2x16float, which leaves the direction of an inexact rounding and values past 65504 to the
 * device (ties to even on SwiftShader, as src/gpu/ref/f16.ts). `setTokens(n)` changes the count per step.
 */
export function kvWriteDispatch(
  ctx: GpuContext,
  bufs: { kPool: GPUBuffer; vPool: GPUBuffer; kNew: GPUBuffer; vNew: GPUBuffer; slots: GPUBuffer },
  kvDim: number,
  nTokens: number,
  opts: { kvDtype?: KvDtype } = {},
): Dispatch & { setTokens(n: number): void } {
  if (kvDim <= 0 || kvDim % 4 !== 0) {
    throw new UnsupportedModelError('bad-shape', `KV row width ${kvDim} (nKvHeads*headDim) must be a positive multiple of 4`, { kvDim });
  }
  const kvDtype = opts.kvDtype ?? 'f32';
  const pipeline = ctx.pipeline('kv_write', { defines: { KV_DTYPE: kvDtype }, constants: { WG } });
  const slot = ctx.arena.alloc();
  const kv4 = kvDim / 4;
  const d = {
    label: 'kv-write',
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [slot.binding, bufs.kPool, bufs.vPool, bufs.kNew, bufs.vNew, bufs.slots], 'kv-write'),
    workgroups: [0, 1, 1] as [number, number, number],
    setTokens(n: number) {
      writeParams(ctx.arena, slot, [n, kv4]);
      d.workgroups = grid1d(Math.ceil((n * kv4) / WG), ctx.limits.maxComputeWorkgroupsPerDimension);
    },
  };
  d.setTokens(nTokens);
  return d;
}
