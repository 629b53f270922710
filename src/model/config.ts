// Model hyper-parameters read from GGUF metadata, for the architectures chunklm runs.
import { UnsupportedModelError } from '../errors.ts';
import { metaF32, metaString, metaU32 } from '../gguf/meta.ts';
import { GGMLType, ggmlTypeName } from '../gguf/quant.ts';
import type { GGUFFile } from '../gguf/reader.ts';

export const SUPPORTED_ARCHITECTURES = ['llama', 'qwen2'] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];

export interface ModelConfig {
  architecture: Architecture;
  name: string;
  nLayers: number;
  dim: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  ffnDim: number;
  vocabSize: number;
  /** Context the model was built for (the runtime may use less). */
  contextLength: number;
  ropeBase: number;
  /** 'norm' rotates adjacent pairs (llama: GGUF Q/K rows are permuted for it); 'neox' pairs i and i+ropeDim/2 (qwen2). */
  ropeMode: 'norm' | 'neox';
  /** Leading dimensions of each head that RoPE rotates. */
  ropeDim: number;
  rmsEps: number;
  /** The output head reuses token_embd. */
  tiedOutput: boolean;
  /** Q, K and V projections carry biases (qwen2). */
  qkvBias: boolean;
  hasRopeFreqs: boolean;
  /** Type of most matrix weights, by bytes (the one benchmarks and the UI report). */
  weightType: GGMLType;
}

export function configFromGGUF(file: GGUFFile): ModelConfig {
  const m = file.metadata;
  const arch = metaString(m, 'general.architecture');
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new UnsupportedModelError(
      'unsupported-architecture',
      `architecture '${arch}' is not supported; chunklm runs ${SUPPORTED_ARCHITECTURES.join(', ')}`,
      { architecture: arch },
    );
  }
  const a = arch as Architecture;
  const embd = file.tensorIndex.get('token_embd.weight');
  if (!embd) throw new UnsupportedModelError('missing-tensor', "the model has no tensor 'token_embd.weight'", { tensor: 'token_embd.weight' });
  const dim = metaU32(m, `${a}.embedding_length`);
  const nHeads = metaU32(m, `${a}.attention.head_count`);
  const nKvHeads = metaU32(m, `${a}.attention.head_count_kv`, nHeads);
  const headDim = metaU32(m, `${a}.attention.key_length`, nHeads > 0 ? Math.floor(dim / nHeads) : 0);
  const valueDim = metaU32(m, `${a}.attention.value_length`, headDim);
  const vocabSize = embd.shape[1] ?? 0;
  const config: ModelConfig = {
    architecture: a,
    name: metaString(m, 'general.name', a),
    nLayers: metaU32(m, `${a}.block_count`),
    dim,
    nHeads,
    nKvHeads,
    headDim,
    ffnDim: metaU32(m, `${a}.feed_forward_length`),
    vocabSize,
    contextLength: metaU32(m, `${a}.context_length`, 2048),
    ropeBase: metaF32(m, `${a}.rope.freq_base`, 10000),
    ropeMode: a === 'qwen2' ? 'neox' : 'norm',
    ropeDim: metaU32(m, `${a}.rope.dimension_count`, headDim),
    rmsEps: metaF32(m, `${a}.attention.layer_norm_rms_epsilon`, 1e-5),
    tiedOutput: !file.tensorIndex.has('output.weight'),
    qkvBias: file.tensorIndex.has('blk.0.attn_q.bias'),
    hasRopeFreqs: file.tensorIndex.has('rope_freqs.weight'),
    weightType: dominantType(file),
  };
  const bad = (what: string) => {
    throw new UnsupportedModelError('bad-config', `the model's ${what}`, {});
  };
  if (config.nLayers < 1 || config.nLayers > 1024) bad(`block_count ${config.nLayers} is out of range`);
  if (dim < 1 || nHeads < 1 || nKvHeads < 1 || headDim < 1) bad(`dimensions are not positive (dim ${dim}, heads ${nHeads}/${nKvHeads}, head ${headDim})`);
  if (nHeads % nKvHeads !== 0) bad(`${nHeads} query heads cannot be grouped over ${nKvHeads} KV heads`);
  if (valueDim !== headDim) bad(`value head size ${valueDim} differs from the key head size ${headDim}, which is not supported`);
  if (config.ropeDim % 2 !== 0 || config.ropeDim > headDim) bad(`RoPE dimension ${config.ropeDim} must be even and at most the head size ${headDim}`);
  if (!(config.rmsEps > 0)) bad(`RMS norm epsilon ${config.rmsEps} is not positive`);
  if (!(config.ropeBase > 0)) bad(`RoPE base ${config.ropeBase} is not positive`);
  if (vocabSize < 1 || embd.shape[0] !== dim) bad(`token_embd.weight has shape [${embd.shape}] but the embedding length is ${dim}`);
  return config;
}

/** The most common type among the 2-D weights, by bytes. */
function dominantType(file: GGUFFile): GGMLType {
  const bytes = new Map<GGMLType, number>();
  for (const t of file.tensors) {
    if (t.shape.length >= 2) bytes.set(t.type, (bytes.get(t.type) ?? 0) + t.byteLength);
  }
  let best: GGMLType = GGMLType.F32;
  let most = -1;
  for (const [type, b] of bytes) {
    if (b > most) {
      best = type;
      most = b;
    }
  }
  return best;
}

export function describeConfig(c: ModelConfig): string {
  return `${c.architecture} ${c.nLayers}L dim ${c.dim} heads ${c.nHeads}/${c.nKvHeads}×${c.headDim} ffn ${c.ffnDim} vocab ${c.vocabSize} ${ggmlTypeName(c.weightType)}`;
}
