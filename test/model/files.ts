// Variants of GGUF models for the model-layer tests: parsed files with metadata or tensor-index
// entries changed in memory (for config and table checks), and files re-written with tensors
// added, replaced or dropped (for checks that must go through the real parser).
import { parseGGUF, readTensorBytes, type GGUFFile, type GGUFTensorInfo, type GGUFValue } from '../../src/gguf/reader.ts';
import { MemorySource, type ByteSource } from '../../src/gguf/source.ts';
import { metadataFromFile, writeGGUF, type GGUFTypedValue, type GGUFWriteTensor } from '../../src/gguf/writer.ts';

export async function openBytes(bytes: Uint8Array): Promise<{ source: ByteSource; file: GGUFFile }> {
  const source = new MemorySource(bytes);
  return { source, file: await parseGGUF(source) };
}

/** A copy of `file` whose metadata has `patch` applied; an undefined value deletes the key. */
export function withMetadata(file: GGUFFile, patch: Record<string, GGUFValue | undefined>): GGUFFile {
  const metadata: Record<string, GGUFValue> = { ...file.metadata };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete metadata[k];
    else metadata[k] = v;
  }
  return { ...file, metadata };
}

/** A copy of `file` whose tensor index is mapped by `edit`; returning undefined drops the tensor. */
export function withTensors(file: GGUFFile, edit: (t: GGUFTensorInfo) => GGUFTensorInfo | undefined): GGUFFile {
  const tensors = file.tensors.map(edit).filter((t): t is GGUFTensorInfo => t !== undefined);
  return { ...file, tensors, tensorIndex: new Map(tensors.map((t) => [t.name, t])) };
}

export interface Rewrite {
  /** Metadata keys set (typed values) in the copy. */
  metadata?: Record<string, GGUFTypedValue>;
  /** Tensors added, or replacing the ones of the same name. */
  tensors?: GGUFWriteTensor[];
  /** Names of tensors left out. */
  drop?: string[];
}

/** Writes a new GGUF holding `file`'s metadata and tensors with the changes of `rewrite` applied. */
export async function rewriteGGUF(source: ByteSource, file: GGUFFile, rewrite: Rewrite): Promise<Uint8Array> {
  const replaced = new Map((rewrite.tensors ?? []).map((t) => [t.name, t]));
  const drop = new Set(rewrite.drop ?? []);
  const tensors: GGUFWriteTensor[] = [];
  for (const t of file.tensors) {
    if (drop.has(t.name) || replaced.has(t.name)) continue;
    tensors.push({ name: t.name, shape: t.shape, type: t.type, data: await readTensorBytes(source, t) });
  }
  tensors.push(...replaced.values());
  return writeGGUF({ metadata: { ...metadataFromFile(file), ...rewrite.metadata }, tensors });
}
