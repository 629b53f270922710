import { describe, expect, it } from 'vitest';
import { GGMLType, ggmlTypeName } from '../../src/gguf/quant.ts';
import { parseGGUF } from '../../src/gguf/reader.ts';
import { MemorySource } from '../../src/gguf/source.ts';
import { q4KMTensorType, useMoreBits } from '../../src/model/quant-recipe.ts';
import { makeSyntheticModel } from '../../src/model/synthetic.ts';

const name = (t: GGMLType) => ggmlTypeName(t);

describe("llama.cpp's Q4_K_M recipe", () => {
  it('gives more bits to the first and last eighths of the layers and every third layer between', () => {
    const layers = Array.from({ length: 24 }, (_, l) => l).filter((l) => useMoreBits(l, 24));
    expect(layers).toEqual([0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23]);
    expect(Array.from({ length: 16 }, (_, l) => l).filter((l) => useMoreBits(l, 16))).toEqual([0, 1, 4, 7, 10, 13, 14, 15]);
  });

  it("Qwen2.5-0.5B's mix: rows of 896 values fall back to Q5_0 / Q8_0, ffn_down (4864) keeps K-quants", () => {
    const ctx = { nLayers: 24, hasOutput: false };
    // The tied embedding is the output head: Q6_K, which 896 cannot hold, so Q8_0.
    expect(name(q4KMTensorType('token_embd.weight', 896, ctx))).toBe('Q8_0');
    expect(name(q4KMTensorType('blk.3.attn_q.weight', 896, ctx))).toBe('Q5_0');
    expect(name(q4KMTensorType('blk.3.attn_k.weight', 896, ctx))).toBe('Q5_0');
    expect(name(q4KMTensorType('blk.0.attn_v.weight', 896, ctx))).toBe('Q8_0'); // Q6_K falls back
    expect(name(q4KMTensorType('blk.3.attn_v.weight', 896, ctx))).toBe('Q5_0'); // Q4_K falls back
    expect(name(q4KMTensorType('blk.3.attn_output.weight', 896, ctx))).toBe('Q5_0');
    expect(name(q4KMTensorType('blk.3.ffn_gate.weight', 896, ctx))).toBe('Q5_0');
    expect(name(q4KMTensorType('blk.0.ffn_down.weight', 4864, ctx))).toBe('Q6_K');
    expect(name(q4KMTensorType('blk.3.ffn_down.weight', 4864, ctx))).toBe('Q4_K');
    expect(name(q4KMTensorType('blk.5.ffn_down.weight', 4864, ctx))).toBe('Q6_K');
  });

  it('Llama-3.2-1B-shaped rows (2048, 8192) are all K-quants; an untied model keeps token_embd at Q4_K', () => {
    const ctx = { nLayers: 16, hasOutput: true };
    expect(name(q4KMTensorType('output.weight', 2048, ctx))).toBe('Q6_K');
    expect(name(q4KMTensorType('token_embd.weight', 2048, ctx))).toBe('Q4_K');
    expect(name(q4KMTensorType('blk.1.attn_v.weight', 2048, ctx))).toBe('Q6_K');
    expect(name(q4KMTensorType('blk.2.attn_v.weight', 2048, ctx))).toBe('Q4_K');
    expect(name(q4KMTensorType('blk.2.ffn_down.weight', 8192, ctx))).toBe('Q4_K');
    expect(name(q4KMTensorType('blk.2.attn_qkv.weight', 2048, ctx))).toBe('Q5_K');
    // A row of 48 values holds neither 256- nor 32-value blocks: F16.
    expect(name(q4KMTensorType('blk.2.attn_q.weight', 48, ctx))).toBe('F16');
  });

  it('synthetic models follow the recipe tensor by tensor', async () => {
    const bytes = makeSyntheticModel({ architecture: 'qwen2', nLayers: 2, dim: 384, nHeads: 6, nKvHeads: 2, headDim: 64, ffnDim: 512, vocabSize: 320, contextLength: 256, weightType: GGMLType.Q4_K, recipe: 'Q4_K_M', tiedOutput: true, seed: 3 });
    const file = await parseGGUF(new MemorySource(bytes));
    const types = Object.fromEntries(file.tensors.filter((t) => t.shape.length === 2).map((t) => [t.name, name(t.type)]));
    expect(types['token_embd.weight']).toBe('Q8_0');
    expect(types['blk.0.attn_q.weight']).toBe('Q5_0');
    expect(types['blk.0.attn_v.weight']).toBe('Q5_0');
    expect(types['blk.1.attn_v.weight']).toBe('Q8_0');
    expect(types['blk.0.ffn_down.weight']).toBe('Q4_K');
    expect(types['blk.1.ffn_down.weight']).toBe('Q6_K');
    for (const t of file.tensors.filter((t) => t.shape.length === 2)) expect(name(t.type)).toBe(name(q4KMTensorType(t.name, t.shape[0], { nLayers: 2, hasOutput: false })));
  });
});
