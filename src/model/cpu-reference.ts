// The CPU reference forward pass: the oracle every GPU result is checked against. Plain loops on
// weights dequantized to f32, every dot product summed in f64, written to be read top to bottom
// like llama2.c. Keys are cached BEFORE RoPE and rotated by their position for attention, like the
// GPU pages (a rotated copy of each key is made once when it is written, not at every read, which
// gives the same f32 values); rotating a key by its own position is exactly what standard RoPE does
// at store time, so the results are the same (tests check this against a rotate-then-store cache).
// It is slow by design (one token at a time, no SIMD): meant for models up to ~10M parameters.
import { InvalidRequestError, KVCacheError, UnsupportedModelError } from '../errors.ts';
import { dequantize } from '../gguf/quant.ts';
import { parseGGUF, readTensorBytes, type GGUFFile, type GGUFTensorInfo } from '../gguf/reader.ts';
import type { ByteSource } from '../gguf/source.ts';
import { configFromGGUF, type ModelConfig } from './config.ts';
import { resolveTensors } from './tensors.ts';

/** One transformer block's weights, dequantized; matrices row-major (rows = out, cols = in). */
interface CpuLayer {
  attnNorm: Float32Array; // (dim)
  wq: Float32Array; // (nHeads*headDim, dim)
  wk: Float32Array; // (nKvHeads*headDim, dim)
  wv: Float32Array; // (nKvHeads*headDim, dim)
  bq?: Float32Array; // (nHeads*headDim), qwen2 only
  bk?: Float32Array; // (nKvHeads*headDim)
  bv?: Float32Array; // (nKvHeads*headDim)
  wo: Float32Array; // (dim, nHeads*headDim)
  ffnNorm: Float32Array; // (dim)
  wGate: Float32Array; // (ffnDim, dim)
  wUp: Float32Array; // (ffnDim, dim)
  wDown: Float32Array; // (dim, ffnDim)
}

/** Scratch buffers for one token, allocated once so the step itself allocates nothing. */
interface RunState {
  x: Float32Array; // (dim) residual stream
  xn: Float32Array; // (dim) normalized x
  q: Float32Array; // (nHeads*headDim)
  att: Float32Array; // (nHeads*headDim) attention output, heads concatenated
  proj: Float32Array; // (dim) output of wo / wDown before the residual add
  gate: Float32Array; // (ffnDim)
  up: Float32Array; // (ffnDim)
  scores: Float64Array; // (group, maxPos) attention weights of the query heads sharing a KV head
  logits: Float32Array; // (vocab)
}

/** out[r] = sum_c W[r, c] x[c] (+ b[r]) with an f64 sum; W row-major (rows, cols). */
function matvec(out: Float32Array, w: Float32Array, x: Float32Array, rows: number, cols: number, b?: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const o = r * cols;
    for (let c = 0; c < cols; c++) s += w[o + c] * x[c];
    out[r] = b ? s + b[r] : s;
  }
}

/** out = x / sqrt(mean(x²) + eps) * w. */
function rmsnorm(out: Float32Array, x: Float32Array, w: Float32Array, eps: number): void {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * inv * w[i];
}

/**
 * cos/sin of every (position, pair): angle pos * base^(-2i/ropeDim) / freqFactors[i], computed in
 * f64. freqFactors is `rope_freqs.weight` (Llama 3 long-context scaling), which divides the
 * frequencies like llama.cpp's freq_factors. Built here rather than shared with the GPU code so
 * that the oracle does not inherit a mistake in the table the kernels use.
 * Returns (maxPos, ropeDim/2, 2) values: cos then sin.
 */
export function ropeTable(maxPos: number, ropeDim: number, base: number, freqFactors?: Float32Array): Float32Array {
  const half = ropeDim / 2;
  if (freqFactors && freqFactors.length !== half) {
    throw new UnsupportedModelError('bad-shape', `rope_freqs has ${freqFactors.length} values but RoPE rotates ${half} pairs`, {
      tensor: 'rope_freqs.weight',
      shape: String(freqFactors.length),
      expected: String(half),
    });
  }
  const table = new Float32Array(maxPos * half * 2);
  for (let i = 0; i < half; i++) {
    const freq = Math.pow(base, (-2 * i) / ropeDim) / (freqFactors ? freqFactors[i] : 1);
    for (let pos = 0; pos < maxPos; pos++) {
      table[(pos * half + i) * 2] = Math.cos(pos * freq);
      table[(pos * half + i) * 2 + 1] = Math.sin(pos * freq);
    }
  }
  return table;
}

/**
 * Rotates the head starting at v[off] in place by the angles of position `pos`; only its first
 * `ropeDim` values take part. 'norm' rotates pairs (2i, 2i+1), 'neox' pairs (i, i + ropeDim/2).
 * table: (maxPos, ropeDim/2, 2) cos and sin from ropeTable.
 */
export function rotateHead(v: Float32Array, off: number, pos: number, table: Float32Array, ropeDim: number, mode: 'norm' | 'neox'): void {
  const half = ropeDim / 2;
  const row = pos * half * 2;
  for (let i = 0; i < half; i++) {
    const cos = table[row + 2 * i];
    const sin = table[row + 2 * i + 1];
    const a = mode === 'norm' ? off + 2 * i : off + i;
    const b = mode === 'norm' ? a + 1 : a + half;
    const x0 = v[a];
    const x1 = v[b];
    v[a] = x0 * cos - x1 * sin;
    v[b] = x0 * sin + x1 * cos;
  }
}

export class CpuModel {
  private readonly keys: Float32Array[] = []; // per layer (maxPos, nKvHeads*headDim), before RoPE
  private readonly rotated: Float32Array[] = []; // per layer (maxPos, nKvHeads*headDim): keys[p] rotated to position p
  private readonly values: Float32Array[] = []; // per layer (maxPos, nKvHeads*headDim)
  private readonly rope: Float32Array; // (maxPos, ropeDim/2, 2) cos, sin
  private readonly s: RunState;
  private pos = 0;

  private constructor(
    readonly config: ModelConfig,
    private readonly tokenEmbd: Float32Array, // (vocab, dim)
    private readonly outputNorm: Float32Array, // (dim)
    private readonly output: Float32Array, // (vocab, dim); token_embd itself when tied
    private readonly layers: CpuLayer[],
    freqFactors: Float32Array | undefined, // (ropeDim/2) rope_freqs, divides the frequencies
    /** Positions the KV cache holds. */
    readonly maxPos: number,
  ) {
    const { dim, nHeads, nKvHeads, headDim, ffnDim, vocabSize } = config;
    this.rope = ropeTable(maxPos, config.ropeDim, config.ropeBase, freqFactors);
    for (let l = 0; l < config.nLayers; l++) {
      this.keys.push(new Float32Array(maxPos * nKvHeads * headDim));
      this.rotated.push(new Float32Array(maxPos * nKvHeads * headDim));
      this.values.push(new Float32Array(maxPos * nKvHeads * headDim));
    }
    this.s = {
      x: new Float32Array(dim),
      xn: new Float32Array(dim),
      q: new Float32Array(nHeads * headDim),
      att: new Float32Array(nHeads * headDim),
      proj: new Float32Array(dim),
      gate: new Float32Array(ffnDim),
      up: new Float32Array(ffnDim),
      scores: new Float64Array((nHeads / nKvHeads) * maxPos),
      logits: new Float32Array(vocabSize),
    };
  }

  /**
   * Reads and dequantizes every weight. `file` skips re-parsing when the caller has it;
   * `maxPos` caps the KV cache (default: the model's context length, at most 2048).
   */
  static async load(source: ByteSource, file?: GGUFFile, maxPos?: number): Promise<CpuModel> {
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
    const positions = Math.min(maxPos ?? 2048, config.contextLength);
    return new CpuModel(config, tokenEmbd, await load(t.outputNorm), output, layers, await opt(t.ropeFreqs), positions);
  }

  /** Tokens processed since the last reset (the next token's position). */
  get length(): number {
    return this.pos;
  }

  /** Forgets the sequence; the next token goes to position 0. */
  reset(): void {
    this.pos = 0;
  }

  /**
   * Runs `tokens` at positions startPos, startPos+1, ... and returns a copy of the last one's
   * logits (vocab). startPos defaults to the end of the sequence (append); a smaller value
   * rewinds, dropping the cached tokens from startPos on (like llama2.c's `pos`).
   */
  forward(tokens: number[], startPos = this.pos): Float32Array {
    this.begin(tokens, startPos);
    for (const t of tokens) this.step(t, this.pos);
    return this.s.logits.slice();
  }

  /** Like forward, but returns the logits of every token: (tokens.length) arrays of (vocab). */
  forwardAll(tokens: number[], startPos = this.pos): Float32Array[] {
    this.begin(tokens, startPos);
    const out: Float32Array[] = [];
    for (const t of tokens) {
      this.step(t, this.pos);
      out.push(this.s.logits.slice());
    }
    return out;
  }

  /**
   * Copies of the cached K and V rows of positions start..start+n-1: per layer (n, nKvHeads*headDim)
   * row-major, keys before RoPE (so rows copied elsewhere with setKV stay valid at any position).
   */
  kvRows(start: number, n: number): { k: Float32Array[]; v: Float32Array[] } {
    if (!Number.isInteger(start) || !Number.isInteger(n) || start < 0 || n < 0 || start + n > this.pos) {
      throw new InvalidRequestError('bad-position', `rows ${start}..${start + n - 1} are not all in the sequence of ${this.pos} tokens`, { start, n, length: this.pos });
    }
    const kvDim = this.config.nKvHeads * this.config.headDim;
    return {
      k: this.keys.map((K) => K.slice(start * kvDim, (start + n) * kvDim)),
      v: this.values.map((V) => V.slice(start * kvDim, (start + n) * kvDim)),
    };
  }

  /**
   * Writes K and V rows (per layer (n, nKvHeads*headDim), keys before RoPE, as kvRows returns them)
   * at positions at..at+n-1 and extends the sequence to at least at+n. Attention rotates each key
   * by the position it sits at, so rows computed elsewhere are placed by a plain copy.
   */
  setKV(rows: { readonly k: readonly Float32Array[]; readonly v: readonly Float32Array[] }, at: number): void {
    const { nLayers, nKvHeads, headDim } = this.config;
    const kvDim = nKvHeads * headDim;
    if (rows.k.length !== nLayers || rows.v.length !== nLayers) {
      throw new InvalidRequestError('bad-kv-rows', `KV rows need one K and one V array per layer (${nLayers}); got ${rows.k.length} and ${rows.v.length}`);
    }
    const n = rows.k[0].length / kvDim;
    for (let l = 0; l < nLayers; l++) {
      if (rows.k[l].length !== n * kvDim || rows.v[l].length !== n * kvDim || !Number.isInteger(n)) {
        throw new InvalidRequestError('bad-kv-rows', `layer ${l}'s K and V rows must both hold the same whole number of rows of ${kvDim} values (got ${rows.k[l].length} and ${rows.v[l].length})`, { layer: l });
      }
    }
    if (!Number.isInteger(at) || at < 0 || at > this.pos) {
      throw new InvalidRequestError('bad-position', `rows can be written from position 0 to the sequence length ${this.pos}, not at ${at}: positions cannot be skipped`, { at, length: this.pos });
    }
    if (at + n > this.maxPos) {
      throw new KVCacheError('kv-cache-full', `the CPU reference holds ${this.maxPos} positions; ${n} rows at position ${at} do not fit (load it with a larger maxPos)`, { maxPos: this.maxPos, used: at, requested: n });
    }
    for (let l = 0; l < nLayers; l++) {
      this.keys[l].set(rows.k[l], at * kvDim);
      this.values[l].set(rows.v[l], at * kvDim);
      for (let p = at; p < at + n; p++) this.rotateKeys(l, p);
    }
    this.pos = Math.max(this.pos, at + n);
  }

  /**
   * Runs tokens[i] at positions[i], in order, each attending to the rows at positions 0..its own
   * (whatever they hold: placed rows, earlier tokens of this call, its own fresh row), and returns
   * a copy of the last one's logits. Nothing is dropped: a position inside the sequence has its
   * rows overwritten and the rows after it kept, which is how linked chunks recompute tokens in
   * place. A position may be at most the sequence length; the sequence grows to cover the last one.
   */
  forwardAt(tokens: number[], positions: readonly number[]): Float32Array {
    this.checkAt(tokens, positions);
    for (let i = 0; i < tokens.length; i++) this.step(tokens[i], positions[i]);
    return this.s.logits.slice();
  }

  /** Like forwardAt, but returns the logits of every token: (tokens.length) arrays of (vocab). */
  forwardAtAll(tokens: number[], positions: readonly number[]): Float32Array[] {
    this.checkAt(tokens, positions);
    const out: Float32Array[] = [];
    for (let i = 0; i < tokens.length; i++) {
      this.step(tokens[i], positions[i]);
      out.push(this.s.logits.slice());
    }
    return out;
  }

  /**
   * Refreshes the rotated copy of position p's keys at layer l. Attention reads keys through this
   * copy: the same f32 values as rotating the cached key at every read, computed once per write.
   */
  private rotateKeys(l: number, p: number): void {
    const { nKvHeads, headDim, ropeDim, ropeMode } = this.config;
    const kvDim = nKvHeads * headDim;
    const R = this.rotated[l];
    R.set(this.keys[l].subarray(p * kvDim, (p + 1) * kvDim), p * kvDim);
    for (let kh = 0; kh < nKvHeads; kh++) rotateHead(R, p * kvDim + kh * headDim, p, this.rope, ropeDim, ropeMode);
  }

  /** Checks a forwardAt call before any work: each position at most the length the tokens before it leave. */
  private checkAt(tokens: number[], positions: readonly number[]): void {
    if (tokens.length === 0) throw new InvalidRequestError('empty-input', 'CpuModel.forwardAt needs at least one token');
    if (positions.length !== tokens.length) {
      throw new InvalidRequestError('bad-position', `forwardAt got ${tokens.length} tokens but ${positions.length} positions`, { tokens: tokens.length, positions: positions.length });
    }
    let length = this.pos;
    for (const p of positions) {
      if (!Number.isInteger(p) || p < 0 || p > length) {
        throw new InvalidRequestError('bad-position', `position ${p} must be an integer between 0 and the sequence length ${length}: positions cannot be skipped`, { position: p, length });
      }
      if (p >= this.maxPos) {
        throw new KVCacheError('kv-cache-full', `the CPU reference holds ${this.maxPos} positions; position ${p} is past them (load it with a larger maxPos)`, { maxPos: this.maxPos, position: p });
      }
      length = Math.max(length, p + 1);
    }
    this.checkTokenIds(tokens);
  }

  private checkTokenIds(tokens: readonly number[]): void {
    for (const t of tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= this.config.vocabSize) {
        throw new InvalidRequestError('bad-token', `token id ${t} is outside the vocabulary (0..${this.config.vocabSize - 1})`, { token: t });
      }
    }
  }

  /** Checks a call before any work, then moves the sequence end to startPos. */
  private begin(tokens: number[], startPos: number): void {
    if (tokens.length === 0) throw new InvalidRequestError('empty-input', 'CpuModel.forward needs at least one token');
    if (!Number.isInteger(startPos) || startPos < 0 || startPos > this.pos) {
      throw new InvalidRequestError(
        'bad-position',
        `startPos ${startPos} must be an integer between 0 and the sequence length ${this.pos}: positions cannot be skipped`,
        { startPos, length: this.pos },
      );
    }
    if (startPos + tokens.length > this.maxPos) {
      throw new KVCacheError(
        'kv-cache-full',
        `the CPU reference holds ${this.maxPos} positions; ${startPos} are used and ${tokens.length} more were given (load it with a larger maxPos, or reset)`,
        { maxPos: this.maxPos, used: startPos, requested: tokens.length },
      );
    }
    this.checkTokenIds(tokens);
    this.pos = startPos;
  }

  /**
   * One token at position `pos` (at most the sequence length) through every layer, attending to
   * positions 0..pos; leaves its logits in s.logits and the sequence at least pos+1 long.
   */
  private step(token: number, pos: number): void {
    const c = this.config;
    const { dim, nHeads, nKvHeads, headDim, ffnDim, ropeDim, ropeMode } = c;
    const { x, xn, q, att, proj, gate, up, scores } = this.s;
    const qDim = nHeads * headDim;
    const kvDim = nKvHeads * headDim;
    const group = nHeads / nKvHeads; // query heads per KV head (GQA)
    const n = pos + 1; // positions attended to, this one included
    const scale = 1 / Math.sqrt(headDim);
    x.set(this.tokenEmbd.subarray(token * dim, (token + 1) * dim));

    for (let l = 0; l < this.layers.length; l++) {
      const L = this.layers[l];
      const K = this.keys[l];
      const R = this.rotated[l];
      const V = this.values[l];

      // Attention. Q is rotated now; this position's K and V go into the cache as they are.
      rmsnorm(xn, x, L.attnNorm, c.rmsEps);
      matvec(q, L.wq, xn, qDim, dim, L.bq);
      matvec(K.subarray(pos * kvDim, n * kvDim), L.wk, xn, kvDim, dim, L.bk);
      matvec(V.subarray(pos * kvDim, n * kvDim), L.wv, xn, kvDim, dim, L.bv);
      this.rotateKeys(l, pos);
      for (let h = 0; h < nHeads; h++) rotateHead(q, h * headDim, pos, this.rope, ropeDim, ropeMode);

      for (let kh = 0; kh < nKvHeads; kh++) {
        const h0 = kh * group; // first query head reading this KV head
        // scores[g, p] = q_(h0+g) · rope(k_p, p) / sqrt(headDim), the rotated key read from R.
        for (let p = 0; p < n; p++) {
          const src = p * kvDim + kh * headDim;
          for (let g = 0; g < group; g++) {
            const qo = (h0 + g) * headDim;
            let s = 0;
            for (let i = 0; i < headDim; i++) s += q[qo + i] * R[src + i];
            scores[g * n + p] = s * scale;
          }
        }
        for (let g = 0; g < group; g++) {
          // Softmax over positions (max subtracted for range), then the weighted sum of values.
          const so = g * n;
          let max = -Infinity;
          for (let p = 0; p < n; p++) if (scores[so + p] > max) max = scores[so + p];
          let sum = 0;
          for (let p = 0; p < n; p++) {
            scores[so + p] = Math.exp(scores[so + p] - max);
            sum += scores[so + p];
          }
          const ao = (h0 + g) * headDim;
          for (let i = 0; i < headDim; i++) {
            let o = 0;
            for (let p = 0; p < n; p++) o += scores[so + p] * V[p * kvDim + kh * headDim + i];
            att[ao + i] = o / sum;
          }
        }
      }
      matvec(proj, L.wo, att, dim, qDim);
      for (let i = 0; i < dim; i++) x[i] += proj[i];

      // MLP: wDown · (silu(wGate · xn) * (wUp · xn)).
      rmsnorm(xn, x, L.ffnNorm, c.rmsEps);
      matvec(gate, L.wGate, xn, ffnDim, dim);
      matvec(up, L.wUp, xn, ffnDim, dim);
      for (let i = 0; i < ffnDim; i++) gate[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
      matvec(proj, L.wDown, gate, dim, ffnDim);
      for (let i = 0; i < dim; i++) x[i] += proj[i];
    }

    this.pos = Math.max(this.pos, n);
    rmsnorm(xn, x, this.outputNorm, c.rmsEps);
    matvec(this.s.logits, this.output, xn, c.vocabSize, dim);
  }
}

/** Index of the largest logit (ties: the lowest id). */
export function greedy(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Greedy continuation on the CPU from a fresh sequence: the n ids generated after the prompt. */
export function cpuGenerate(model: CpuModel, promptTokens: number[], n: number): number[] {
  model.reset();
  const out: number[] = [];
  if (n <= 0) return out;
  let logits = model.forward(promptTokens);
  for (;;) {
    const next = greedy(logits);
    out.push(next);
    if (out.length >= n) return out;
    logits = model.forward([next]);
  }
}

/** Older names of `greedy` and `cpuGenerate`, still imported by the engine and model tests. */
export const greedyArgmax = greedy;
export const cpuGenerateGreedy = cpuGenerate;
