// The CPU reference forward pass: the oracle every GPU result is checked against. Plain loops on
// weights dequantized to f32, every dot product summed in f64. Each token runs its family's CPU
// program (src/model/families/, written to be read top to bottom like llama2.c); this class owns the
// sequence, the KV cache, the RoPE tables and attention (windows included). Keys are cached BEFORE RoPE and rotated by their position for attention, like the
// GPU pages (a rotated copy of each key is made once when it is written, not at every read, which
// gives the same f32 values); rotating a key by its own position is exactly what standard RoPE does
// at store time, so the results are the same (tests check this against a rotate-then-store cache).
// It is slow by design (one token at a time, no SIMD): meant for models up to ~10M parameters.
import { InvalidRequestError, KVCacheError } from '../errors.ts';
import { dequantize } from '../gguf/quant.ts';
import { parseGGUF, readTensorBytes, type GGUFFile } from '../gguf/reader.ts';
import type { ByteSource } from '../gguf/source.ts';
import { configFromGGUF, type ModelConfig } from './config.ts';
import { matvec, rmsnorm, ropeTable, rotateHead, type CpuRun, type CpuRunState } from './cpu-blocks.ts';
import { FAMILIES, type CpuWeights } from './families/index.ts';
import { loadTensors, resolveTensors, ropeFactors } from './tensors.ts';

export { ropeTable, rotateHead } from './cpu-blocks.ts';

export class CpuModel {
  private readonly keys: Float32Array[] = []; // per layer (maxPos, nKvHeads*headDim), before RoPE
  private readonly rotated: Float32Array[] = []; // per layer (maxPos, nKvHeads*headDim): keys[p] rotated to position p
  private readonly values: Float32Array[] = []; // per layer (maxPos, nKvHeads*headDim)
  private readonly ropeGlobal: Float32Array; // (maxPos, ropeDim/2, 2) cos, sin of global layers
  private readonly ropeLocal: Float32Array; // the same for local (sliding-window) layers
  private readonly s: CpuRunState;
  private readonly scores: Float64Array; // (group, maxPos) attention weights of the query heads sharing a KV head
  private readonly run: CpuRun;
  private pos = 0;

  private constructor(
    readonly config: ModelConfig,
    private readonly weights: CpuWeights,
    /** Positions the KV cache holds; also the runtime context that picks LongRoPE factors. */
    readonly maxPos: number,
  ) {
    const { dim, nHeads, nKvHeads, headDim, ffnDim, vocabSize } = config;
    const factors = ropeFactors(weights.global, config, maxPos);
    this.ropeGlobal = ropeTable(maxPos, config.ropeDim, config.ropeBase, factors, { freqScale: config.ropeFreqScale, attnFactor: config.ropeAttnFactor });
    this.ropeLocal = config.localLayers.some(Boolean) ? ropeTable(maxPos, config.ropeDim, config.ropeBaseLocal, undefined, { attnFactor: config.ropeAttnFactor }) : this.ropeGlobal;
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
      logits: new Float32Array(vocabSize),
    };
    this.scores = new Float64Array((nHeads / nKvHeads) * maxPos);
    const kvDim = nKvHeads * headDim;
    this.run = {
      c: config,
      s: this.s,
      kRow: (l, p) => this.keys[l].subarray(p * kvDim, (p + 1) * kvDim),
      vRow: (l, p) => this.values[l].subarray(p * kvDim, (p + 1) * kvDim),
      attend: (l, p) => this.attend(l, p),
      head: (outputNorm, output) => {
        rmsnorm(this.s.xn, this.s.x, outputNorm, config.rmsEps);
        matvec(this.s.logits, output, this.s.xn, vocabSize, dim);
        const cap = config.finalLogitSoftcap;
        if (cap > 0) for (let i = 0; i < vocabSize; i++) this.s.logits[i] = cap * Math.tanh(this.s.logits[i] / cap);
      },
    };
  }

  /**
   * Reads and dequantizes every weight (fused matrices split into their roles). `file` skips
   * re-parsing when the caller has it; `maxPos` caps the KV cache (default: the model's context
   * length, at most 2048) and, as a runtime context does, picks LongRoPE's long or short factors.
   */
  static async load(source: ByteSource, file?: GGUFFile, maxPos?: number): Promise<CpuModel> {
    const f = file ?? (await parseGGUF(source));
    const config = configFromGGUF(f);
    const t = resolveTensors(f, config);
    const loaded = await loadTensors(t, config, (info) => readTensorBytes(source, info), {
      matrix: (_label, type, bytes, rows, cols) => dequantize(type, bytes, rows * cols),
      vector: (_label, type, bytes, n) => dequantize(type, bytes, n),
    });
    const positions = Math.min(maxPos ?? 2048, config.contextLength);
    return new CpuModel(config, loaded, positions);
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
    for (let kh = 0; kh < nKvHeads; kh++) rotateHead(R, p * kvDim + kh * headDim, p, this.ropeOf(l), ropeDim, ropeMode);
  }

  /** Layer l's cos/sin table: local (sliding-window) layers have their own. */
  private ropeOf(l: number): Float32Array {
    return this.config.localLayers[l] ? this.ropeLocal : this.ropeGlobal;
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
   * One token at position `pos` (at most the sequence length) through every layer of its family's
   * program, attending to positions 0..pos (the last slidingWindow of them on local layers); leaves
   * its logits in s.logits and the sequence at least pos+1 long.
   */
  private step(token: number, pos: number): void {
    FAMILIES[this.config.family].forwardCpu(this.run, this.weights, token, pos);
    this.pos = Math.max(this.pos, pos + 1);
  }

  /**
   * Layer l's attention for the token at pos (its K and V rows written, keys before RoPE): q is
   * rotated now, the key's rotated copy refreshed, then for each query head
   *   att = sum_p softmax_p(scale · q · rope(k_p, p)) v_p
   * over p <= pos, and p > pos - slidingWindow on local layers.
   */
  private attend(l: number, pos: number): void {
    const { nHeads, nKvHeads, headDim, ropeDim, ropeMode, attentionScale, slidingWindow } = this.config;
    const { q, att } = this.s;
    const scores = this.scores;
    const kvDim = nKvHeads * headDim;
    const group = nHeads / nKvHeads; // query heads per KV head (GQA)
    const R = this.rotated[l];
    const V = this.values[l];
    this.rotateKeys(l, pos);
    for (let h = 0; h < nHeads; h++) rotateHead(q, h * headDim, pos, this.ropeOf(l), ropeDim, ropeMode);
    const first = this.config.localLayers[l] ? Math.max(0, pos - slidingWindow + 1) : 0; // first visible position
    const n = pos + 1 - first; // positions attended to, this one included
    for (let kh = 0; kh < nKvHeads; kh++) {
      const h0 = kh * group; // first query head reading this KV head
      // scores[g, j] = q_(h0+g) · rope(k_p, p) · scale for p = first + j, the rotated key read from R.
      for (let j = 0; j < n; j++) {
        const src = (first + j) * kvDim + kh * headDim;
        for (let g = 0; g < group; g++) {
          const qo = (h0 + g) * headDim;
          let s = 0;
          for (let i = 0; i < headDim; i++) s += q[qo + i] * R[src + i];
          scores[g * n + j] = s * attentionScale;
        }
      }
      for (let g = 0; g < group; g++) {
        // Softmax over positions (max subtracted for range), then the weighted sum of values.
        const so = g * n;
        let max = -Infinity;
        for (let j = 0; j < n; j++) if (scores[so + j] > max) max = scores[so + j];
        let sum = 0;
        for (let j = 0; j < n; j++) {
          scores[so + j] = Math.exp(scores[so + j] - max);
          sum += scores[so + j];
        }
        const ao = (h0 + g) * headDim;
        for (let i = 0; i < headDim; i++) {
          let o = 0;
          for (let j = 0; j < n; j++) o += scores[so + j] * V[(first + j) * kvDim + kh * headDim + i];
          att[ao + i] = o / sum;
        }
      }
    }
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
