// Synthetic models: GGUF files with random weights of real shapes, for tests and benchmarks of
// shapes and sizes no small real model covers. Deterministic for a seed.
import { InvalidRequestError } from '../errors.ts';
import { seededRandom } from '../random.ts';
import { f16ToF32, f32ToF16, GGMLType, ggmlTypeInfo, ggmlTypeName, quantize, tensorByteLength } from '../gguf/quant.ts';
import { WEIGHT_TYPES } from '../gpu/weights.ts';
import { q4KMTensorType } from './quant-recipe.ts';
import { gguf, writeGGUF, type GGUFTypedValue, type GGUFWriteTensor } from '../gguf/writer.ts';

/** The architectures synthetic models are written for, each with the keys and tensors llama.cpp loads. */
export type SyntheticArchitecture = 'llama' | 'qwen2' | 'qwen3' | 'gemma3' | 'phi3';

/** Llama 3's RoPE scaling (`rope_scaling.rope_type` 'llama3' in the Hugging Face config). */
export interface Llama3RopeScaling {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  /** original_max_position_embeddings. */
  originalContext: number;
}

export interface SyntheticSpec {
  architecture: SyntheticArchitecture;
  nLayers: number;
  dim: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  ffnDim: number;
  /** Ignored when `vocab` is given (its token count is used). */
  vocabSize: number;
  contextLength: number;
  /**
   * GGMLType of the matrices: any type `quantize` encodes (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
   * Q5_1, Q4_K, Q5_K, Q6_K); norms and biases stay F32. Rows must be whole blocks: multiples of
   * 32, or 256 for the K-quants.
   */
  weightType: number;
  /**
   * The per-tensor types llama-quantize gives a file of this type (src/model/quant-recipe.ts)
   * instead of `weightType` everywhere: 'Q4_K_M' is Q4_K with Q6_K for the output head and some
   * attn_v / ffn_down, and Q5_0 / Q8_0 wherever a row is not whole super-blocks.
   */
  recipe?: 'Q4_K_M';
  tiedOutput?: boolean;
  ropeBase?: number;
  seed: number;
  /** `tokenizer.*` metadata copied from a real vocabulary (metadataFromFile of a vocab GGUF). */
  vocab?: Record<string, GGUFTypedValue>;
  name?: string;
  /** llama: Llama 3 RoPE scaling, stored as the `rope_freqs.weight` factors llama.cpp's converter computes. */
  llama3Rope?: Llama3RopeScaling;
  /**
   * `attention.sliding_window`: gemma3's local layers attend to this many positions; phi3 files carry
   * it as the converter writes it (llama.cpp does not use it for phi3).
   */
  slidingWindow?: number;
  /** gemma3: `attention.sliding_window_pattern`, every this-many-th layer global; absent, llama.cpp uses 6. */
  slidingWindowPattern?: number;
  /** Linear RoPE scaling of the global layers (`rope.scaling.type` linear, `rope.scaling.factor`), as Gemma 3 4B and up have. */
  ropeScaleLinear?: number;
  /**
   * phi3: LongRoPE for a model trained at this context and extended to `contextLength`, written as the
   * converter does: `rope_factors_long/short.weight`, `rope.scaling.attn_factor` and
   * `rope.scaling.original_context_length`.
   */
  longRopeOriginalContext?: number;
  /** gemma3: `final_logit_softcapping` (llama.cpp applies it to models without a sliding window). */
  finalLogitSoftcap?: number;
  /**
   * Decisive greedy decoding, for comparing runtimes token by token (untied heads only). A random
   * head gives Gaussian logits, whose top two of a few hundred differ by only ~0.3 standard
   * deviations on average, so rounding differences between runtimes often swap them. With this
   * option each token t gets a successor (a seeded permutation of the vocabulary) whose head row
   * also points along t's embedding, and embeddings get RMS 1 (as large as a layer's output) so
   * they keep a share of the last residual stream: the successor's logit gains about
   * `successorLead` standard deviations of the random logits times that share (the cosine between
   * the embedding and the stream). The layers still decide wherever they pull the stream away.
   */
  successorLead?: number;
}

const base = { contextLength: 4096, seed: 1, weightType: GGMLType.Q4_0 };

const llama3Rope32: Llama3RopeScaling = { factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 };

/**
 * Shapes of real models (each architecture's features as its release has them), small shapes
 * covering GQA ratios 1, 2, 4, 7, 8 and head sizes 64, 128, and a tiny model of each architecture
 * for tests.
 */
export const SYNTHETIC_PRESETS = {
  'qwen2.5-0.5b': { ...base, architecture: 'qwen2', nLayers: 24, dim: 896, nHeads: 14, nKvHeads: 2, headDim: 64, ffnDim: 4864, vocabSize: 151936, tiedOutput: true, ropeBase: 1e6, contextLength: 32768 },
  'llama-3.2-1b': { ...base, architecture: 'llama', nLayers: 16, dim: 2048, nHeads: 32, nKvHeads: 8, headDim: 64, ffnDim: 8192, vocabSize: 128256, tiedOutput: true, ropeBase: 500000, contextLength: 131072, llama3Rope: llama3Rope32 },
  // Head size 128 with 16 query heads: the query width (2048) is twice the embedding (1024).
  'qwen3-0.6b': { ...base, architecture: 'qwen3', nLayers: 28, dim: 1024, nHeads: 16, nKvHeads: 8, headDim: 128, ffnDim: 3072, vocabSize: 151936, tiedOutput: true, ropeBase: 1e6, contextLength: 40960 },
  // Five local layers (window 512, RoPE base 10000) to every global one (base 1e6), head size 256.
  'gemma-3-1b': { ...base, architecture: 'gemma3', nLayers: 26, dim: 1152, nHeads: 4, nKvHeads: 1, headDim: 256, ffnDim: 6912, vocabSize: 262144, tiedOutput: true, ropeBase: 1e6, contextLength: 32768, slidingWindow: 512 },
  // Phi-3-mini-128k: fused QKV and gate/up, head size 96, LongRoPE from 4096 to 131072.
  'phi-3-mini': { ...base, architecture: 'phi3', nLayers: 32, dim: 3072, nHeads: 32, nKvHeads: 32, headDim: 96, ffnDim: 8192, vocabSize: 32064, ropeBase: 10000, contextLength: 131072, longRopeOriginalContext: 4096, slidingWindow: 262144 },
  'smollm2-135m': { ...base, architecture: 'llama', nLayers: 30, dim: 576, nHeads: 9, nKvHeads: 3, headDim: 64, ffnDim: 1536, vocabSize: 49152, tiedOutput: true, ropeBase: 100000, contextLength: 8192 },
  'tiny-gqa1-h64': { ...base, architecture: 'llama', nLayers: 2, dim: 256, nHeads: 4, nKvHeads: 4, headDim: 64, ffnDim: 512, vocabSize: 384 },
  'tiny-gqa2-h128': { ...base, architecture: 'llama', nLayers: 2, dim: 256, nHeads: 4, nKvHeads: 2, headDim: 128, ffnDim: 384, vocabSize: 384 },
  'tiny-gqa4-h64': { ...base, architecture: 'llama', nLayers: 2, dim: 256, nHeads: 8, nKvHeads: 2, headDim: 64, ffnDim: 320, vocabSize: 384 },
  'tiny-gqa8-h64': { ...base, architecture: 'llama', nLayers: 2, dim: 512, nHeads: 8, nKvHeads: 1, headDim: 64, ffnDim: 512, vocabSize: 384 },
  // Qwen2's own grouping (14 query heads over 2 KV heads), biases, NEOX RoPE and a tied output head.
  'tiny-qwen2-gqa7-h64': { ...base, architecture: 'qwen2', nLayers: 3, dim: 448, nHeads: 14, nKvHeads: 2, headDim: 64, ffnDim: 640, vocabSize: 512, tiedOutput: true, ropeBase: 1e6 },
  // One tiny model per architecture, each with its distinguishing features and little else.
  'tiny-llama3': { ...base, architecture: 'llama', weightType: GGMLType.Q8_0, nLayers: 2, dim: 128, nHeads: 4, nKvHeads: 2, headDim: 32, ffnDim: 256, vocabSize: 320, ropeBase: 500000, contextLength: 1024, llama3Rope: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 64 } },
  'tiny-qwen3': { ...base, architecture: 'qwen3', weightType: GGMLType.Q8_0, nLayers: 2, dim: 128, nHeads: 4, nKvHeads: 2, headDim: 64, ffnDim: 256, vocabSize: 320, tiedOutput: true, ropeBase: 1e6, contextLength: 1024 },
  'tiny-gemma3': { ...base, architecture: 'gemma3', weightType: GGMLType.Q8_0, nLayers: 3, dim: 128, nHeads: 4, nKvHeads: 1, headDim: 64, ffnDim: 256, vocabSize: 320, tiedOutput: true, ropeBase: 1e6, contextLength: 1024, slidingWindow: 8, slidingWindowPattern: 3, ropeScaleLinear: 4 },
  'tiny-phi3': { ...base, architecture: 'phi3', weightType: GGMLType.Q8_0, nLayers: 2, dim: 128, nHeads: 4, nKvHeads: 2, headDim: 32, ffnDim: 256, vocabSize: 320, ropeBase: 10000, contextLength: 1024, longRopeOriginalContext: 64, slidingWindow: 32 },
} satisfies Record<string, SyntheticSpec>;

export type SyntheticPreset = keyof typeof SYNTHETIC_PRESETS;

const rng = seededRandom;

/** Fills `out` with uniform values of standard deviation `std` around `mean` (uniform on mean ± std·√3). */
function fillRandom(out: Float32Array, std: number, next: () => number, mean = 0): Float32Array {
  const a = std * Math.sqrt(3);
  for (let i = 0; i < out.length; i++) out[i] = mean + (2 * next() - 1) * a;
  return out;
}

// Rows are generated and encoded this many values at a time, so a big matrix never exists as one
// f32 array (it would be 4x the size of its Q4_0 bytes).
const CHUNK_VALUES = 1 << 20;

/** A random (rows, cols) matrix of independent values, generated and encoded a few rows at a time. */
function randomMatrix(type: GGMLType, rows: number, cols: number, std: number, next: () => number): Uint8Array {
  const out = new Uint8Array(tensorByteLength(type, rows * cols));
  const rowBytes = tensorByteLength(type, cols);
  const chunkRows = Math.max(1, Math.floor(CHUNK_VALUES / cols));
  const values = new Float32Array(chunkRows * cols); // (chunkRows, cols)
  for (let r = 0; r < rows; r += chunkRows) {
    const n = Math.min(chunkRows, rows - r);
    out.set(quantize(type, fillRandom(values.subarray(0, n * cols), std, next)), r * rowBytes);
  }
  return out;
}

// Block-quantized matrices above this many values are assembled from a pool of quantized random
// blocks instead: drawing and quantizing every value of a 1B-parameter model in JS takes minutes,
// copying blocks takes seconds. The pool's f16 block scales (and mins) are multiplied by the
// matrix's std (every value of a block is a multiple of them, so this scales the values, up to the
// f16 rounding of the new scales), then runs of POOL_RUN blocks are copied from random offsets.
// Rows still differ (the chance that two rows repeat the same runs is nil), so logits do not tie.
const POOL_THRESHOLD = 1 << 22;
const POOL_VALUES = 1 << 22;
const POOL_RUN = 4;

// Byte offsets of the f16 fields inside a block that every value of it is a multiple of: d, and
// m or dmin (Q4_1, Q5_1, Q4_K, Q5_K); Q6_K keeps its d at the end.
const BLOCK_SCALE_OFFSETS: Partial<Record<GGMLType, readonly number[]>> = {
  [GGMLType.Q8_0]: [0],
  [GGMLType.Q4_0]: [0],
  [GGMLType.Q4_1]: [0, 2],
  [GGMLType.Q5_0]: [0],
  [GGMLType.Q5_1]: [0, 2],
  [GGMLType.Q4_K]: [0, 2],
  [GGMLType.Q5_K]: [0, 2],
  [GGMLType.Q6_K]: [208],
};

/** Pool blocks with every f16 scale (and min) multiplied by `std`: the same values scaled. */
function scalePool(type: GGMLType, pool: Uint8Array, std: number): Uint8Array {
  const { typeSize } = ggmlTypeInfo(type);
  const offsets = BLOCK_SCALE_OFFSETS[type] ?? [];
  const out = pool.slice();
  const view = new DataView(out.buffer);
  for (let o = 0; o < out.length; o += typeSize) {
    for (const at of offsets) view.setUint16(o + at, f32ToF16(f16ToF32(view.getUint16(o + at, true)) * std), true);
  }
  return out;
}

/** (rows, cols) block-quantized matrix copied in runs of blocks from random offsets of a scaled pool. */
function pooledMatrix(type: GGMLType, rows: number, cols: number, pool: Uint8Array, next: () => number): Uint8Array {
  const { blockSize, typeSize } = ggmlTypeInfo(type);
  const out = new Uint8Array(tensorByteLength(type, rows * cols));
  const nBlocks = (rows * cols) / blockSize;
  const poolBlocks = pool.length / typeSize;
  for (let b = 0; b < nBlocks; b += POOL_RUN) {
    const n = Math.min(POOL_RUN, nBlocks - b);
    const from = Math.floor(next() * (poolBlocks - n + 1)) * typeSize;
    out.set(pool.subarray(from, from + n * typeSize), b * typeSize);
  }
  return out;
}

/**
 * A small SentencePiece-style vocabulary: control tokens, the 256 byte tokens, then pieces; `tail`
 * control tokens take the last ids (phi3: llama.cpp looks `<|endoftext|>` up by its text when the
 * model's name says Phi-3, as real Phi-3 vocabularies have it).
 */
function syntheticVocab(size: number, tail: readonly string[] = []): Record<string, GGUFTypedValue> {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
  }
  const letters = 'etaoinshrdlucmfwypvbgkjqxz';
  const pieces = ['\u2581'];
  for (const c of letters) pieces.push(`\u2581${c}`, c);
  for (const a of letters) for (const b of letters) pieces.push(`${a}${b}`, `\u2581${a}${b}`);
  for (let i = 0; tokens.length < size; i++) {
    tokens.push(i < pieces.length ? pieces[i] : `<extra_${i}>`);
    types.push(i < pieces.length ? 1 : 5);
  }
  tail.forEach((t, i) => {
    const id = size - tail.length + i;
    if (id >= 259) {
      tokens[id] = t;
      types[id] = 3;
    }
  });
  const scores = new Float32Array(tokens.length).map((_, i) => (i < 259 ? 0 : -(i - 259)));
  return {
    'tokenizer.ggml.model': gguf.string('llama'),
    'tokenizer.ggml.tokens': gguf.array('string', tokens.slice(0, size)),
    'tokenizer.ggml.scores': gguf.array('f32', scores.slice(0, size)),
    'tokenizer.ggml.token_type': gguf.array('i32', new Int32Array(types.slice(0, size))),
    'tokenizer.ggml.bos_token_id': gguf.u32(1),
    'tokenizer.ggml.eos_token_id': gguf.u32(2),
    'tokenizer.ggml.unknown_token_id': gguf.u32(0),
  };
}

function tokenizerKeys(meta: Record<string, GGUFTypedValue>): Record<string, GGUFTypedValue> {
  return Object.fromEntries(Object.entries(meta).filter(([k]) => k.startsWith('tokenizer.')));
}

function vocabCount(vocab: Record<string, GGUFTypedValue>): number {
  const t = vocab['tokenizer.ggml.tokens'];
  if (!t || !('values' in t)) {
    throw new InvalidRequestError('bad-spec', "the vocabulary metadata has no 'tokenizer.ggml.tokens' array; pass metadataFromFile() of a vocab GGUF", {});
  }
  return t.values.length;
}

function checkSpec(spec: SyntheticSpec, vocabSize: number): void {
  const bad = (what: string) => {
    throw new InvalidRequestError('bad-spec', `synthetic model: ${what}`, {});
  };
  const { dim, nHeads, nKvHeads, headDim, ffnDim } = spec;
  for (const [k, v] of Object.entries({ nLayers: spec.nLayers, dim, nHeads, nKvHeads, headDim, ffnDim, vocabSize, contextLength: spec.contextLength })) {
    if (!Number.isInteger(v) || v < 1) bad(`${k} must be a positive integer, got ${v}`);
  }
  if (nHeads % nKvHeads !== 0) bad(`${nHeads} query heads cannot be grouped over ${nKvHeads} KV heads`);
  if (headDim % 2 !== 0) bad(`headDim ${headDim} must be even for RoPE`);
  const a = spec.architecture;
  if (spec.llama3Rope && a !== 'llama') bad(`llama3Rope is Llama 3's RoPE scaling; ${a} does not read rope_freqs`);
  if (spec.longRopeOriginalContext !== undefined && a !== 'phi3') bad(`LongRoPE factors are read by phi3 only, not ${a}`);
  if (spec.slidingWindowPattern !== undefined && (a !== 'gemma3' || !spec.slidingWindow)) bad('slidingWindowPattern needs a gemma3 model with a slidingWindow');
  if (spec.successorLead !== undefined && (spec.tiedOutput || !(spec.successorLead > 0))) bad('successorLead needs an untied output head and a positive lead');
  if (a === 'phi3' && nHeads * headDim !== dim) bad(`phi3's attention output is (dim, dim): nHeads*headDim = ${nHeads * headDim} must equal dim ${dim}`);
  if (!(WEIGHT_TYPES as readonly number[]).includes(spec.weightType)) {
    bad(`weightType ${ggmlTypeName(spec.weightType)} is not one of ${WEIGHT_TYPES.map(ggmlTypeName).join(', ')}`);
  }
  // A recipe picks a type per tensor that fits its rows (falling back as llama-quantize does).
  const block = spec.recipe ? 1 : ggmlTypeInfo(spec.weightType).blockSize;
  const unit = block === 256 ? 'K-quant super-blocks of 256 values' : `blocks of ${block} values`;
  for (const [k, v] of Object.entries({ dim, ffnDim, 'nHeads*headDim': nHeads * headDim })) {
    if (v % block !== 0) bad(`${k} = ${v} must be a multiple of ${block}: ${ggmlTypeName(spec.weightType)} rows are whole ${unit}`);
  }
}

/**
 * `rope_freqs.weight` for Llama 3 RoPE scaling, computed as llama.cpp's converter does: for pair i
 * (frequency base^(-2i/ropeDim), wavelength 2π/frequency) the number its frequency is divided by:
 * 1 for wavelengths below originalContext/highFreqFactor, `factor` above originalContext/lowFreqFactor,
 * and in between the reciprocal of a blend of 1/factor and 1.
 */
export function llama3RopeFactors(ropeDim: number, base: number, s: Llama3RopeScaling): Float32Array {
  const out = new Float32Array(ropeDim / 2);
  const lowFreqWavelen = s.originalContext / s.lowFreqFactor;
  const highFreqWavelen = s.originalContext / s.highFreqFactor;
  for (let i = 0; i < out.length; i++) {
    const wavelen = 2 * Math.PI * Math.pow(base, (2 * i) / ropeDim);
    if (wavelen < highFreqWavelen) out[i] = 1;
    else if (wavelen > lowFreqWavelen) out[i] = s.factor;
    else {
      const smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/**
 * LongRoPE as Phi-3's converter writes it for a model extended from `original` to `context`
 * positions: the attention factor sqrt(1 + ln(context/original) / ln(original)) (1 when not
 * extended), and made-up factors of a plausible form (short ones near 1, long ones rising from 1 to
 * about the extension ratio), since real ones are fitted per model.
 */
export function syntheticLongRope(ropeDim: number, original: number, context: number): { long: Float32Array; short: Float32Array; attnFactor: number } {
  const half = ropeDim / 2;
  const ratio = context / original;
  const short = new Float32Array(half).map((_, i) => 1 + (0.1 * i) / half);
  const long = new Float32Array(half).map((_, i) => 1 + (Math.max(ratio, 1) - 1) * Math.pow(i / Math.max(1, half - 1), 2));
  const attnFactor = ratio > 1 ? Math.sqrt(1 + Math.log(ratio) / Math.log(original)) : 1;
  return { long, short, attnFactor };
}

/**
 * The output head of `successorLead`: random rows of logit std `logitStd` on a unit-RMS input, plus,
 * in the row of each token t's successor, `lead`·logitStd/√dim times t's unit embedding direction.
 * An input of RMS 1 (norm √dim) at cosine ρ with t's embedding adds lead·logitStd·ρ to that logit.
 */
function successorHead(embd: Float32Array, vocabSize: number, dim: number, logitStd: number, lead: number, next: () => number): Float32Array {
  const head = fillRandom(new Float32Array(vocabSize * dim), logitStd / Math.sqrt(dim), next); // (vocab, dim)
  const successor = Array.from({ length: vocabSize }, (_, i) => i);
  for (let i = vocabSize - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [successor[i], successor[j]] = [successor[j], successor[i]];
  }
  for (let t = 0; t < vocabSize; t++) {
    const e = embd.subarray(t * dim, (t + 1) * dim);
    let norm = 0;
    for (let i = 0; i < dim; i++) norm += e[i] * e[i];
    norm = Math.sqrt(norm);
    const row = head.subarray(successor[t] * dim, (successor[t] + 1) * dim);
    const k = (lead * logitStd) / Math.sqrt(dim) / norm;
    for (let i = 0; i < dim; i++) row[i] += k * e[i];
  }
  return head;
}

/**
 * Writes a GGUF file (as bytes) holding a random-weight model of the given shape.
 *
 * Scales: matrices have std 1/√fan_in so every projection keeps unit scale; the two residual
 * branches' output projections are halved so the stream does not grow with depth; norm weights
 * are ~1; embeddings are small (std 0.1/√dim). The output head is scaled so logits have a standard deviation of about
 * 3: wide enough for clear greedy margins, not so wide that sampling is always greedy. Values are
 * uniform with those standard deviations (cheaper than Gaussian, and the shape does not matter here).
 * Per architecture, the tensors and keys llama.cpp loads: qwen2's QKV biases; qwen3's and gemma3's
 * per-head Q/K norms ([headDim]); gemma3's post-attention and post-FFN norms and sliding-window keys;
 * phi3's fused `attn_qkv` (Q rows, then K, then V) and `ffn_up` (gate rows, then up rows);
 * Llama 3's `rope_freqs.weight` and phi3's LongRoPE factors when the spec asks for them.
 * Big block-quantized matrices reuse quantized blocks from a pool (see pooledMatrix) to be written fast.
 */
export function makeSyntheticModel(spec: SyntheticSpec): Uint8Array {
  const a = spec.architecture;
  // Only the tokenizer keys of a vocab GGUF: its general.* and {arch}.* keys describe another model.
  const vocabMeta = spec.vocab ? tokenizerKeys(spec.vocab) : syntheticVocab(spec.vocabSize, a === 'phi3' ? ['<|endoftext|>'] : []);
  const vocabSize = spec.vocab ? vocabCount(spec.vocab) : spec.vocabSize;
  checkSpec(spec, vocabSize);
  const { dim, nHeads, nKvHeads, headDim, ffnDim } = spec;
  const type = spec.weightType as GGMLType;
  const next = rng(spec.seed);
  const tensors: GGUFWriteTensor[] = [];
  // Matrices have shape [cols, rows] in ggml order: rows = out features, cols = in features.
  const recipe = { nLayers: spec.nLayers, hasOutput: !spec.tiedOutput };
  const typeOf = (name: string, cols: number): GGMLType => (spec.recipe ? q4KMTensorType(name, cols, recipe) : type);
  const pools = new Map<GGMLType, Uint8Array>(); // per type: POOL_VALUES quantized values of std 1, made on first use
  const scaledPools = new Map<string, Uint8Array>(); // by type and std: a model uses only a few
  const matrix = (name: string, cols: number, rows: number, std = 1 / Math.sqrt(cols)) => {
    const t = typeOf(name, cols);
    let data: Uint8Array;
    if (ggmlTypeInfo(t).blockSize > 1 && rows * cols > POOL_THRESHOLD) {
      let pool = pools.get(t);
      if (!pool) pools.set(t, (pool = quantize(t, fillRandom(new Float32Array(POOL_VALUES), 1, next))));
      let scaled = scaledPools.get(`${t}:${std}`);
      if (!scaled) scaledPools.set(`${t}:${std}`, (scaled = scalePool(t, pool, std)));
      data = pooledMatrix(t, rows, cols, scaled, next);
    } else {
      data = randomMatrix(t, rows, cols, std, next);
    }
    tensors.push({ name, shape: [cols, rows], type: t, data });
  };
  const matrixOf = (name: string, cols: number, rows: number, values: Float32Array) => {
    const t = typeOf(name, cols);
    tensors.push({ name, shape: [cols, rows], type: t, data: quantize(t, values) });
  };
  const vector = (name: string, n: number, std: number, mean: number) => {
    const values = fillRandom(new Float32Array(n), std, next, mean);
    tensors.push({ name, shape: [n], type: GGMLType.F32, data: new Uint8Array(values.buffer) });
  };
  const logitStd = 3;
  // Small embeddings (RMS 0.1/√dim), so the residual stream belongs to the layers' outputs. With a
  // tied head the embedding left in the stream adds about embdStd·√dim·logitStd/rms(x) < 1 to the
  // current token's own logit; with unit embeddings that term is ~√dim and every step repeats it.
  const embdStd = 0.1 / Math.sqrt(dim);
  const lead = spec.successorLead;
  // successorLead: embeddings of RMS 1 in the stream (gemma3 multiplies them by √dim on input).
  const embd = lead ? fillRandom(new Float32Array(vocabSize * dim), a === 'gemma3' ? 1 / Math.sqrt(dim) : 1, next) : undefined; // (vocab, dim)
  if (embd) matrixOf('token_embd.weight', dim, vocabSize, embd);
  else matrix('token_embd.weight', dim, vocabSize, embdStd);
  // Tied: logits = token_embd · (norm(x) * w), whose std is embdStd·√dim·w, so w ≈ 30.
  const outNormMean = spec.tiedOutput ? logitStd / (embdStd * Math.sqrt(dim)) : 1;
  vector('output_norm.weight', dim, 0.1 * outNormMean, outNormMean);
  if (embd && lead) matrixOf('output.weight', dim, vocabSize, successorHead(embd, vocabSize, dim, logitStd, lead, next));
  else if (!spec.tiedOutput) matrix('output.weight', dim, vocabSize, logitStd / Math.sqrt(dim));
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  for (let l = 0; l < spec.nLayers; l++) {
    const p = `blk.${l}`;
    vector(`${p}.attn_norm.weight`, dim, 0.1, 1);
    if (a === 'phi3') {
      matrix(`${p}.attn_qkv.weight`, dim, qDim + 2 * kvDim);
    } else {
      matrix(`${p}.attn_q.weight`, dim, qDim);
      matrix(`${p}.attn_k.weight`, dim, kvDim);
      matrix(`${p}.attn_v.weight`, dim, kvDim);
    }
    if (a === 'qwen2') {
      vector(`${p}.attn_q.bias`, qDim, 0.1, 0);
      vector(`${p}.attn_k.bias`, kvDim, 0.1, 0);
      vector(`${p}.attn_v.bias`, kvDim, 0.1, 0);
    }
    if (a === 'qwen3' || a === 'gemma3') {
      vector(`${p}.attn_q_norm.weight`, headDim, 0.1, 1);
      vector(`${p}.attn_k_norm.weight`, headDim, 0.1, 1);
    }
    matrix(`${p}.attn_output.weight`, qDim, dim, 0.5 / Math.sqrt(qDim));
    // gemma3 normalizes each branch's output before adding it: the branch then adds about norm
    // weight × 1 to the stream, so those weights are kept at 0.5.
    if (a === 'gemma3') vector(`${p}.post_attention_norm.weight`, dim, 0.05, 0.5);
    vector(`${p}.ffn_norm.weight`, dim, 0.1, 1);
    if (a === 'phi3') {
      matrix(`${p}.ffn_up.weight`, dim, 2 * ffnDim);
    } else {
      matrix(`${p}.ffn_gate.weight`, dim, ffnDim);
      matrix(`${p}.ffn_up.weight`, dim, ffnDim);
    }
    matrix(`${p}.ffn_down.weight`, ffnDim, dim, 0.5 / Math.sqrt(ffnDim));
    if (a === 'gemma3') vector(`${p}.post_ffw_norm.weight`, dim, 0.05, 0.5);
  }
  const f32Tensor = (name: string, values: Float32Array) => tensors.push({ name, shape: [values.length], type: GGMLType.F32, data: new Uint8Array(values.buffer) });
  const ropeBase = spec.ropeBase ?? 10000;
  if (spec.llama3Rope) f32Tensor('rope_freqs.weight', llama3RopeFactors(headDim, ropeBase, spec.llama3Rope));
  const longRope = spec.longRopeOriginalContext !== undefined ? syntheticLongRope(headDim, spec.longRopeOriginalContext, spec.contextLength) : undefined;
  if (longRope) {
    f32Tensor('rope_factors_long.weight', longRope.long);
    f32Tensor('rope_factors_short.weight', longRope.short);
  }
  const metadata: Record<string, GGUFTypedValue> = {
    'general.architecture': gguf.string(a),
    'general.name': gguf.string(spec.name ?? `synthetic-${a}-${spec.nLayers}L-${dim}`),
    [`${a}.block_count`]: gguf.u32(spec.nLayers),
    [`${a}.context_length`]: gguf.u32(spec.contextLength),
    [`${a}.embedding_length`]: gguf.u32(dim),
    [`${a}.feed_forward_length`]: gguf.u32(ffnDim),
    [`${a}.attention.head_count`]: gguf.u32(nHeads),
    [`${a}.attention.head_count_kv`]: gguf.u32(nKvHeads),
    [`${a}.attention.key_length`]: gguf.u32(headDim),
    [`${a}.attention.value_length`]: gguf.u32(headDim),
    [`${a}.rope.dimension_count`]: gguf.u32(headDim),
    [`${a}.rope.freq_base`]: gguf.f32(ropeBase),
    [`${a}.attention.layer_norm_rms_epsilon`]: gguf.f32(1e-6),
    ...vocabMeta,
  };
  if (spec.slidingWindow !== undefined) metadata[`${a}.attention.sliding_window`] = gguf.u32(spec.slidingWindow);
  if (spec.slidingWindowPattern !== undefined) metadata[`${a}.attention.sliding_window_pattern`] = gguf.u32(spec.slidingWindowPattern);
  if (spec.ropeScaleLinear !== undefined) {
    metadata[`${a}.rope.scaling.type`] = gguf.string('linear');
    metadata[`${a}.rope.scaling.factor`] = gguf.f32(spec.ropeScaleLinear);
  }
  if (longRope) {
    metadata[`${a}.rope.scaling.attn_factor`] = gguf.f32(longRope.attnFactor);
    metadata[`${a}.rope.scaling.original_context_length`] = gguf.u32(spec.longRopeOriginalContext!);
  }
  if (spec.finalLogitSoftcap !== undefined) metadata[`${a}.final_logit_softcapping`] = gguf.f32(spec.finalLogitSoftcap);
  return writeGGUF({ metadata, tensors });
}
