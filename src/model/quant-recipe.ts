// The per-tensor types llama.cpp's llama-quantize chooses for a "Q4_K_M" file (no importance
// matrix, no overrides), so that synthetic models can have the same mix of block formats as the
// files people download. A Q4_K_M file is mostly Q4_K with Q6_K where errors hurt most: the output
// head (or the token embedding that stands in for it), and attn_v / ffn_down in the first and last
// eighths of the layers and every third layer between. A matrix whose rows are not whole 256-value
// super-blocks falls back per tensor: Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0 (and to F16 when even
// those blocks do not fit). Qwen2.5-0.5B (dim 896) is the common case: most of its matrices fall back.
import { GGMLType, ggmlTypeInfo } from '../gguf/quant.ts';

export interface RecipeContext {
  /** Layers in the model (for attn_v / ffn_down's "more bits" rule). */
  nLayers: number;
  /** Whether the file has its own output.weight (if not, token_embd is quantized as the output head). */
  hasOutput: boolean;
}

/** llama.cpp's use_more_bits: the first and last eighth of the layers and every third layer between. */
export function useMoreBits(layer: number, nLayers: number): boolean {
  const eighth = Math.floor(nLayers / 8);
  return layer < eighth || layer >= Math.floor((7 * nLayers) / 8) || (layer - eighth) % 3 === 2;
}

const FALLBACK: Partial<Record<GGMLType, GGMLType>> = {
  [GGMLType.Q4_K]: GGMLType.Q5_0,
  [GGMLType.Q5_K]: GGMLType.Q5_1,
  [GGMLType.Q6_K]: GGMLType.Q8_0,
};

/**
 * The type llama-quantize gives the 2-D tensor `name` ([cols, rows] in ggml order) of a Q4_K_M file.
 * Layer numbers come from the name (`blk.{L}.`); attn_v and ffn_down count one per layer, as
 * llama.cpp's counters do for a dense model.
 */
export function q4KMTensorType(name: string, cols: number, ctx: RecipeContext): GGMLType {
  const layer = /^blk\.(\d+)\./.exec(name);
  const L = layer ? Number(layer[1]) : -1;
  let type: GGMLType = GGMLType.Q4_K;
  if (name === 'output.weight' || (!ctx.hasOutput && name === 'token_embd.weight')) {
    // The output head: Q6_K, or Q8_0 outright when its rows are not whole super-blocks.
    return cols % 256 === 0 ? GGMLType.Q6_K : GGMLType.Q8_0;
  }
  if (name.endsWith('attn_v.weight') && useMoreBits(L, ctx.nLayers)) type = GGMLType.Q6_K;
  else if (name.endsWith('ffn_down.weight') && useMoreBits(L, ctx.nLayers)) type = GGMLType.Q6_K;
  else if (name.endsWith('attn_qkv.weight')) type = GGMLType.Q5_K;
  if (cols % ggmlTypeInfo(type).blockSize !== 0) {
    const fallback = FALLBACK[type] ?? GGMLType.F16;
    type = cols % ggmlTypeInfo(fallback).blockSize === 0 ? fallback : GGMLType.F16;
  }
  return type;
}
