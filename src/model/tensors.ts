// The one table of GGUF tensor names (llama.cpp's), with, per family of architectures, which
// tensors its forward program reads: required or optional, their expected shapes (ggml `ne` order:
// [cols, rows]) and the types the kernels accept. Loading follows the table, as llama.cpp's model
// loader follows each architecture's tensor list: fused matrices are split by rows into the roles
// the programs use, and RoPE factor tensors stay on the host for the cos/sin tables.
import { UnsupportedModelError } from '../errors.ts';
import { GGMLType, dequantize, ggmlTypeName, tensorByteLength } from '../gguf/quant.ts';
import type { GGUFFile, GGUFTensorInfo } from '../gguf/reader.ts';
import { WEIGHT_TYPES } from '../gpu/weights.ts';
import type { Family, ModelConfig } from './config.ts';

type Kind = 'matrix' | 'vector';

interface TensorSpec {
  /** GGUF name; `{L}` is the layer index. */
  name: string;
  /** Matrices go to the matrix kernels; vectors (norms, biases) become f32; host vectors stay on the CPU. */
  kind: Kind;
  required: boolean | ((c: ModelConfig) => boolean);
  shape: (c: ModelConfig) => number[];
  /** Read to the host as f32 (RoPE factors: they shape the cos/sin tables, no kernel reads them). */
  host?: true;
  /** A fused matrix: its rows, in order, are these roles' matrices of these row counts. */
  split?: (c: ModelConfig) => [role: string, rows: number][];
  /** What may stand in for the tensor, for the missing-tensor message (the separate Q matrix: a fused attn_qkv). */
  alternative?: string;
}

const MATRIX_TYPES: readonly number[] = WEIGHT_TYPES;
const VECTOR_TYPES: readonly number[] = [GGMLType.F32, GGMLType.F16, GGMLType.BF16];

const qDim = (c: ModelConfig) => c.nHeads * c.headDim;
const kvDim = (c: ModelConfig) => c.nKvHeads * c.headDim;

// ---- global tensors ----
const tokenEmbd = { name: 'token_embd.weight', kind: 'matrix', required: true, shape: (c) => [c.dim, c.vocabSize] } satisfies TensorSpec;
const outputNorm = { name: 'output_norm.weight', kind: 'vector', required: true, shape: (c) => [c.dim] } satisfies TensorSpec;
/** Absent: the head is tied to token_embd. */
const output = { name: 'output.weight', kind: 'matrix', required: false, shape: (c) => [c.dim, c.vocabSize] } satisfies TensorSpec;
/** Llama 3 RoPE scaling: divides the frequencies (llama.cpp's freq_factors). */
const ropeFreqs = { name: 'rope_freqs.weight', kind: 'vector', host: true, required: false, shape: (c) => [c.ropeDim / 2] } satisfies TensorSpec;
/** Phi-3 LongRoPE: divide the frequencies, long ones for a runtime context above rope.scaling.original_context_length. */
const ropeFactorsLong = { name: 'rope_factors_long.weight', kind: 'vector', host: true, required: false, shape: (c) => [c.ropeDim / 2] } satisfies TensorSpec;
const ropeFactorsShort = { name: 'rope_factors_short.weight', kind: 'vector', host: true, required: (c) => c.hasLongRopeFactors, shape: (c) => [c.ropeDim / 2] } satisfies TensorSpec;

// ---- per-layer tensors ----
const attnNorm = { name: 'blk.{L}.attn_norm.weight', kind: 'vector', required: true, shape: (c) => [c.dim] } satisfies TensorSpec;
const fusedQkvName = 'blk.{L}.attn_qkv.weight';
const wq = { name: 'blk.{L}.attn_q.weight', kind: 'matrix', required: (c) => !c.fusedQkv, shape: (c) => [c.dim, qDim(c)], alternative: fusedQkvName } satisfies TensorSpec;
const wk = { name: 'blk.{L}.attn_k.weight', kind: 'matrix', required: (c) => !c.fusedQkv, shape: (c) => [c.dim, kvDim(c)], alternative: fusedQkvName } satisfies TensorSpec;
const wv = { name: 'blk.{L}.attn_v.weight', kind: 'matrix', required: (c) => !c.fusedQkv, shape: (c) => [c.dim, kvDim(c)], alternative: fusedQkvName } satisfies TensorSpec;
/** Q, K and V fused (phi3, and any file llama.cpp's create_tensor_qkv reads): Q rows, then K, then V. */
const wqkv = {
  name: fusedQkvName,
  kind: 'matrix',
  required: (c) => c.fusedQkv,
  shape: (c) => [c.dim, qDim(c) + 2 * kvDim(c)],
  split: (c) => [
    ['wq', qDim(c)],
    ['wk', kvDim(c)],
    ['wv', kvDim(c)],
  ],
} satisfies TensorSpec;
const bq = { name: 'blk.{L}.attn_q.bias', kind: 'vector', required: (c) => c.architecture === 'qwen2', shape: (c) => [qDim(c)] } satisfies TensorSpec;
const bk = { name: 'blk.{L}.attn_k.bias', kind: 'vector', required: (c) => c.architecture === 'qwen2', shape: (c) => [kvDim(c)] } satisfies TensorSpec;
const bv = { name: 'blk.{L}.attn_v.bias', kind: 'vector', required: (c) => c.architecture === 'qwen2', shape: (c) => [kvDim(c)] } satisfies TensorSpec;
/** Per-head RMSNorm weights of Q and K, applied before RoPE (qwen3, gemma3). */
const qNorm = { name: 'blk.{L}.attn_q_norm.weight', kind: 'vector', required: (c) => c.qkNorm, shape: (c) => [c.headDim] } satisfies TensorSpec;
const kNorm = { name: 'blk.{L}.attn_k_norm.weight', kind: 'vector', required: (c) => c.qkNorm, shape: (c) => [c.headDim] } satisfies TensorSpec;
const wo = { name: 'blk.{L}.attn_output.weight', kind: 'matrix', required: true, shape: (c) => [qDim(c), c.dim] } satisfies TensorSpec;
/** gemma3: RMSNorm of the attention output before it is added to the residual stream. */
const attnPostNorm = { name: 'blk.{L}.post_attention_norm.weight', kind: 'vector', required: true, shape: (c) => [c.dim] } satisfies TensorSpec;
const ffnNorm = { name: 'blk.{L}.ffn_norm.weight', kind: 'vector', required: true, shape: (c) => [c.dim] } satisfies TensorSpec;
const wGate = { name: 'blk.{L}.ffn_gate.weight', kind: 'matrix', required: true, shape: (c) => [c.dim, c.ffnDim] } satisfies TensorSpec;
const wUp = { name: 'blk.{L}.ffn_up.weight', kind: 'matrix', required: true, shape: (c) => [c.dim, c.ffnDim] } satisfies TensorSpec;
/** phi3: gate and up fused in ffn_up, the gate's rows first (llama.cpp's swiglu takes silu of the first half). */
const wGateUp = {
  name: 'blk.{L}.ffn_up.weight',
  kind: 'matrix',
  required: true,
  shape: (c) => [c.dim, 2 * c.ffnDim],
  split: (c) => [
    ['wGate', c.ffnDim],
    ['wUp', c.ffnDim],
  ],
} satisfies TensorSpec;
const wDown = { name: 'blk.{L}.ffn_down.weight', kind: 'matrix', required: true, shape: (c) => [c.ffnDim, c.dim] } satisfies TensorSpec;
/** gemma3: RMSNorm of the feed-forward output before it is added to the residual stream. */
const ffnPostNorm = { name: 'blk.{L}.post_ffw_norm.weight', kind: 'vector', required: true, shape: (c) => [c.dim] } satisfies TensorSpec;

/** What each family's forward program reads (src/model/families/). */
export const FAMILY_TENSORS = {
  // llama (and SmolLM2, Mistral), qwen2 (Q/K/V biases), qwen3 (per-head Q/K norms).
  llama: {
    global: { tokenEmbd, outputNorm, output, ropeFreqs },
    layer: { attnNorm, wq, wk, wv, wqkv, bq, bk, bv, qNorm, kNorm, wo, ffnNorm, wGate, wUp, wDown },
  },
  gemma3: {
    global: { tokenEmbd, outputNorm, output },
    layer: { attnNorm, wq, wk, wv, wqkv, qNorm, kNorm, wo, attnPostNorm, ffnNorm, wGate, wUp, wDown, ffnPostNorm },
  },
  phi3: {
    global: { tokenEmbd, outputNorm, output, ropeFactorsLong, ropeFactorsShort },
    layer: { attnNorm, wq, wk, wv, wqkv, wo, ffnNorm, wGateUp, wDown },
  },
} satisfies Record<Family, { global: Record<string, TensorSpec>; layer: Record<string, TensorSpec> }>;

type Resolved<T extends Record<string, TensorSpec>> = {
  [K in keyof T]: T[K]['required'] extends true ? GGUFTensorInfo : GGUFTensorInfo | undefined;
};

type FamilyTable<F extends Family> = (typeof FAMILY_TENSORS)[F];

/** One family's tensors, found and checked: the globals, and per layer its own. */
export type FamilyTensors<F extends Family> = { family: F } & Resolved<FamilyTable<F>['global']> & { layers: Resolved<FamilyTable<F>['layer']>[] };

export type ResolvedTensors = { [F in Family]: FamilyTensors<F> }[Family];

function lookup(file: GGUFFile, spec: TensorSpec, c: ModelConfig, layer?: number): GGUFTensorInfo | undefined {
  const name = layer === undefined ? spec.name : spec.name.replace('{L}', String(layer));
  const t = file.tensorIndex.get(name);
  const required = typeof spec.required === 'function' ? spec.required(c) : spec.required;
  if (!t) {
    if (required) {
      const or = spec.alternative ? ` (or a fused '${spec.alternative.replace('{L}', String(layer))}')` : '';
      throw new UnsupportedModelError('missing-tensor', `the model has no tensor '${name}'${or}, which ${c.architecture} needs`, { tensor: name });
    }
    return undefined;
  }
  const want = spec.shape(c);
  const same = t.shape.length === want.length && t.shape.every((d, i) => d === want[i]);
  if (!same) {
    throw new UnsupportedModelError('bad-shape', `tensor '${name}' has shape [${t.shape}] but the config implies [${want}]`, {
      tensor: name,
      shape: t.shape.join('x'),
      expected: want.join('x'),
    });
  }
  const types = spec.kind === 'matrix' ? MATRIX_TYPES : VECTOR_TYPES;
  if (!types.includes(t.type)) {
    throw new UnsupportedModelError(
      'unsupported-tensor-type',
      `tensor '${name}' is ${ggmlTypeName(t.type)}; chunklm runs ${spec.kind === 'matrix' ? `${WEIGHT_TYPES.map(ggmlTypeName).join(', ')} matrices` : 'F32, F16 and BF16 norms and biases'}`,
      { tensor: name, type: ggmlTypeName(t.type) },
    );
  }
  return t;
}

function resolveGroup<T extends Record<string, TensorSpec>>(file: GGUFFile, specs: T, c: ModelConfig, layer?: number): Resolved<T> {
  const out: Record<string, GGUFTensorInfo | undefined> = {};
  for (const [key, spec] of Object.entries(specs)) out[key] = lookup(file, spec, c, layer);
  return out as Resolved<T>;
}

/** Finds and checks every tensor the config's family reads; names the first one missing or wrong. */
export function resolveTensors(file: GGUFFile, config: ModelConfig): ResolvedTensors {
  const table: { global: Record<string, TensorSpec>; layer: Record<string, TensorSpec> } = FAMILY_TENSORS[config.family];
  const global = resolveGroup(file, table.global, config);
  const layers: Record<string, GGUFTensorInfo | undefined>[] = [];
  for (let l = 0; l < config.nLayers; l++) layers.push(resolveGroup(file, table.layer, config, l));
  return { family: config.family, ...global, layers } as ResolvedTensors;
}

/** The resolved tensors of one family, or a typed error naming the family the model belongs to. */
export function familyTensors<F extends Family>(t: ResolvedTensors, family: F): FamilyTensors<F> {
  if (t.family !== family) throw new UnsupportedModelError('bad-family', `the model's tensors are ${t.family}'s, not ${family}'s`, { family: t.family });
  return t as FamilyTensors<F>;
}

/** Each resolved tensor with its spec, in table order: the globals, then layer by layer. */
function entries(t: ResolvedTensors): { key: string; spec: TensorSpec; tensor: GGUFTensorInfo; layer?: number }[] {
  const table: { global: Record<string, TensorSpec>; layer: Record<string, TensorSpec> } = FAMILY_TENSORS[t.family];
  const out: { key: string; spec: TensorSpec; tensor: GGUFTensorInfo; layer?: number }[] = [];
  const group = t as unknown as Record<string, GGUFTensorInfo | undefined>;
  for (const [key, spec] of Object.entries(table.global)) {
    const tensor = group[key];
    if (tensor) out.push({ key, spec, tensor });
  }
  t.layers.forEach((layer, l) => {
    const g = layer as Record<string, GGUFTensorInfo | undefined>;
    for (const [key, spec] of Object.entries(table.layer)) {
      const tensor = g[key];
      if (tensor) out.push({ key, spec, tensor, layer: l });
    }
  });
  return out;
}

/** The resolved tensors by kind, as the table declares them: matrices go to the matrix kernels' packed layouts, vectors become f32. */
export function tensorsByKind(t: ResolvedTensors): { matrices: GGUFTensorInfo[]; vectors: GGUFTensorInfo[] } {
  const out = { matrices: [] as GGUFTensorInfo[], vectors: [] as GGUFTensorInfo[] };
  for (const { spec, tensor } of entries(t)) (spec.kind === 'matrix' ? out.matrices : out.vectors).push(tensor);
  return out;
}

/** Every resolved tensor, for progress totals. */
export function allTensors(t: ResolvedTensors): GGUFTensorInfo[] {
  return entries(t).map((e) => e.tensor);
}

/** How a runtime holds a loaded matrix (M) and vector (V). */
export interface TensorLoaders<M, V> {
  /** `bytes` hold `rows` × `cols` of `type` (a whole tensor, or the rows of one role of a fused one). */
  matrix(label: string, type: GGMLType, bytes: Uint8Array, rows: number, cols: number): M;
  vector(label: string, type: GGMLType, bytes: Uint8Array, n: number): V;
}

/** A loaded group: its roles (fused matrices already split into theirs), host vectors as f32. */
export type LoadedGroup<M, V> = Record<string, M | V | Float32Array | undefined>;

/**
 * Reads every resolved tensor through `read` (in table order, so progress follows the file's
 * layers) and hands it to the loaders: matrices and vectors as they are, fused matrices split by
 * rows into their roles (a row is whole blocks for every type, so byte ranges split them), host
 * vectors dequantized to f32.
 */
export async function loadTensors<M, V>(
  t: ResolvedTensors,
  config: ModelConfig,
  read: (tensor: GGUFTensorInfo) => Promise<Uint8Array>,
  loaders: TensorLoaders<M, V>,
): Promise<{ global: LoadedGroup<M, V>; layers: LoadedGroup<M, V>[] }> {
  const global: LoadedGroup<M, V> = {};
  const layers: LoadedGroup<M, V>[] = t.layers.map(() => ({}));
  for (const { key, spec, tensor, layer } of entries(t)) {
    const group = layer === undefined ? global : layers[layer];
    const bytes = await read(tensor);
    if (spec.host) group[key] = dequantize(tensor.type, bytes, tensor.nElements);
    else if (spec.kind === 'vector') group[key] = loaders.vector(tensor.name, tensor.type, bytes, tensor.nElements);
    else if (spec.split) {
      const cols = tensor.shape[0];
      const rowBytes = tensorByteLength(tensor.type, cols);
      let row = 0;
      for (const [role, rows] of spec.split(config)) {
        group[role] = loaders.matrix(`${tensor.name}[${role}]`, tensor.type, bytes.subarray(row * rowBytes, (row + rows) * rowBytes), rows, cols);
        row += rows;
      }
    } else group[key] = loaders.matrix(tensor.name, tensor.type, bytes, tensor.shape[1] ?? 1, tensor.shape[0]);
  }
  return { global, layers };
}

/**
 * The frequency factors RoPE divides by, as llama.cpp's get_rope_factors picks them: rope_freqs
 * (Llama 3) when present, else LongRoPE's long factors for a runtime context above the original one
 * and its short factors otherwise; undefined when the model has none.
 */
export function ropeFactors(global: LoadedGroup<unknown, unknown>, config: ModelConfig, context: number): Float32Array | undefined {
  const pick = (k: string) => global[k] as Float32Array | undefined;
  return pick('ropeFreqs') ?? (context > config.ropeOrigContext ? pick('ropeFactorsLong') : pick('ropeFactorsShort'));
}
