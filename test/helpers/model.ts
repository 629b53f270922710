// Loading models onto the test GPU (KV in f32 unless asked, so comparisons with the f64 CPU
// reference keep tight tolerances), and decoding token pieces without the tokenizer (so the
// forward-pass tests do not depend on it).
import { FileSource } from '../../src/gguf/node-file-source.ts';
import { MemorySource, type ByteSource } from '../../src/gguf/source.ts';
import { parseGGUF, type GGUFFile } from '../../src/gguf/reader.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { configFromGGUF } from '../../src/model/config.ts';
import { GpuModel } from '../../src/model/gpu-model.ts';

export async function openSource(pathOrBytes: string | Uint8Array): Promise<ByteSource> {
  return typeof pathOrBytes === 'string' ? FileSource.open(pathOrBytes) : new MemorySource(pathOrBytes);
}

export async function loadGpuModel(
  ctx: GpuContext,
  pathOrBytes: string | Uint8Array,
  maxContext = 256,
  maxBatch?: number,
  kvDtype: 'f32' | 'f16' = 'f32',
): Promise<{ model: GpuModel; file: GGUFFile; source: ByteSource }> {
  const source = await openSource(pathOrBytes);
  const file = await parseGGUF(source);
  const model = await GpuModel.load(ctx, source, file, configFromGGUF(file), { maxContext, maxBatch, kvDtype });
  return { model, file, source };
}

export const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0 };

/** Greedy continuation of `prompt` on the GPU: n generated ids. */
export async function gpuGreedy(model: GpuModel, prompt: number[], n: number, speculate = false): Promise<number[]> {
  await model.beginSequence();
  const out = [await model.prefill(prompt, GREEDY)];
  while (out.length < n) out.push(await model.decode(GREEDY, speculate && out.length + 1 < n));
  return out;
}

/** SentencePiece pieces to text: U+2581 is a space, <0xXX> a byte. */
export function spmPiecesToText(file: GGUFFile, ids: number[]): string {
  const pieces = file.metadata['tokenizer.ggml.tokens'] as string[];
  const bytes: number[] = [];
  for (const id of ids) {
    const p = pieces[id];
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(p);
    if (m) bytes.push(parseInt(m[1], 16));
    else bytes.push(...new TextEncoder().encode(p.replace(/\u2581/g, ' ')));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}
