// Kernel benchmarks: the copy kernel's bandwidth, then every kernel family's throughput as a
// fraction of it. Bytes moved come from the ops' own byte counters (linearBytes, ...), so a
// kernel at fractionOfCopy 1.0 moves its minimal bytes as fast as a plain copy does.
import { xorshift32 } from '../src/random.ts';
import { GPUError } from '../src/errors.ts';
import type { GpuContext } from '../src/gpu/context.ts';
import { attentionDispatches } from '../src/gpu/ops/attention.ts';
import { copyDispatch } from '../src/gpu/ops/elementwise.ts';
import { embeddingBytes, embeddingOp } from '../src/gpu/ops/embedding.ts';
import { KV_PAGE_SIZE, kvDtypeBytes, type KvDtype } from '../src/gpu/ops/kv.ts';
import { linearOp } from '../src/gpu/ops/matmul.ts';
import { packF16Words } from '../src/gpu/ref/f16.ts';
import { linearBytes, type LinearOp } from '../src/gpu/ops/matvec.ts';
import { gateUpBytes, gateUpMatvecOp } from '../src/gpu/ops/mlp.ts';
import { rmsnormBytes, rmsnormOp } from '../src/gpu/ops/rmsnorm.ts';
import { buildRopeTable, uploadRopeTable } from '../src/gpu/ops/rope.ts';
import { uploadWeight, weightBlockSize, WEIGHT_TYPES, type GpuWeight, type WeightType } from '../src/gpu/weights.ts';
import { GGMLType, ggmlTypeName, quantize } from '../src/gguf/quant.ts';
import type { KernelTimer, Timing } from './timing.ts';

export interface KernelSizes {
  /** Bytes of the copy kernel's source (it moves twice this). */
  copyBytes: number;
  /** Data a benchmark cycles through, so repeated runs of a small kernel are not served from cache. */
  rotationBytes: number;
  /** Most copies of one matrix or KV pool made for the rotation. */
  maxCopies: number;
  /** Matrices, rows (out) × cols (in); `gateUp` also times the fused gate/up matvec on two of them. */
  matrices: { name: string; rows: number; cols: number; gateUp?: boolean }[];
  /** Tokens of the prefill matmul. */
  prefillTokens: number;
  /** Decode attention: KV lengths (multiples of 16) and the head layout. */
  kvLengths: number[];
  attention: { nHeads: number; nKvHeads: number; headDim: number };
  /** RMSNorm width and rows (rows: enough to leave the cache on a GPU). */
  normCols: number;
  normRows: number;
  /** Embedding lookups per run. */
  embeddingTokens: number;
}

export interface KernelResult {
  name: string;
  family: 'copy' | 'matvec' | 'gate-up' | 'matmul' | 'attention' | 'rmsnorm' | 'embedding';
  weightType?: string;
  /** What was run, in words (rows × cols, tokens, KV length). */
  shape: string;
  /** Minimal bytes one run moves (for matmul: weights, activations in and out). */
  bytes: number;
  flops?: number;
  /** Median milliseconds per run (wall clock). */
  ms: number;
  /** Median milliseconds per run from timestamp queries, when the device has them. */
  gpuMs?: number;
  reps: number;
  /** Copies of the data the runs cycled through. */
  copies: number;
  gbPerS: number;
  gflopPerS?: number;
  /** For matmul: the weights alone divided by the time, for comparison with decode. */
  weightGbPerS?: number;
  /** gbPerS over the copy kernel's GB/s (for matmul, context only: it is bound by arithmetic). */
  fractionOfCopy: number;
}

/** Seeded uniform values in [-1, 1). */
export function randomValues(n: number, seed: number): Float32Array {
  const next = xorshift32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() >>> 8) / 8388608 - 1;
  return out;
}

const STORAGE = 0x80 | 0x8 | 0x4; // STORAGE | COPY_DST | COPY_SRC (the WebGPU globals exist only once Dawn is loaded)

function result(
  base: Omit<KernelResult, 'ms' | 'gpuMs' | 'reps' | 'gbPerS' | 'fractionOfCopy'>,
  t: Timing,
  copyGbPerS: number,
): KernelResult {
  const gbPerS = base.bytes / (t.ms * 1e6);
  return {
    ...base,
    ms: t.ms,
    gpuMs: t.gpuMs,
    reps: t.reps,
    gbPerS,
    gflopPerS: base.flops !== undefined ? base.flops / (t.ms * 1e6) : undefined,
    fractionOfCopy: copyGbPerS > 0 ? gbPerS / copyGbPerS : 0,
  };
}

export class KernelBench {
  private readonly made: GPUBuffer[] = [];

  constructor(
    private readonly ctx: GpuContext,
    private readonly timer: KernelTimer,
    private readonly sizes: KernelSizes,
    private readonly log: (line: string) => void,
  ) {}

  /** Copy-kernel bandwidth: GB/s = 2 × bytes / time. */
  async copy(): Promise<KernelResult> {
    const limit = Math.min(this.ctx.limits.maxStorageBufferBindingSize, this.ctx.limits.maxBufferSize);
    const bytes = Math.floor(Math.min(this.sizes.copyBytes, limit) / 16) * 16;
    const src = this.buffer('copy-src', bytes);
    const dst = this.buffer('copy-dst', bytes);
    // Non-zero data, so no layer can shortcut zero pages.
    const chunk = new Uint8Array(randomValues(Math.min(bytes, 1 << 22) / 4, 7).buffer);
    for (let o = 0; o < bytes; o += chunk.byteLength) this.ctx.device.queue.writeBuffer(src, o, chunk, 0, Math.min(chunk.byteLength, bytes - o));
    const d = copyDispatch(this.ctx, dst, src, bytes);
    const t = await this.timer.time([[d]]);
    this.release();
    const r = result({ name: 'copy', family: 'copy', shape: `${mib(bytes)} MiB`, bytes: 2 * bytes, copies: 1 }, t, 0);
    return { ...r, fractionOfCopy: 1 };
  }

  /**
   * Decode matvec (1 token), the fused gate/up matvec and the prefill matmul for every weight
   * type and matrix, rotating through copies of each matrix.
   */
  async matrices(copyGbPerS: number): Promise<KernelResult[]> {
    const out: KernelResult[] = [];
    const T = this.sizes.prefillTokens;
    // One set of values per element count, quantized once per type and shape.
    const valuesByCount = new Map<number, Float32Array>();
    const values = (n: number) => {
      if (!valuesByCount.has(n)) valuesByCount.set(n, randomValues(n, 11 + valuesByCount.size));
      return valuesByCount.get(n)!;
    };
    for (const type of WEIGHT_TYPES) {
      const typeName = ggmlTypeName(type);
      const quantized = new Map<number, Uint8Array>();
      for (const m0 of this.sizes.matrices) {
        const m = blockShape(m0, type);
        const shape = `${m.rows}×${m.cols}`;
        const n = m.rows * m.cols;
        if (!quantized.has(n)) quantized.set(n, quantize(type, values(n)));
        const weights = this.weightCopies(`${m.name}-${typeName}`, type, quantized.get(n)!, m.rows, m.cols);
        const w = weights[0];
        const x = this.buffer('x', T * m.cols * 4);
        const y = this.buffer('y', T * m.rows * 4);
        this.ctx.device.queue.writeBuffer(x, 0, randomValues(T * m.cols, 3));
        const ops: LinearOp[] = weights.map((wc) => linearOp(this.ctx, wc, x, y, { tokens: 1, maxTokens: T }));

        const mv = await this.timer.time(ops.map((op) => op.dispatches));
        out.push(
          result(
            { name: `matvec ${m.name}`, family: 'matvec', weightType: typeName, shape, bytes: linearBytes(w, 1), flops: 2 * m.rows * m.cols, copies: weights.length },
            mv,
            copyGbPerS,
          ),
        );
        this.log(line(out[out.length - 1]));

        if (m.gateUp) {
          // The fused gate/up matvec of the MLP reads two matrices of this shape per token.
          const h = this.buffer('h', m.rows * 4);
          const pairs = weights.map((g, i) => gateUpMatvecOp(this.ctx, g, weights[(i + 1) % weights.length], x, h, { tokens: 1 }));
          const gu = await this.timer.time(pairs.map((op) => op.dispatches));
          out.push(
            result(
              { name: `gate+up ${m.name}`, family: 'gate-up', weightType: typeName, shape: `2 × ${shape}`, bytes: gateUpBytes(w, w, 1), flops: 4 * m.rows * m.cols, copies: weights.length },
              gu,
              copyGbPerS,
            ),
          );
          this.log(line(out[out.length - 1]));
        }

        for (const op of ops) op.setTokens(T);
        const mm = await this.timer.time(ops.map((op) => op.dispatches));
        const r = result(
          { name: `matmul ${m.name}`, family: 'matmul', weightType: typeName, shape: `${shape}, ${T} tokens`, bytes: linearBytes(w, T), flops: 2 * T * m.rows * m.cols, copies: weights.length },
          mm,
          copyGbPerS,
        );
        r.weightGbPerS = w.byteLength / (mm.ms * 1e6);
        out.push(r);
        this.log(line(r));
        this.release();
      }
    }
    return out;
  }

  /**
   * Decode attention (one query token over kvLen keys), rotating through per-layer KV pools, for f32
   * and f16 pools (f16 reads half the bytes per key).
   */
  async attention(copyGbPerS: number): Promise<KernelResult[]> {
    const out: KernelResult[] = [];
    for (const kvLen of this.sizes.kvLengths) {
      for (const kvDtype of ['f32', 'f16'] as const) out.push(await this.attentionAt(kvLen, kvDtype, copyGbPerS));
    }
    return out;
  }

  private async attentionAt(kvLen: number, kvDtype: KvDtype, copyGbPerS: number): Promise<KernelResult> {
    const { nHeads, nKvHeads, headDim } = this.sizes.attention;
    const kvDim = nKvHeads * headDim;
    const nPages = Math.ceil(kvLen / KV_PAGE_SIZE);
    const poolBytes = nPages * KV_PAGE_SIZE * kvDim * kvDtypeBytes(kvDtype); // (nPages*16, kvDim) of kvDtype
    const layers = this.copyCount(2 * poolBytes);
    // Words of f32 values or of packed halves (random words would hold f16 infinities and NaNs).
    const words = Math.min(poolBytes, 1 << 22) / 4;
    const pattern = kvDtype === 'f16' ? packF16Words(randomValues(2 * words, 5)) : randomValues(words, 5);
    const fill = (b: GPUBuffer) => {
      for (let o = 0; o < poolBytes; o += pattern.byteLength) {
        this.ctx.device.queue.writeBuffer(b, o, pattern, 0, Math.min(pattern.length, (poolBytes - o) / 4));
      }
    };
    // Page table: page i holds positions 16i.. (one vec4<u32> per entry).
    const table = new Uint32Array(nPages * 4);
    for (let i = 0; i < nPages; i++) table.set([i, i * KV_PAGE_SIZE, Math.min(KV_PAGE_SIZE, kvLen - i * KV_PAGE_SIZE), 0], i * 4);
    const pageTable = this.upload('page-table', table);
    const positions = this.upload('positions', new Uint32Array([kvLen - 1, 0, 0, 0]));
    const ropeTable = uploadRopeTable(this.ctx, buildRopeTable(kvLen, headDim, 1e6));
    this.made.push(ropeTable);
    const q = this.upload('q', randomValues(nHeads * headDim, 9));
    const att = this.buffer('att', nHeads * headDim * 4);
    const steps = [];
    for (let l = 0; l < layers; l++) {
      const kPool = this.buffer(`k-${l}`, poolBytes);
      const vPool = this.buffer(`v-${l}`, poolBytes);
      fill(kPool);
      fill(vPool);
      const step = attentionDispatches(
        this.ctx,
        { q, kPool, vPool, pageTable, positions, ropeTable, out: att },
        { nHeads, nKvHeads, headDim, ropeDim: headDim, mode: 'neox', maxPos: kvLen, kvDtype },
        { kind: 'decode', maxTokens: 1 },
      );
      step.setStep(1, nPages);
      steps.push(step);
    }
    const t = await this.timer.time(steps.map((s) => s.dispatches));
    const kvBytes = 2 * kvLen * kvDim * kvDtypeBytes(kvDtype); // K and V of every key: halved by f16
    const r = result(
      {
        name: `attention decode ${kvDtype} KV`,
        family: 'attention',
        shape: `KV ${kvLen}, ${nHeads}/${nKvHeads} heads × ${headDim}, ${steps[0].splits} splits`,
        bytes: kvBytes,
        flops: 4 * nHeads * headDim * kvLen,
        copies: layers,
      },
      t,
      copyGbPerS,
    );
    this.log(line(r));
    this.release();
    return r;
  }

  /** RMSNorm over enough rows to leave the cache, and an embedding lookup of many tokens. */
  async rmsnormAndEmbedding(copyGbPerS: number): Promise<KernelResult[]> {
    const out: KernelResult[] = [];
    const cols = this.sizes.normCols;
    const rows = Math.max(1, Math.min(this.ctx.limits.maxComputeWorkgroupsPerDimension, this.sizes.normRows));
    const x = this.buffer('norm-x', rows * cols * 4);
    const y = this.buffer('norm-y', rows * cols * 4);
    const pattern = randomValues(Math.min(rows * cols, 1 << 20), 13);
    for (let o = 0; o < rows * cols; o += pattern.length) {
      this.ctx.device.queue.writeBuffer(x, o * 4, pattern, 0, Math.min(pattern.length, rows * cols - o));
    }
    const w = this.upload('norm-w', randomValues(cols, 17));
    const norm = rmsnormOp(this.ctx, x, w, y, cols, 1e-6, { rows });
    out.push(
      result({ name: 'rmsnorm', family: 'rmsnorm', shape: `${rows}×${cols}`, bytes: rmsnormBytes(rows, cols), copies: 1 }, await this.timer.time([[norm]]), copyGbPerS),
    );
    this.log(line(out[out.length - 1]));
    this.release();

    // Embedding: the first matrix's shape as the table, looked up at random rows, in Q4_0 and in
    // Q6_K (the token_embd type of llama.cpp's Q4_K_M and Q5_K_M files).
    const T = Math.min(this.sizes.embeddingTokens, this.ctx.limits.maxComputeWorkgroupsPerDimension);
    for (const type of [GGMLType.Q4_0, GGMLType.Q6_K] as const) {
      const m = blockShape(this.sizes.matrices[0], type);
      const table = uploadWeight(this.ctx, 'embedding', type, quantize(type, randomValues(m.rows * m.cols, 19)), m.rows, m.cols);
      for (const p of table.parts) this.made.push(p.buffer);
      const ids = this.upload('ids', new Uint32Array(T).map((_, i) => (i * 2654435761) % m.rows));
      const emb = this.buffer('emb-out', T * m.cols * 4);
      const op = embeddingOp(this.ctx, table, ids, emb, { tokens: T });
      out.push(
        result(
          { name: 'embedding', family: 'embedding', weightType: ggmlTypeName(type), shape: `${T} tokens of ${m.rows}×${m.cols}`, bytes: embeddingBytes(table, T), copies: 1 },
          await this.timer.time([op.dispatches]),
          copyGbPerS,
        ),
      );
      this.log(line(out[out.length - 1]));
      this.release();
    }
    return out;
  }

  /** Copies of one matrix, enough to fill the rotation (at least one, at most maxCopies). */
  private weightCopies(label: string, type: WeightType, bytes: Uint8Array, rows: number, cols: number): GpuWeight[] {
    const first = uploadWeight(this.ctx, label, type, bytes, rows, cols);
    const all = [first];
    for (let i = 1; i < this.copyCount(first.byteLength); i++) all.push(uploadWeight(this.ctx, `${label}#${i}`, type, bytes, rows, cols));
    for (const w of all) for (const p of w.parts) this.made.push(p.buffer);
    return all;
  }

  private copyCount(bytesEach: number): number {
    return Math.max(1, Math.min(this.sizes.maxCopies, Math.ceil(this.sizes.rotationBytes / bytesEach)));
  }

  private buffer(label: string, bytes: number): GPUBuffer {
    const b = this.ctx.createBuffer(label, bytes, STORAGE);
    this.made.push(b);
    return b;
  }

  private upload(label: string, data: Uint32Array | Float32Array): GPUBuffer {
    const b = this.buffer(label, data.byteLength);
    this.ctx.device.queue.writeBuffer(b, 0, data);
    return b;
  }

  /** Frees everything made since the last release (the uniform arena slots stay allocated). */
  private release(): void {
    for (const b of this.made) b.destroy();
    this.made.length = 0;
  }
}

/**
 * A benchmark matrix in `type`: columns rounded up to whole blocks (K-quants: super-blocks of
 * 256, so Qwen2.5-0.5B's 896-wide rows become 1024; llama.cpp's K-quant files keep such tensors
 * in a 32-block type instead). The printed shape is the one measured.
 */
function blockShape<M extends { rows: number; cols: number }>(m: M, type: WeightType): M {
  const block = weightBlockSize(type);
  return { ...m, cols: Math.ceil(m.cols / block) * block };
}

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(bytes < 1048576 ? 2 : 0);
}

/** Three significant digits, without exponents: 1234, 123, 12.3, 1.23, 0.0123. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1 || a === 0) return x.toFixed(2);
  return x.toFixed(Math.min(8, 2 - Math.floor(Math.log10(a))));
}

/** One printed row: name, type, shape, time, GB/s, GFLOP/s, fraction of copy. */
export function line(r: KernelResult): string {
  const gf = r.gflopPerS !== undefined ? `${fmt(r.gflopPerS)} GFLOP/s` : '';
  const frac = r.family === 'copy' ? '' : `${fmtPercent(r.fractionOfCopy)} of copy${r.family === 'matmul' ? ' (context)' : ''}`;
  const weight = r.weightGbPerS !== undefined ? `weights ${fmt(r.weightGbPerS)} GB/s` : '';
  return [
    pad(r.name, 17),
    pad(r.weightType ?? '', 5),
    pad(r.shape, 38),
    `${fmt(r.ms).padStart(8)} ms`,
    `${fmt(r.gbPerS).padStart(7)} GB/s`,
    pad(gf, 18),
    pad(frac, 22),
    weight,
  ]
    .join('  ')
    .trimEnd();
}

/** A fraction as a percentage, with a decimal below 10%. */
export function fmtPercent(f: number): string {
  const p = f * 100;
  return `${p < 10 ? p.toFixed(1) : p.toFixed(0)}%`;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** Throws when a kernel result is not a finite, positive measurement. */
export function checkResult(r: KernelResult): void {
  if (!(r.ms > 0) || !Number.isFinite(r.gbPerS)) {
    throw new GPUError('bench-bad-timing', `benchmark '${r.name}' produced an unusable timing (${r.ms} ms)`, { name: r.name });
  }
}
