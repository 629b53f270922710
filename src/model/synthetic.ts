// Synthetic models: GGUF files with random weights of real shapes, for tests and benchmarks of
// shapes and sizes no small real model covers. Deterministic for a seed.
import { GGMLType, quantize } from '../gguf/quant.ts';
import { gguf, writeGGUF, type GGUFTypedValue, type GGUFWriteTensor } from '../gguf/writer.ts';

export interface SyntheticSpec {
  architecture: 'llama' | 'qwen2';
  nLayers: number;
  dim: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  ffnDim: number;
  /** Ignored when `vocab` is given (its token count is used). */
  vocabSize: number;
  contextLength: number;
  /** Type of the matrices (norms and biases stay F32). */
  weightType: number;
  tiedOutput?: boolean;
  ropeBase?: number;
  seed: number;
  /** `tokenizer.*` metadata copied from a real vocabulary (metadataFromFile of a vocab GGUF). */
  vocab?: Record<string, GGUFTypedValue>;
  name?: string;
}

const base = { contextLength: 4096, seed: 1, weightType: GGMLType.Q4_0 };

/** Shapes of real models, and small shapes covering GQA ratios 1, 2, 4, 8 and head sizes 64, 128. */
export const SYNTHETIC_PRESETS = {
  'qwen2.5-0.5b': { ...base, architecture: 'qwen2', nLayers: 24, dim: 896, nHeads: 14, nKvHeads: 2, headDim: 64, ffnDim: 4864, vocabSize: 151936, tiedOutput: true, ropeBase: 1e6, contextLength: 32768 },
  'llama-3.2-1b': { ...base, architecture: 'llama', nLayers: 16, dim: 2048, nHeads: 32, nKvHeads: 8, headDim: 64, ffnDim: 8192, vocabSize: 128256, tiedOutput: true, ropeBase: 500000, contextLength: 131072 },
  'tiny-gqa1-h64': { ...base, architecture: 'llama', nLayers: 2, dim: 256, nHeads: 4, nKvHeads: 4, headDim: 64, ffnDim: 512, vocabSize: 384 },
  'tiny-gqa2-h128': { ...base, architecture: 'llama', nLayers: 2, dim: 256, nHeads: 4, nKvHeads: 2, headDim: 128, ffnDim: 384, vocabSize: 384 },
  'tiny-gqa4-h64': { ...base, architecture: 'llama', nLayers: 2, dim: 256, nHeads: 8, nKvHeads: 2, headDim: 64, ffnDim: 320, vocabSize: 384 },
  'tiny-gqa8-h64': { ...base, architecture: 'llama', nLayers: 2, dim: 512, nHeads: 8, nKvHeads: 1, headDim: 64, ffnDim: 512, vocabSize: 384 },
} satisfies Record<string, SyntheticSpec>;

export type SyntheticPreset = keyof typeof SYNTHETIC_PRESETS;

/** xorshift32: fast, seeded, good enough for weights. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** Uniform values with standard deviation `std` (uniform on ±std·√3). */
function randomValues(n: number, std: number, next: () => number, mean = 0): Float32Array {
  const a = std * Math.sqrt(3);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + (2 * next() - 1) * a;
  return out;
}

/** A small SentencePiece-style vocabulary: control tokens, the 256 byte tokens, then pieces. */
function syntheticVocab(size: number): Record<string, GGUFTypedValue> {
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

function vocabCount(vocab: Record<string, GGUFTypedValue>): number {
  const t = vocab['tokenizer.ggml.tokens'];
  if (!t || !('values' in t)) throw new Error("the vocabulary metadata has no 'tokenizer.ggml.tokens' array");
  return t.values.length;
}

/** Writes a GGUF file (as bytes) holding a random-weight model of the given shape. */
export function makeSyntheticModel(spec: SyntheticSpec): Uint8Array {
  const a = spec.architecture;
  const vocabMeta = spec.vocab ?? syntheticVocab(spec.vocabSize);
  const vocabSize = spec.vocab ? vocabCount(spec.vocab) : spec.vocabSize;
  const { dim, nHeads, nKvHeads, headDim, ffnDim } = spec;
  const next = rng(spec.seed);
  const tensors: GGUFWriteTensor[] = [];
  // Matrices have shape [cols, rows] (ggml order); N(0, 1/√cols) keeps each output ~unit scale.
  const matrix = (name: string, cols: number, rows: number, std = 1 / Math.sqrt(cols)) => {
    const values = randomValues(rows * cols, std, next);
    tensors.push({ name, shape: [cols, rows], type: spec.weightType as GGMLType, data: quantize(spec.weightType, values) });
  };
  const vector = (name: string, n: number, std: number, mean: number) => {
    const values = randomValues(n, std, next, mean);
    tensors.push({ name, shape: [n], type: GGMLType.F32, data: new Uint8Array(values.buffer) });
  };
  matrix('token_embd.weight', dim, vocabSize, 1);
  vector('output_norm.weight', dim, 0.1, 1);
  if (!spec.tiedOutput) matrix('output.weight', dim, vocabSize);
  for (let l = 0; l < spec.nLayers; l++) {
    const p = `blk.${l}`;
    vector(`${p}.attn_norm.weight`, dim, 0.1, 1);
    matrix(`${p}.attn_q.weight`, dim, nHeads * headDim);
    matrix(`${p}.attn_k.weight`, dim, nKvHeads * headDim);
    matrix(`${p}.attn_v.weight`, dim, nKvHeads * headDim);
    if (a === 'qwen2') {
      vector(`${p}.attn_q.bias`, nHeads * headDim, 0.1, 0);
      vector(`${p}.attn_k.bias`, nKvHeads * headDim, 0.1, 0);
      vector(`${p}.attn_v.bias`, nKvHeads * headDim, 0.1, 0);
    }
    // Residual branches scaled down so the stream does not grow with depth.
    matrix(`${p}.attn_output.weight`, nHeads * headDim, dim, 0.5 / Math.sqrt(nHeads * headDim));
    vector(`${p}.ffn_norm.weight`, dim, 0.1, 1);
    matrix(`${p}.ffn_gate.weight`, dim, ffnDim);
    matrix(`${p}.ffn_up.weight`, dim, ffnDim);
    matrix(`${p}.ffn_down.weight`, ffnDim, dim, 0.5 / Math.sqrt(ffnDim));
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
    [`${a}.rope.freq_base`]: gguf.f32(spec.ropeBase ?? 10000),
    [`${a}.attention.layer_norm_rms_epsilon`]: gguf.f32(1e-6),
    ...vocabMeta,
  };
  return writeGGUF({ metadata, tensors });
}
