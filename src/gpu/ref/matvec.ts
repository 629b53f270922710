// TS reference for shaders/matvec.wgsl (main): one token, weights already dequantized.
import { GGMLType, dequantize, f32ToF16, ggmlTypeInfo, quantize } from '../../gguf/quant.ts';
import { xorshift32 } from '../../random.ts';

/**
 * y[r] = sum_c w[r*cols + c] * x[c] (+ bias[r]) (+ y0[r]) for r < rows, accumulated in f64.
 * w [rows, cols] f32 (e.g. `dequantize(type, ggufBytes, rows*cols)`), x [cols], result [rows].
 */
export function matvecRef(
  w: Float32Array,
  rows: number,
  cols: number,
  x: Float32Array,
  opts: { bias?: Float32Array; y0?: Float32Array } = {},
): Float32Array {
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c] * x[c];
    if (opts.bias) s += opts.bias[r];
    if (opts.y0) s += opts.y0[r];
    y[r] = s;
  }
  return y;
}

/**
 * Tolerance for dotErrorRatio: f32 sums in another order than the f64 reference stay within 2
 * units of rounding (2^-24) times sqrt(K) of the sum of |products| (the worst-case bound is K
 * units; observed ratios sit 10-100 times below this). One wrong term gives about 1/K.
 */
export function dotTolerance(cols: number): number {
  return 2 * 2 ** -24 * Math.sqrt(cols);
}

/**
 * The GPU kernels round differently (f32 sums in another order), so compare with a bound that
 * scales with the products: |got - want| <= tol * sum_c |w[r,c] x[c]| per output. Returns the
 * largest such ratio over all outputs (0 when exact).
 */
export function dotErrorRatio(got: Float32Array, want: Float32Array, w: Float32Array, rows: number, cols: number, x: Float32Array, tokens = 1): number {
  let worst = 0;
  for (let t = 0; t < tokens; t++) {
    for (let r = 0; r < rows; r++) {
      let mag = 0;
      for (let c = 0; c < cols; c++) mag += Math.abs(w[r * cols + c] * x[t * cols + c]);
      const err = Math.abs(got[t * rows + r] - want[t * rows + r]);
      const ratio = err === 0 ? 0 : err / Math.max(mag, 1e-30);
      if (!(ratio <= worst)) worst = Number.isNaN(ratio) ? Infinity : ratio;
    }
  }
  return worst;
}

/** A test matrix: `values` stored as `type` (GGUF bytes) and the weights those bytes decode to. */
export function quantizedMatrix(type: number, values: Float32Array): { bytes: Uint8Array; w: Float32Array } {
  const bytes = quantize(type, values);
  return { bytes, w: dequantize(type, bytes, values.length) };
}

// Byte offsets of the f16 fields (scales, mins) in each block type's GGUF block.
const HALF_FIELDS: Partial<Record<number, readonly number[]>> = {
  [GGMLType.Q8_0]: [0],
  [GGMLType.Q4_0]: [0],
  [GGMLType.Q4_1]: [0, 2],
  [GGMLType.Q5_0]: [0],
  [GGMLType.Q5_1]: [0, 2],
  [GGMLType.Q4_K]: [0, 2],
  [GGMLType.Q5_K]: [0, 2],
  [GGMLType.Q6_K]: [208],
};

/**
 * `nElements` of `type` as GGUF bytes: random quant bits, scales and (K-quant) packed sub-block
 * scales, every f16 field a finite half of either sign between 2^-9 and 2^-5 (so sums stay far
 * from f32 overflow). Every bit pattern of the quants is a valid weight, so this covers what a
 * quantizer would not produce. Plain types (F32, F16, BF16) get random values in [-1, 1).
 */
export function randomBlockBytes(type: number, nElements: number, seed: number): Uint8Array {
  const next = xorshift32(seed);
  const fields = HALF_FIELDS[type];
  if (!fields) {
    const values = new Float32Array(nElements).map(() => (next() >>> 8) / 8388608 - 1);
    return quantize(type, values);
  }
  const { blockSize, typeSize } = ggmlTypeInfo(type);
  const out = new Uint8Array((nElements / blockSize) * typeSize);
  for (let i = 0; i < out.length; i += 4) {
    const r = next();
    for (let k = 0; k < 4 && i + k < out.length; k++) out[i + k] = (r >>> (8 * k)) & 255;
  }
  for (let o = 0; o < out.length; o += typeSize) {
    for (const f of fields) {
      const r = next();
      const h = f32ToF16((r & 1 ? -1 : 1) * 2 ** (-9 + 4 * ((r >>> 1) / 2 ** 31)));
      out[o + f] = h & 255;
      out[o + f + 1] = h >>> 8;
    }
  }
  return out;
}

/** A test matrix of random blocks (randomBlockBytes) and the weights its bytes decode to. */
export function randomMatrix(type: number, nElements: number, seed: number): { bytes: Uint8Array; w: Float32Array } {
  const bytes = randomBlockBytes(type, nElements, seed);
  return { bytes, w: dequantize(type, bytes, nElements) };
}
