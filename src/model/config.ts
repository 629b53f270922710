// Model hyper-parameters read from GGUF metadata, for the architectures chunklm runs.
import { UnsupportedModelError } from '../errors.ts';
import { metaArray, metaF32, metaString, metaU32 } from '../gguf/meta.ts';
import { GGMLType, ggmlTypeName } from '../gguf/quant.ts';
import type { GGUFFile } from '../gguf/reader.ts';

export const SUPPORTED_ARCHITECTURES = ['llama', 'qwen2', 'qwen3', 'gemma3', 'phi3'] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];

/** Forward programs (src/model/families/): each runs the architectures that share its graph. */
export type Family = 'llama' | 'gemma3' | 'phi3';

/**
 * What an architecture is beyond what its keys say (llama.cpp's per-architecture code): its family,
 * how RoPE pairs dimensions, whether Q and K are RMS-normalized per head before RoPE, and whether it
 * reads `attention.sliding_window` (llama.cpp ignores the key for phi3, and llama never has it).
 */
const ARCHITECTURE_TRAITS: Record<Architecture, { family: Family; ropeMode: 'norm' | 'neox'; qkNorm: boolean; slidingWindow: boolean }> = {
  llama: { family: 'llama', ropeMode: 'norm', qkNorm: false, slidingWindow: false },
  qwen2: { family: 'llama', ropeMode: 'neox', qkNorm: false, slidingWindow: false },
  qwen3: { family: 'llama', ropeMode: 'neox', qkNorm: true, slidingWindow: false },
  gemma3: { family: 'gemma3', ropeMode: 'neox', qkNorm: true, slidingWindow: true },
  phi3: { family: 'phi3', ropeMode: 'neox', qkNorm: false, slidingWindow: false },
};

/** llama.cpp's sliding-window period for gemma3 when the file has no `attention.sliding_window_pattern`. */
const GEMMA3_SWA_PERIOD = 6;
/** RoPE base of gemma3's local layers when the file has no `rope.freq_base_swa` (llama.cpp's value). */
const GEMMA3_ROPE_BASE_LOCAL = 10000;

export interface ModelConfig {
  architecture: Architecture;
  family: Family;
  name: string;
  nLayers: number;
  dim: number;
  nHeads: number;
  nKvHeads: number;
  /** From `attention.key_length`: may differ from dim / nHeads (qwen3, gemma3). */
  headDim: number;
  ffnDim: number;
  vocabSize: number;
  /** Context the model was built for (the runtime may use less). */
  contextLength: number;
  /** RoPE base of the global layers (every layer when there is no sliding window). */
  ropeBase: number;
  /** 'norm' rotates adjacent pairs (llama: GGUF Q/K rows are permuted for it); 'neox' pairs i and i+ropeDim/2 (qwen2, qwen3, gemma3, phi3). */
  ropeMode: 'norm' | 'neox';
  /** Leading dimensions of each head that RoPE rotates. */
  ropeDim: number;
  /** Linear RoPE scaling of the global layers: angles are multiplied by it (1 / `rope.scaling.factor`; 1 without scaling). */
  ropeFreqScale: number;
  /** `rope.scaling.attn_factor`: cos and sin are multiplied by it, as ggml's rope does (Phi-3 LongRoPE's attention factor); 1 by default. */
  ropeAttnFactor: number;
  /** `rope.scaling.original_context_length` (default contextLength): a runtime context above it selects `rope_factors_long` over `rope_factors_short`. */
  ropeOrigContext: number;
  rmsEps: number;
  /** The output head reuses token_embd. */
  tiedOutput: boolean;
  /** Q, K and V projections carry biases (qwen2). */
  qkvBias: boolean;
  /** Q and K are RMS-normalized per head (`attn_q_norm`, `attn_k_norm`, [headDim]) before RoPE. */
  qkNorm: boolean;
  /** Q, K and V come as one fused `attn_qkv` matrix (Q rows, then K, then V), split at load. */
  fusedQkv: boolean;
  /** `rope_freqs.weight` (Llama 3 scaling) divides the RoPE frequencies. */
  hasRopeFreqs: boolean;
  /** `rope_factors_long/short.weight` (Phi-3 LongRoPE): one of them divides the frequencies, chosen by the runtime context. */
  hasLongRopeFactors: boolean;
  /** Positions a local layer's query sees: keys at q - slidingWindow < p <= q (0: no local layers). */
  slidingWindow: number;
  /** Per layer: true where the layer is local (sliding window, RoPE base ropeBaseLocal, no RoPE scaling). */
  localLayers: boolean[];
  /** RoPE base of the local layers. */
  ropeBaseLocal: number;
  /** Multiplies q·k before the softmax. */
  attentionScale: number;
  /** Multiplies the token embeddings (gemma3: sqrt(dim)). */
  embeddingScale: number;
  /** logits = c·tanh(logits / c) when c > 0 (gemma3 without a sliding window, as llama.cpp's graph does). */
  finalLogitSoftcap: number;
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
  const traits = ARCHITECTURE_TRAITS[a];
  const embd = file.tensorIndex.get('token_embd.weight');
  if (!embd) throw new UnsupportedModelError('missing-tensor', "the model has no tensor 'token_embd.weight'", { tensor: 'token_embd.weight' });
  const bad = (what: string): never => {
    throw new UnsupportedModelError('bad-config', `the model's ${what}`, {});
  };
  const dim = metaU32(m, `${a}.embedding_length`);
  const nLayers = metaU32(m, `${a}.block_count`);
  const nHeads = metaU32(m, `${a}.attention.head_count`);
  const nKvHeads = metaU32(m, `${a}.attention.head_count_kv`, nHeads);
  const headDim = metaU32(m, `${a}.attention.key_length`, nHeads > 0 ? Math.floor(dim / nHeads) : 0);
  const valueDim = metaU32(m, `${a}.attention.value_length`, headDim);
  const vocabSize = embd.shape[1] ?? 0;
  const contextLength = metaU32(m, `${a}.context_length`, 2048);
  if (nLayers < 1 || nLayers > 1024) bad(`block_count ${nLayers} is out of range`);

  // RoPE scaling, as llama.cpp reads it for every architecture: a type (default linear) and a factor.
  const scalingType = metaString(m, `${a}.rope.scaling.type`, 'linear');
  const scaleFactor = metaF32(m, `${a}.rope.scaling.factor`, metaF32(m, `${a}.rope.scale_linear`, 0));
  if (!['none', 'linear', 'longrope'].includes(scalingType)) {
    throw new UnsupportedModelError('unsupported-rope-scaling', `RoPE scaling '${scalingType}' is not supported; chunklm runs none, linear, llama3 (rope_freqs) and longrope`, {
      scaling: scalingType,
    });
  }
  const ropeFreqScale = scalingType === 'none' || scaleFactor === 0 ? 1 : 1 / scaleFactor;

  // Sliding window (gemma3): local layers by llama.cpp's pattern, every period-th layer global.
  const slidingWindow = traits.slidingWindow ? metaU32(m, `${a}.attention.sliding_window`, 0) : 0;
  const localLayers = new Array<boolean>(nLayers).fill(false);
  if (slidingWindow > 0) {
    const key = `${a}.attention.sliding_window_pattern`;
    const pattern = Array.isArray(m[key]) || ArrayBuffer.isView(m[key]) ? metaArray(m, key) : metaU32(m, key, GEMMA3_SWA_PERIOD);
    if (typeof pattern === 'number') {
      for (let l = 0; l < nLayers; l++) localLayers[l] = pattern === 0 || l % pattern < pattern - 1;
    } else {
      if (pattern.length !== nLayers) bad(`${key} has ${pattern.length} entries for ${nLayers} layers`);
      for (let l = 0; l < nLayers; l++) localLayers[l] = Boolean(pattern[l]);
    }
  }
  const finalLogitSoftcap = a === 'gemma3' && slidingWindow === 0 ? metaF32(m, `${a}.final_logit_softcapping`, 0) : 0;

  const config: ModelConfig = {
    architecture: a,
    family: traits.family,
    name: metaString(m, 'general.name', a),
    nLayers,
    dim,
    nHeads,
    nKvHeads,
    headDim,
    ffnDim: metaU32(m, `${a}.feed_forward_length`),
    vocabSize,
    contextLength,
    ropeBase: metaF32(m, `${a}.rope.freq_base`, 10000),
    ropeMode: traits.ropeMode,
    ropeDim: metaU32(m, `${a}.rope.dimension_count`, headDim),
    ropeFreqScale,
    ropeAttnFactor: metaF32(m, `${a}.rope.scaling.attn_factor`, 1),
    ropeOrigContext: metaU32(m, `${a}.rope.scaling.original_context_length`, contextLength),
    rmsEps: metaF32(m, `${a}.attention.layer_norm_rms_epsilon`, 1e-5),
    tiedOutput: !file.tensorIndex.has('output.weight'),
    qkvBias: file.tensorIndex.has('blk.0.attn_q.bias'),
    qkNorm: traits.qkNorm,
    fusedQkv: file.tensorIndex.has('blk.0.attn_qkv.weight'),
    hasRopeFreqs: file.tensorIndex.has('rope_freqs.weight'),
    hasLongRopeFactors: file.tensorIndex.has('rope_factors_long.weight'),
    slidingWindow,
    localLayers,
    ropeBaseLocal: slidingWindow > 0 ? metaF32(m, `${a}.rope.freq_base_swa`, GEMMA3_ROPE_BASE_LOCAL) : metaF32(m, `${a}.rope.freq_base`, 10000),
    // gemma3: llama.cpp takes Gemma's query_pre_attn_scalar from the model size (the 62-layer 27B uses dim / nHeads).
    attentionScale: a === 'gemma3' && nLayers === 62 && nHeads > 0 ? 1 / Math.sqrt(dim / nHeads) : 1 / Math.sqrt(headDim),
    embeddingScale: a === 'gemma3' ? Math.fround(Math.sqrt(dim)) : 1,
    finalLogitSoftcap,
    weightType: dominantType(file),
  };
  if (dim < 1 || nHeads < 1 || nKvHeads < 1 || headDim < 1) bad(`dimensions are not positive (dim ${dim}, heads ${nHeads}/${nKvHeads}, head ${headDim})`);
  if (nHeads % nKvHeads !== 0) bad(`${nHeads} query heads cannot be grouped over ${nKvHeads} KV heads`);
  if (valueDim !== headDim) bad(`value head size ${valueDim} differs from the key head size ${headDim}, which is not supported`);
  if (config.ropeDim % 2 !== 0 || config.ropeDim > headDim) bad(`RoPE dimension ${config.ropeDim} must be even and at most the head size ${headDim}`);
  if (a === 'qwen3' && config.ropeDim !== headDim) bad(`RoPE dimension ${config.ropeDim} must equal the head size ${headDim} for qwen3`);
  if (!(config.rmsEps > 0)) bad(`RMS norm epsilon ${config.rmsEps} is not positive`);
  if (!(config.ropeBase > 0) || !(config.ropeBaseLocal > 0)) bad(`RoPE base ${config.ropeBase} (local ${config.ropeBaseLocal}) is not positive`);
  if (!(ropeFreqScale > 0) || !(config.ropeAttnFactor > 0)) bad(`RoPE scaling factor ${scaleFactor} or attention factor ${config.ropeAttnFactor} is not positive`);
  if (!(config.finalLogitSoftcap >= 0)) bad(`final logit softcapping ${config.finalLogitSoftcap} is negative`);
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
  const local = c.localLayers.filter(Boolean).length;
  const window = local > 0 ? ` window ${c.slidingWindow} on ${local}/${c.nLayers} layers` : '';
  return `${c.architecture} ${c.nLayers}L dim ${c.dim} heads ${c.nHeads}/${c.nKvHeads}×${c.headDim} ffn ${c.ffnDim} vocab ${c.vocabSize}${window} ${ggmlTypeName(c.weightType)}`;
}
