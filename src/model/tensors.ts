// The one table of GGUF tensor names per architecture: which are required, which optional, their
// expected shapes (ggml `ne` order: [cols, rows]) and the types the kernels accept.
import { UnsupportedModelError } from '../errors.ts';
import { GGMLType, ggmlTypeName } from '../gguf/quant.ts';
import type { GGUFFile, GGUFTensorInfo } from '../gguf/reader.ts';
import { WEIGHT_TYPES } from '../gpu/weights.ts';
import type { ModelConfig } from './config.ts';

type Kind = 'matrix' | 'vector';

interface TensorSpec {
  /** GGUF name; `{L}` is the layer index. */
  name: string;
  kind: Kind;
  required: boolean | ((c: ModelConfig) => boolean);
  shape: (c: ModelConfig) => number[];
}

const MATRIX_TYPES: readonly number[] = WEIGHT_TYPES;
const VECTOR_TYPES: readonly number[] = [GGMLType.F32, GGMLType.F16, GGMLType.BF16];

const GLOBAL = {
  tokenEmbd: { name: 'token_embd.weight', kind: 'matrix', required: true, shape: (c) => [c.dim, c.vocabSize] },
  outputNorm: { name: 'output_norm.weight', kind: 'vector', required: true, shape: (c) => [c.dim] },
  output: { name: 'output.weight', kind: 'matrix', required: false, shape: (c) => [c.dim, c.vocabSize] },
  ropeFreqs: { name: 'rope_freqs.weight', kind: 'vector', required: false, shape: (c) => [c.ropeDim / 2] },
} satisfies Record<string, TensorSpec>;

const LAYER = {
  attnNorm: { name: 'blk.{L}.attn_norm.weight', kind: 'vector', required: true, shape: (c) => [c.dim] },
  wq: { name: 'blk.{L}.attn_q.weight', kind: 'matrix', required: true, shape: (c) => [c.dim, c.nHeads * c.headDim] },
  wk: { name: 'blk.{L}.attn_k.weight', kind: 'matrix', required: true, shape: (c) => [c.dim, c.nKvHeads * c.headDim] },
  wv: { name: 'blk.{L}.attn_v.weight', kind: 'matrix', required: true, shape: (c) => [c.dim, c.nKvHeads * c.headDim] },
  bq: { name: 'blk.{L}.attn_q.bias', kind: 'vector', required: (c) => c.architecture === 'qwen2', shape: (c) => [c.nHeads * c.headDim] },
  bk: { name: 'blk.{L}.attn_k.bias', kind: 'vector', required: (c) => c.architecture === 'qwen2', shape: (c) => [c.nKvHeads * c.headDim] },
  bv: { name: 'blk.{L}.attn_v.bias', kind: 'vector', required: (c) => c.architecture === 'qwen2', shape: (c) => [c.nKvHeads * c.headDim] },
  wo: { name: 'blk.{L}.attn_output.weight', kind: 'matrix', required: true, shape: (c) => [c.nHeads * c.headDim, c.dim] },
  ffnNorm: { name: 'blk.{L}.ffn_norm.weight', kind: 'vector', required: true, shape: (c) => [c.dim] },
  wGate: { name: 'blk.{L}.ffn_gate.weight', kind: 'matrix', required: true, shape: (c) => [c.dim, c.ffnDim] },
  wUp: { name: 'blk.{L}.ffn_up.weight', kind: 'matrix', required: true, shape: (c) => [c.dim, c.ffnDim] },
  wDown: { name: 'blk.{L}.ffn_down.weight', kind: 'matrix', required: true, shape: (c) => [c.ffnDim, c.dim] },
} satisfies Record<string, TensorSpec>;

type Resolved<T extends Record<string, TensorSpec>> = {
  [K in keyof T]: T[K]['required'] extends true ? GGUFTensorInfo : GGUFTensorInfo | undefined;
};

export type ResolvedTensors = Resolved<typeof GLOBAL> & { layers: Resolved<typeof LAYER>[] };

function lookup(file: GGUFFile, spec: TensorSpec, c: ModelConfig, layer?: number): GGUFTensorInfo | undefined {
  const name = layer === undefined ? spec.name : spec.name.replace('{L}', String(layer));
  const t = file.tensorIndex.get(name);
  const required = typeof spec.required === 'function' ? spec.required(c) : spec.required;
  if (!t) {
    if (required) throw new UnsupportedModelError('missing-tensor', `the model has no tensor '${name}', which ${c.architecture} needs`, { tensor: name });
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

/** Finds and checks every tensor the forward pass needs; names the first one missing or wrong. */
export function resolveTensors(file: GGUFFile, config: ModelConfig): ResolvedTensors {
  const global = resolveGroup(file, GLOBAL, config);
  const layers: Resolved<typeof LAYER>[] = [];
  for (let l = 0; l < config.nLayers; l++) layers.push(resolveGroup(file, LAYER, config, l));
  return { ...global, layers };
}

/** The resolved tensors by kind, as the table declares them: matrices go to the matrix kernels' packed layouts, vectors become f32. */
export function tensorsByKind(t: ResolvedTensors): { matrices: GGUFTensorInfo[]; vectors: GGUFTensorInfo[] } {
  const out = { matrices: [] as GGUFTensorInfo[], vectors: [] as GGUFTensorInfo[] };
  const take = (specs: Record<string, TensorSpec>, group: Record<string, GGUFTensorInfo | undefined>) => {
    for (const [key, spec] of Object.entries(specs)) {
      const tensor = group[key];
      if (tensor) (spec.kind === 'matrix' ? out.matrices : out.vectors).push(tensor);
    }
  };
  take(GLOBAL, t as unknown as Record<string, GGUFTensorInfo | undefined>);
  for (const layer of t.layers) take(LAYER, layer as unknown as Record<string, GGUFTensorInfo | undefined>);
  return out;
}
