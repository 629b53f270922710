// A 1B-parameter Q4_K_M model (Llama-3.2-1B's shape and llama-quantize's per-tensor types) fits a
// browser's default WebGPU limits: matrices larger than one storage binding (128 MiB) are split by
// rows, and no buffer exceeds 256 MiB. Checked from the header alone, as the load does.
import { describe, expect, it } from 'vitest';
import { GGMLType, tensorByteLength } from '../../src/gguf/quant.ts';
import type { GGUFFile, GGUFTensorInfo } from '../../src/gguf/reader.ts';
import { packedLayout, weightRowsPerPart } from '../../src/gpu/weights.ts';
import { configFromGGUF } from '../../src/model/config.ts';
import { checkFootprint, modelFootprint } from '../../src/model/footprint.ts';
import { q4KMTensorType } from '../../src/model/quant-recipe.ts';

/** WebGPU's default limits (what a device gets when it asks for nothing more). */
const DEFAULT_LIMITS = { maxStorageBufferBindingSize: 128 * 2 ** 20, maxBufferSize: 256 * 2 ** 20 };

/** A header-only GGUFFile of Llama-3.2-1B's shape with Q4_K_M types (no tensor data is needed to plan). */
function llama32_1bHeader(): GGUFFile {
  const dim = 2048;
  const ffn = 8192;
  const vocab = 128256;
  const layers = 16;
  const kvDim = 8 * 64;
  const shapes: [string, number[]][] = [
    ['token_embd.weight', [dim, vocab]],
    ['output_norm.weight', [dim]],
    ['rope_freqs.weight', [32]],
  ];
  for (let l = 0; l < layers; l++) {
    shapes.push(
      [`blk.${l}.attn_norm.weight`, [dim]],
      [`blk.${l}.attn_q.weight`, [dim, dim]],
      [`blk.${l}.attn_k.weight`, [dim, kvDim]],
      [`blk.${l}.attn_v.weight`, [dim, kvDim]],
      [`blk.${l}.attn_output.weight`, [dim, dim]],
      [`blk.${l}.ffn_norm.weight`, [dim]],
      [`blk.${l}.ffn_gate.weight`, [dim, ffn]],
      [`blk.${l}.ffn_up.weight`, [dim, ffn]],
      [`blk.${l}.ffn_down.weight`, [ffn, dim]],
    );
  }
  let offset = 0;
  const tensors: GGUFTensorInfo[] = shapes.map(([name, shape]) => {
    const type = shape.length === 2 ? q4KMTensorType(name, shape[0], { nLayers: layers, hasOutput: false }) : GGMLType.F32;
    const nElements = shape.reduce((a, b) => a * b, 1);
    const t = { name, shape, type, offset, byteLength: tensorByteLength(type, nElements), nElements };
    offset += Math.ceil(t.byteLength / 32) * 32;
    return t;
  });
  const metadata = {
    'general.architecture': 'llama',
    'general.name': 'Llama-3.2-1B-shaped Q4_K_M',
    'llama.block_count': layers,
    'llama.embedding_length': dim,
    'llama.feed_forward_length': ffn,
    'llama.attention.head_count': 32,
    'llama.attention.head_count_kv': 8,
    'llama.attention.layer_norm_rms_epsilon': 1e-5,
    'llama.rope.freq_base': 500000,
    'llama.rope.dimension_count': 64,
    'llama.context_length': 131072,
  };
  return { version: 3, metadata, metadataTypes: {}, tensors, tensorIndex: new Map(tensors.map((t) => [t.name, t])), alignment: 32, dataOffset: 0, fileSize: offset };
}

describe('a 1B-parameter Q4_K_M model within default WebGPU limits', () => {
  it('plans every buffer under the default binding and buffer sizes, the tied Q6_K embedding split in parts', () => {
    const file = llama32_1bHeader();
    const config = configFromGGUF(file);
    const binding = Math.min(DEFAULT_LIMITS.maxStorageBufferBindingSize, DEFAULT_LIMITS.maxBufferSize);
    const plan = { maxContext: 4096, kvBudgetTokens: 8192, kvDtype: 'f16' as const };
    const fp = modelFootprint(file, config, plan, binding);
    expect(fp.rowTooLarge).toBeUndefined();
    expect(fp.largestActivation.bytes).toBeLessThanOrEqual(binding);
    expect(fp.kvLayerPoolBytes).toBeLessThanOrEqual(binding);
    expect(() => checkFootprint(config.name, fp, { maxBindingBytes: binding }, plan)).not.toThrow();
    // The embedding (tied output head) is Q6_K: 128256 rows of 2048 values, 215 MB, more than one binding.
    const embd = file.tensorIndex.get('token_embd.weight')!;
    expect(embd.type).toBe(GGMLType.Q6_K);
    const packed = packedLayout(GGMLType.Q6_K, 128256, 2048).words * 4;
    expect(packed).toBeGreaterThan(binding);
    const { rowsPerPart } = weightRowsPerPart(GGMLType.Q6_K, 128256, 2048, binding);
    expect(Math.ceil(128256 / rowsPerPart)).toBe(2);
    // Weights as packed stay within a few bytes per part of the file's (no dequantizing at load).
    const fileWeights = file.tensors.filter((t) => t.shape.length === 2).reduce((s, t) => s + t.byteLength, 0);
    expect(fp.weightBytes).toBeGreaterThanOrEqual(fileWeights);
    expect(fp.weightBytes).toBeLessThan(fileWeights * 1.01 + 2 ** 20);
    expect(fp.totalBytes).toBeLessThan(1.5 * 2 ** 30);
  });
});
