// src/gguf/quant.ts against ggml itself (libggml-base.so through koffi, see test/helpers/ggml.ts):
// quantize must give the bytes of ggml_quantize_chunk (its reference quantizers) and dequantize the
// f32 bits of ggml's row decoders, on ordinary, degenerate and non-finite inputs. Skipped, with the
// command that installs the oracle, when it is absent.
import { describe, expect, it } from 'vitest';
import { GGMLType, dequantize, ggmlTypeInfo, ggmlTypeName, quantize } from '../../src/gguf/quant.ts';
import { xorshift32 } from '../../src/random.ts';
import { ggmlOracleMissing, loadGgmlOracle } from '../helpers/ggml.ts';

const missing = ggmlOracleMissing();

const TYPES = [
  GGMLType.F16,
  GGMLType.BF16,
  GGMLType.Q8_0,
  GGMLType.Q4_0,
  GGMLType.Q4_1,
  GGMLType.Q5_0,
  GGMLType.Q5_1,
  GGMLType.Q4_K,
  GGMLType.Q5_K,
  GGMLType.Q6_K,
] as const;

// Byte offsets of each block's f16 scale fields (d, and m or dmin).
const SCALE_OFFSETS: Partial<Record<GGMLType, readonly number[]>> = {
  [GGMLType.Q8_0]: [0],
  [GGMLType.Q4_0]: [0],
  [GGMLType.Q4_1]: [0, 2],
  [GGMLType.Q5_0]: [0],
  [GGMLType.Q5_1]: [0, 2],
  [GGMLType.Q4_K]: [0, 2],
  [GGMLType.Q5_K]: [0, 2],
  [GGMLType.Q6_K]: [208],
};

/** Standard normal values from xorshift32 (Box-Muller). */
function normals(n: number, seed: number): Float32Array {
  const next = xorshift32(seed);
  const uniform = () => (next() + 0.5) / 4294967296;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}

interface Case {
  label: string;
  values: Float32Array; // (nRows, nPerRow)
  nRows: number;
  nPerRow: number;
}

/** The inputs every type is checked on, for one row length. */
function cases(nPerRow: number): Case[] {
  const nRows = 3;
  const n = nRows * nPerRow;
  const make = (label: string, f: (g: Float32Array, i: number) => number, seed = 1): Case => {
    const g = normals(n, seed + nPerRow);
    return { label, values: new Float32Array(n).map((_, i) => f(g, i)), nRows, nPerRow };
  };
  const out: Case[] = [];
  for (const seed of [1, 2, 3]) {
    for (const scale of [1, 1e-3, 40]) out.push(make(`normal σ=${scale} (seed ${seed})`, (g, i) => g[i] * scale, seed));
  }
  out.push(
    make('normal with outliers', (g, i) => (i % 37 === 5 ? 25 : 1) * g[i]),
    make('normal with one huge outlier per row', (g, i) => (i % nPerRow === 17 ? 1e4 : g[i])),
    make('all zero', () => 0),
    make('negative zeros', () => -0),
    make('constant 0.75', () => 0.75),
    make('constant -3', () => -3),
    make('all negative', (g, i) => -Math.abs(g[i]) - 0.5),
    make('all positive', (g, i) => Math.abs(g[i]) + 0.1),
    make('tiny (1e-30)', (g, i) => g[i] * 1e-30),
    make('f32 subnormals', (g, i) => g[i] * 1e-40),
    make('large (1e4)', (g, i) => g[i] * 1e4),
    make('beyond f16 (1e30)', (g, i) => g[i] * 1e30),
    make('near f32 max', (g, i) => (g[i] > 0 ? 3e38 : -3e38) * Math.min(1, Math.abs(g[i]))),
    make('magnitudes changing by block', (g, i) => g[i] * 10 ** (Math.floor(i / 32) % 7 - 3)),
    make('integers -8..7', (_, i) => (i % 16) - 8),
    make('halves (rounding ties)', (_, i) => ((i * 7) % 33) / 2 - 8),
    make('NaN and infinities among normals', (g, i) => [NaN, Infinity, -Infinity][i % 97] ?? g[i]),
  );
  return out;
}

/** Index of the first byte where a and b differ, or -1. */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

const bitsOf = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);

describe.skipIf(!!missing)(missing ?? 'quantize and dequantize against ggml', () => {
  it('names and sizes every type as ggml does', async () => {
    const ggml = await loadGgmlOracle();
    for (const type of Object.values(GGMLType)) {
      const ours = ggmlTypeInfo(type);
      const theirs = ggml.typeInfo(type);
      expect({ name: ours.name.toLowerCase(), typeSize: ours.typeSize, blockSize: ours.blockSize }, ggmlTypeName(type)).toEqual({
        ...theirs,
        name: theirs.name.toLowerCase(),
      });
    }
  });

  for (const type of TYPES) {
    const name = ggmlTypeName(type);
    const { blockSize, typeSize } = ggmlTypeInfo(type);
    const rowLengths = blockSize === 256 ? [256, 512] : [32, 64, 256, 512];

    it(`${name}: quantize gives ggml_quantize_chunk's bytes`, async () => {
      const ggml = await loadGgmlOracle();
      let checked = 0;
      for (const nPerRow of rowLengths) {
        for (const c of cases(nPerRow)) {
          const theirs = ggml.quantizeChunk(type, c.values, c.nRows, c.nPerRow);
          const ours = quantize(type, c.values);
          expect(firstDifference(ours, theirs), `${name}, ${c.label}, rows of ${nPerRow}: first differing byte`).toBe(-1);
          checked++;
        }
      }
      expect(checked).toBe(rowLengths.length * cases(32).length);
    });

    it(`${name}: dequantize gives the f32 bits of ggml's row decoder`, async () => {
      const ggml = await loadGgmlOracle();
      // ggml's own quantized rows.
      for (const nPerRow of rowLengths) {
        for (const c of cases(nPerRow)) {
          const bytes = ggml.quantizeChunk(type, c.values, c.nRows, c.nPerRow);
          const n = c.values.length;
          const d = firstDifference(bitsOf(dequantize(type, bytes, n)), bitsOf(ggml.dequantize(type, bytes, n)));
          expect(d, `${name}, ${c.label}, rows of ${nPerRow}: first differing value`).toBe(-1);
        }
      }
      // Random blocks: every quant and 6-bit scale pattern, with finite f16 scales (a NaN scale's
      // payload is not something a JS number carries). Plain types: every 16-bit pattern.
      const next = xorshift32(type + 100);
      const nBlocks = blockSize === 1 ? 65536 : 512;
      const bytes = new Uint8Array(nBlocks * typeSize).map(() => next() & 0xff);
      if (blockSize === 1) new Uint16Array(bytes.buffer).forEach((_, i, all) => (all[i] = i));
      const view = new DataView(bytes.buffer);
      for (let b = 0; b < nBlocks; b++) {
        for (const at of SCALE_OFFSETS[type] ?? []) {
          const h = view.getUint16(b * typeSize + at, true);
          if ((h & 0x7c00) === 0x7c00) view.setUint16(b * typeSize + at, h & ~0x0400, true); // exponent 31 → 30
        }
      }
      const n = nBlocks * blockSize;
      const d = firstDifference(bitsOf(dequantize(type, bytes, n)), bitsOf(ggml.dequantize(type, bytes, n)));
      expect(d, `${name}, random blocks: first differing value`).toBe(-1);
    });
  }
});
