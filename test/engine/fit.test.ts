// The fit check: the footprint computed from a model's header equals what a load allocates on the
// GPU, and a model that does not fit is refused with the shortfall before any weight is read.
// Split models load from their parts and answer like the single file.
import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine.ts';
import { GPUError, KVCacheError } from '../../src/errors.ts';
import { GGMLType, MemorySource, parseGGUF, splitGGUFBytes, type ByteSource } from '../../src/gguf/index.ts';
import { makeSyntheticModel, SYNTHETIC_PRESETS } from '../../src/model/synthetic.ts';
import { testContext } from '../helpers/gpu.ts';

const qwen = makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-qwen2-gqa7-h64'], weightType: GGMLType.Q8_0, seed: 5 });
const llama = makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-gqa4-h64'], seed: 6 });

async function newEngine(deviceMemory?: { bytes: number; source: string }): Promise<Engine> {
  const ctx = await testContext();
  return new Engine(ctx.device, { shaders: ctx.shaders, features: ctx.features, adapterInfo: 'test', ...(deviceMemory ? { deviceMemory } : {}) });
}

// One engine for the file: its pipelines compile once (SwiftShader takes seconds per load otherwise).
let shared: Promise<Engine> | undefined;
const engine = (): Promise<Engine> => (shared ??= newEngine());

/** A source that records the offset of every read. */
function recording(bytes: Uint8Array): ByteSource & { offsets: number[] } {
  const inner = new MemorySource(bytes, 'recorded.gguf');
  const offsets: number[] = [];
  return {
    name: inner.name,
    size: inner.size,
    offsets,
    read: (offset, length, signal) => {
      offsets.push(offset);
      return inner.read(offset, length, signal);
    },
  };
}

async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('fit check', () => {
  for (const [name, bytes, kvDtype] of [
    ['qwen2 Q8_0, f16 KV', qwen, 'f16'],
    ['llama Q4_0, f32 KV', llama, 'f32'],
  ] as const) {
    it(`counts exactly the GPU bytes a load allocates (${name})`, async () => {
      const e = await engine();
      const file = await parseGGUF(new MemorySource(bytes));
      const opts = { maxContext: 96, kvBudgetTokens: 200, kvDtype } as const;
      const fp = e.checkFit(file, opts);
      const allocated: { label: string; size: number }[] = [];
      const create = e.ctx.createBuffer.bind(e.ctx);
      e.ctx.createBuffer = (label, size, usage) => {
        const b = create(label, size, usage);
        allocated.push({ label, size: b.size });
        return b;
      };
      let info;
      try {
        info = await e.load(new MemorySource(bytes), opts);
      } finally {
        e.ctx.createBuffer = create;
      }
      // The 16-byte zero bias the matrix ops share is the one buffer outside the model's plan.
      const total = allocated.filter((a) => a.label !== 'zero').reduce((s, a) => s + a.size, 0);
      expect(fp.totalBytes).toBe(total);
      expect(fp.kvTokens).toBe(208);
      const kv = allocated.filter((a) => a.label.startsWith('kv-')).reduce((s, a) => s + a.size, 0);
      expect(fp.kvBytes).toBe(kv);
      // The load reports the plan and its measured peak: every planned buffer is live at its end.
      expect(info.gpuMemory).toMatchObject({ weightBytes: fp.weightBytes, kvBytes: fp.kvBytes, activationBytes: fp.activationBytes });
      expect(info.gpuMemory.peakBytes).toBeGreaterThanOrEqual(fp.totalBytes);
      expect(info.gpuMemory.peakBytes).toBeLessThanOrEqual(allocated.reduce((s, a) => s + a.size, 0));
      e.unload();
    });
  }

  it('refuses a model that does not fit, by how much, before reading any weight', async () => {
    const e = await engine();
    const file = await parseGGUF(new MemorySource(qwen));
    const opts = { maxContext: 128 };
    const fp = e.checkFit(file, opts);
    const need = fp.totalBytes + e.ctx.arena.buffer.size;
    const src = recording(qwen);
    const err = await errorOf(e.load(src, { ...opts, gpuMemoryBytes: need - 1000 }));
    expect(err).toBeInstanceOf(GPUError);
    expect((err as GPUError).code).toBe('does-not-fit');
    expect((err as GPUError).fields).toMatchObject({ needBytes: need, availableBytes: need - 1000, overBytes: 1000, source: 'gpuMemoryBytes' });
    expect(err.message).toMatch(/too much\. Use a smaller maxContext/);
    expect(src.offsets.every((o) => o < file.dataOffset), `reads at ${src.offsets.join(', ')}; tensor data starts at ${file.dataOffset}`).toBe(true);
    // Exactly enough memory loads.
    await e.load(new MemorySource(qwen), { ...opts, gpuMemoryBytes: need });
    e.unload();
  });

  it("takes the host's memory estimate, and names it", async () => {
    const e = await newEngine({ bytes: 1 << 20, source: 'a test estimate' });
    const src = recording(llama);
    const err = await errorOf(e.load(src, { maxContext: 128 }));
    const file = await parseGGUF(new MemorySource(llama));
    expect(src.offsets.every((o) => o < file.dataOffset)).toBe(true);
    expect((err as GPUError).code).toBe('does-not-fit');
    expect(err.message).toContain('(a test estimate)');
  });

  it('refuses a KV pool larger than one binding before reading any weight', async () => {
    const e = await engine();
    const limit = Math.min(e.ctx.limits.maxStorageBufferBindingSize, e.ctx.limits.maxBufferSize);
    const c = SYNTHETIC_PRESETS['tiny-gqa4-h64'];
    const tokens = Math.ceil(limit / (c.nKvHeads * c.headDim * 4)) + 64;
    const src = recording(llama);
    const err = await errorOf(e.load(src, { maxContext: 128, kvBudgetTokens: tokens, kvDtype: 'f32' }));
    expect(err).toBeInstanceOf(KVCacheError);
    expect((err as KVCacheError).code).toBe('kv-pool-too-large');
    expect((err as KVCacheError).fields.overBytes).toBeGreaterThan(0);
    const file = await parseGGUF(new MemorySource(llama));
    expect(src.offsets.every((o) => o < file.dataOffset)).toBe(true);
  });
});

describe('split models on the engine', () => {
  it('load from their parts and answer like the single file', async () => {
    const e = await engine();
    await e.load(new MemorySource(llama), { maxContext: 32 });
    const single = await e.complete({ tokens: [1, 300, 301, 302] }, { maxTokens: 8, temperature: 0 });
    const parts = (await splitGGUFBytes(llama, 3)).map((p, i) => new MemorySource(p, `l-0000${i + 1}-of-00003.gguf`));
    const info = await e.load([parts[1], parts[2], parts[0]], { maxContext: 32 });
    expect(info.nLayers).toBe(2);
    const split = await e.complete({ tokens: [1, 300, 301, 302] }, { maxTokens: 8, temperature: 0 });
    expect(split.tokens).toEqual(single.tokens);
    e.unload();
  });
});
