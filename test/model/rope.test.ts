// RoPE in the CPU reference: the cos/sin table (with rope_freqs dividing the frequencies like
// llama.cpp's freq_factors), the two pairings, partial rotation, the relative-position property
// that lets keys be cached before RoPE, and forwardAll / startPos on models that use them.
import { beforeAll, describe, expect, it } from 'vitest';
import { GGMLType, quantize } from '../../src/gguf/quant.ts';
import type { GGUFFile } from '../../src/gguf/reader.ts';
import type { ByteSource } from '../../src/gguf/source.ts';
import { gguf } from '../../src/gguf/writer.ts';
import { CpuModel, ropeTable, rotateHead } from '../../src/model/cpu-reference.ts';
import { makeSyntheticModel, SYNTHETIC_PRESETS } from '../../src/model/synthetic.ts';
import { openBytes, rewriteGGUF } from './files.ts';
import { xorshift32 } from '../../src/random.ts';

/** xorshift-based uniform values in [-1, 1), reproducible per seed. */
function randomVector(n: number, seed: number): Float32Array {
  const next = xorshift32(seed);
  return Float32Array.from({ length: n }, () => next() / 2 ** 31 - 1);
}

const dot = (a: Float32Array, b: Float32Array) => a.reduce((acc, v, i) => acc + v * b[i], 0);

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe('ropeTable and rotateHead', () => {
  it('table holds cos/sin of pos·base^(-2i/ropeDim)/factor[i]', () => {
    const factors = Float32Array.from([1, 2, 4, 8, 16, 32, 64, 128]);
    for (const ff of [undefined, factors]) {
      const t = ropeTable(300, 16, 500000, ff);
      expect(t).toHaveLength(300 * 8 * 2);
      for (const pos of [0, 1, 17, 299]) {
        for (let i = 0; i < 8; i++) {
          const theta = (pos * 500000 ** (-2 * i / 16)) / (ff ? ff[i] : 1);
          expect(t[(pos * 8 + i) * 2]).toBeCloseTo(Math.cos(theta), 6);
          expect(t[(pos * 8 + i) * 2 + 1]).toBeCloseTo(Math.sin(theta), 6);
        }
      }
    }
    expect(() => ropeTable(4, 16, 10000, new Float32Array(16))).toThrow(
      expect.objectContaining({ name: 'UnsupportedModelError', code: 'bad-shape', fields: { tensor: 'rope_freqs.weight', shape: '16', expected: '8' } }),
    );
  });

  it("'norm' rotates adjacent pairs, 'neox' pairs i and i+ropeDim/2; dimensions past ropeDim stay", () => {
    const table = ropeTable(8, 4, 10000);
    const pos = 3;
    const [c0, s0, c1, s1] = [table[pos * 4], table[pos * 4 + 1], table[pos * 4 + 2], table[pos * 4 + 3]];
    // Two heads of 6 with ropeDim 4: only the first 4 values of each head turn.
    const x = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const norm = x.slice();
    rotateHead(norm, 6, pos, table, 4, 'norm');
    const expectNorm = [1, 2, 3, 4, 5, 6, 7 * c0 - 8 * s0, 7 * s0 + 8 * c0, 9 * c1 - 10 * s1, 9 * s1 + 10 * c1, 11, 12];
    expectNorm.forEach((v, i) => expect(norm[i]).toBeCloseTo(v, 5));
    const neox = x.slice();
    rotateHead(neox, 6, pos, table, 4, 'neox');
    const expectNeox = [1, 2, 3, 4, 5, 6, 7 * c0 - 9 * s0, 8 * c1 - 10 * s1, 7 * s0 + 9 * c0, 8 * s1 + 10 * c1, 11, 12];
    expectNeox.forEach((v, i) => expect(neox[i]).toBeCloseTo(v, 5));
  });

  it('q·k after rotation depends only on the distance: why keys may be cached before RoPE', () => {
    const table = ropeTable(200, 64, 10000, Float32Array.from({ length: 32 }, (_, i) => 1 + i / 8));
    for (const mode of ['norm', 'neox'] as const) {
      const q = randomVector(64, 1);
      const k = randomVector(64, 2);
      const score = (m: number, n: number) => {
        const qr = q.slice();
        const kr = k.slice();
        rotateHead(qr, 0, m, table, 64, mode);
        rotateHead(kr, 0, n, table, 64, mode);
        return dot(qr, kr);
      };
      expect(score(10, 3)).toBeCloseTo(score(150, 143), 3);
      expect(score(7, 7)).toBeCloseTo(dot(q, k), 4);
      expect(Math.abs(score(10, 3) - score(10, 4))).toBeGreaterThan(1e-3); // the distance does matter
    }
  });
});

describe('CPU reference with rope_freqs, partial RoPE, forwardAll and startPos', () => {
  const tokens = [1, 300, 301, 302, 350, 260, 300, 310];
  let source: ByteSource;
  let file: GGUFFile;
  let plain: Float32Array[]; // (tokens, vocab) logits of the unmodified model
  beforeAll(async () => {
    ({ source, file } = await openBytes(makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-gqa4-h64'], weightType: GGMLType.F16 })));
    plain = (await CpuModel.load(source, file, 64)).forwardAll(tokens);
  });

  /** forwardAll logits of the model re-written with `rope_freqs.weight` set to `factors` (32 of them). */
  async function withRopeFreqs(factors: Float32Array): Promise<{ model: CpuModel; logits: Float32Array[] }> {
    const ropeFreqs = { name: 'rope_freqs.weight', shape: [factors.length], type: GGMLType.F32, data: quantize(GGMLType.F32, factors) };
    const v = await openBytes(await rewriteGGUF(source, file, { tensors: [ropeFreqs] }));
    const model = await CpuModel.load(v.source, v.file, 64);
    return { model, logits: model.forwardAll(tokens) };
  }

  it('forwardAll returns every token’s logits, equal to one token at a time', async () => {
    const model = await CpuModel.load(source, file, 64);
    expect(plain).toHaveLength(tokens.length);
    for (let i = 0; i < tokens.length; i++) expect(model.forward([tokens[i]])).toEqual(plain[i]);
    expect(model.length).toBe(tokens.length);
    // Rewound to position 3, the tail is the same as before; the last row is what forward returns.
    const tail = model.forwardAll(tokens.slice(3), 3);
    tail.forEach((row, i) => expect(row).toEqual(plain[3 + i]));
    expect(model.forward(tokens.slice(5), 5)).toEqual(plain[tokens.length - 1]);
  });

  it('refuses a startPos past the sequence end (a gap in positions)', async () => {
    const model = await CpuModel.load(source, file, 64);
    model.forward([1, 2]);
    for (const startPos of [3, -1, 1.5]) {
      expect(() => model.forward([5], startPos)).toThrow(expect.objectContaining({ name: 'InvalidRequestError', code: 'bad-position' }));
    }
    expect(model.length).toBe(2); // refused calls change nothing
    expect(() => model.forwardAll([], 0)).toThrow(expect.objectContaining({ code: 'empty-input' }));
  });

  it('rope_freqs of ones changes nothing; other factors change every position but 0', async () => {
    const ones = await withRopeFreqs(new Float32Array(32).fill(1));
    expect(ones.model.config.hasRopeFreqs).toBe(true);
    ones.logits.forEach((row, i) => expect(row).toEqual(plain[i]));
    const scaled = await withRopeFreqs(Float32Array.from({ length: 32 }, (_, i) => 1 + i));
    expect(scaled.logits[0]).toEqual(plain[0]); // position 0 has angle 0 whatever the frequency
    for (let i = 1; i < tokens.length; i++) expect(maxAbsDiff(scaled.logits[i], plain[i])).toBeGreaterThan(1e-3);
  });

  it('rotates only the first rope.dimension_count values of each head', async () => {
    const v = await openBytes(await rewriteGGUF(source, file, { metadata: { 'llama.rope.dimension_count': gguf.u32(32) } }));
    const model = await CpuModel.load(v.source, v.file, 64);
    expect(model.config).toMatchObject({ headDim: 64, ropeDim: 32 });
    const partial = model.forwardAll(tokens);
    expect(partial[0]).toEqual(plain[0]);
    for (let i = 1; i < tokens.length; i++) {
      expect(partial[i].every(Number.isFinite)).toBe(true);
      expect(maxAbsDiff(partial[i], plain[i])).toBeGreaterThan(1e-3);
    }
  });
});
