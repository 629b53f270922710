// The CPU reference forward pass: the oracle every GPU result is checked against. Plain loops on
// weights dequantized to f32, sums in f64, written to be read top to bottom like llama2.c.
// Keys are cached BEFORE RoPE and rotated by their position at attention time, like the GPU
// pages; rotating a key by its own position is the same rotation standard RoPE applies.
import { dequantize } from '../gguf/quant.ts';
import { parseGGUF, readTensorBytes, type GGUFFile, type GGUFTensorInfo } from '../gguf/reader.ts';
import type { ByteSource } from '../gguf/source.ts';
import { buildRopeTable } from '../gpu/ops/rope.ts';
import { configFromGGUF, type ModelConfig } from './config.ts';
import { resolveTensors } from './tensors.ts';

interface CpuLayer {
  attnNorm: Float32Array; // (dim,)
  wq: Float32Array; // (nHeads*headDim, dim)
  wk: Float32Array; // (nKvHeads*headDim, dim)
  wv: Float32Array; // (nKvHeads*headDim, dim)
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  wo: Float32Array; // (dim, nHeads*headDim)
  ffnNorm: Float32Array; // (dim,)
  wGate: Float32Array; // (ffn, dim)
  wUp: Float32Array; // (ffn, dim)
  wDown: Float32Array; // (dim, ffn)
}

/** out[r] = sum_c W[r, c] x[c] (+ b[r]), W row-major (rows, cols). */
function matvec(out: Float32Array, w: Float32Array, x: Float32Array, rows: number, cols: number, b?: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const o = r * cols;
    for (let c = 0; c < cols; c++) s += w[o + c] * x[c];
    out[r] = b ? s + b[r] : s;
  }
}

function rmsnorm(out: Float32Array, x: Float32Array, w: Float32Array, eps: number): void {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * inv * w[i];
}

/** Rotates one head in place by the angles of `pos` ('norm': pairs (2i, 2i+1); 'neox': (i, i+half)). */
export function rotateHead(v: Float32Array, off: number, pos: number, table: Float32Array, ropeDim: number, mode: 'norm' | 'neox'): void {
  const half = ropeDim / 2;
  for (let i = 0; i < half; i++) {
    const cos = table[(pos * half + i) * 2];
    const sin = table[(pos * half + i) * 2 + 1];
    const a = mode === 'norm' ? off + 2 * i : off + i;
    const b = mode === 'norm' ? a + 1 : a + half;
    const x0 = v[a];
    const x1 = v[b];
    v[a] = x0 * cos - x1 * sin;
    v[b] = x0 * sin + x1 * cos;
  }
}

export class CpuModel {
  private keys: Float32Array[] = []; // per layer (maxPos, kvDim), before RoPE
  private values: Float32Array[] = []; // per layer (maxPos, kvDim)
  private pos = 0;
  private readonly rope: Float32Array;

  private constructor(
    readonly config: ModelConfig,
    private readonly tokenEmbd: Float32Array, // (vocab, dim)
    private readonly outputNorm: Float32Array, // (dim,)
    private readonly output: Float32Array, // (vocab, dim)
    private readonly layers: CpuLayer[],
    freqFactors: Float32Array | undefined,
    readonly maxPos: number,
  ) {
    this.rope = buildRopeTable(maxPos, config.ropeDim, config.ropeBase, freqFactors);
    const kvDim = config.nKvHeads * config.headDim;
    for (let l = 0; l < config.nLayers; l++) {
      this.keys.push(new Float32Array(maxPos * kvDim));
      this.values.push(new Float32Array(maxPos * kvDim));
    }
  }

  static async load(source: ByteSource, file?: GGUFFile, maxPos = 1024): Promise<CpuModel> {
    const f = file ?? (await parseGGUF(source));
    const config = configFromGGUF(f);
    const t = resolveTensors(f, config);
    const load = async (info: GGUFTensorInfo) => dequantize(info.type, await readTensorBytes(source, info), info.nElements);
    const opt = async (info: GGUFTensorInfo | undefined) => (info ? load(info) : undefined);
    const tokenEmbd = await load(t.tokenEmbd);
    const layers: CpuLayer[] = [];
    for (const lt of t.layers) {
      layers.push({
        attnNorm: await load(lt.attnNorm),
        wq: await load(lt.wq),
        wk: await load(lt.wk),
        wv: await load(lt.wv),
        bq: await opt(lt.bq),
        bk: await opt(lt.bk),
        bv: await opt(lt.bv),
        wo: await load(lt.wo),
        ffnNorm: await load(lt.ffnNorm),
        wGate: await load(lt.wGate),
        wUp: await load(lt.wUp),
        wDown: await load(lt.wDown),
      });
    }
    const output = t.output ? await load(t.output) : tokenEmbd;
    return new CpuModel(config, tokenEmbd, await load(t.outputNorm), output, layers, await opt(t.ropeFreqs), Math.min(maxPos, config.contextLength));
  }

  get length(): number {
    return this.pos;
  }

  reset(): void {
    this.pos = 0;
  }

  /** Appends tokens at the next positions and returns the last one's logits (vocab,). */
  forward(tokens: number[]): Float32Array {
    let logits: Float32Array = new Float32Array(0);
    for (const t of tokens) logits = this.step(t);
    return logits;
  }

  private step(token: number): Float32Array {
    const c = this.config;
    const { dim, nHeads, nKvHeads, headDim, ffnDim } = c;
    const qDim = nHeads * headDim;
    const kvDim = nKvHeads * headDim;
    const group = nHeads / nKvHeads;
    const pos = this.pos;
    if (pos >= this.maxPos) throw new Error(`the CPU reference holds ${this.maxPos} positions`);
    const x = this.tokenEmbd.slice(token * dim, (token + 1) * dim); // (dim,) residual stream
    const xn = new Float32Array(dim);
    const q = new Float32Array(qDim);
    const att = new Float32Array(qDim);
    const tmp = new Float32Array(Math.max(dim, ffnDim));
    const gate = new Float32Array(ffnDim);
    const up = new Float32Array(ffnDim);
    const scores = new Float64Array(pos + 1);
    const key = new Float32Array(headDim);
    for (let l = 0; l < this.layers.length; l++) {
      const L = this.layers[l];
      const K = this.keys[l];
      const V = this.values[l];
      // Attention: q rotated now, k cached unrotated.
      rmsnorm(xn, x, L.attnNorm, c.rmsEps);
      matvec(q, L.wq, xn, qDim, dim, L.bq);
      matvec(K.subarray(pos * kvDim, (pos + 1) * kvDim), L.wk, xn, kvDim, dim, L.bk);
      matvec(V.subarray(pos * kvDim, (pos + 1) * kvDim), L.wv, xn, kvDim, dim, L.bv);
      for (let h = 0; h < nHeads; h++) rotateHead(q, h * headDim, pos, this.rope, c.ropeDim, c.ropeMode);
      const scale = 1 / Math.sqrt(headDim);
      for (let h = 0; h < nHeads; h++) {
        const kh = Math.floor(h / group);
        let max = -Infinity;
        for (let p = 0; p <= pos; p++) {
          key.set(K.subarray(p * kvDim + kh * headDim, p * kvDim + (kh + 1) * headDim));
          rotateHead(key, 0, p, this.rope, c.ropeDim, c.ropeMode);
          let s = 0;
          for (let i = 0; i < headDim; i++) s += q[h * headDim + i] * key[i];
          scores[p] = s * scale;
          if (scores[p] > max) max = scores[p];
        }
        let sum = 0;
        for (let p = 0; p <= pos; p++) {
          scores[p] = Math.exp(scores[p] - max);
          sum += scores[p];
        }
        for (let i = 0; i < headDim; i++) {
          let o = 0;
          for (let p = 0; p <= pos; p++) o += scores[p] * V[p * kvDim + kh * headDim + i];
          att[h * headDim + i] = o / sum;
        }
      }
      matvec(tmp, L.wo, att, dim, qDim);
      for (let i = 0; i < dim; i++) x[i] += tmp[i];
      // MLP: down(silu(gate(x)) * up(x)).
      rmsnorm(xn, x, L.ffnNorm, c.rmsEps);
      matvec(gate, L.wGate, xn, ffnDim, dim);
      matvec(up, L.wUp, xn, ffnDim, dim);
      for (let i = 0; i < ffnDim; i++) gate[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
      matvec(tmp, L.wDown, gate, dim, ffnDim);
      for (let i = 0; i < dim; i++) x[i] += tmp[i];
    }
    this.pos++;
    rmsnorm(xn, x, this.outputNorm, c.rmsEps);
    const logits = new Float32Array(c.vocabSize);
    matvec(logits, this.output, xn, c.vocabSize, dim);
    return logits;
  }
}

/** Index of the largest logit (ties: the lowest id). */
export function greedyArgmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Greedy continuation on the CPU: n generated ids after the prompt. */
export function cpuGenerateGreedy(model: CpuModel, prompt: number[], n: number): number[] {
  model.reset();
  const out: number[] = [];
  let logits = model.forward(prompt);
  while (out.length < n) {
    const next = greedyArgmax(logits);
    out.push(next);
    if (out.length < n) logits = model.forward([next]);
  }
  return out;
}
