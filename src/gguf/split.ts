// Split GGUF models (llama.cpp's gguf-split): one model in N files named
// `<prefix>-00001-of-0000N.gguf`. Every part is a complete GGUF file whose metadata holds
// `split.no` (u16, 0-based), `split.count` (u16) and `split.tensors.count` (i32, the model's total);
// the first part also holds all the model's metadata, and the tensors are spread over the parts
// (the first may hold none). The parts are presented as one byte source (their concatenation) and
// one tensor index whose offsets point into it, so every reader of a GGUFFile works unchanged.
// Browser-safe: no node modules here.
import { GGUFError, throwIfAborted } from '../errors.ts';
import { parseGGUF, type GGUFFile, type GGUFTensorInfo, type ParseOptions } from './reader.ts';
import { checkRange, MemorySource, type ByteSource } from './source.ts';
import { gguf, metadataFromFile, writeGGUF, type GGUFWriteInput, type GGUFWriteTensor } from './writer.ts';

/** The metadata keys gguf-split writes into every part. */
export const SPLIT_KEYS = { no: 'split.no', count: 'split.count', tensors: 'split.tensors.count' } as const;

const SPLIT_NAME = /-(\d{5})-of-(\d{5})\.gguf$/i;

/** Where a name or URL sits in a split model: `index` is 0-based, `count` the number of parts. */
export interface SplitName {
  index: number;
  count: number;
}

/** Reads `-00002-of-00003.gguf` at the end of a file name or URL path; undefined for other names. */
export function parseSplitName(nameOrUrl: string): SplitName | undefined {
  const m = SPLIT_NAME.exec(pathOf(nameOrUrl));
  if (!m) return undefined;
  const index = Number(m[1]) - 1;
  const count = Number(m[2]);
  if (count < 1 || index < 0 || index >= count) return undefined;
  return { index, count };
}

/**
 * The names (or URLs) of every part of the split model `nameOrUrl` belongs to, in order; a name
 * that is not a split part comes back alone. A URL keeps its query and fragment.
 */
export function splitPartNames(nameOrUrl: string): string[] {
  const split = parseSplitName(nameOrUrl);
  if (!split) return [nameOrUrl];
  const path = pathOf(nameOrUrl);
  const rest = nameOrUrl.slice(path.length);
  const stem = path.replace(SPLIT_NAME, '');
  const ext = /\.gguf$/i.exec(path)?.[0] ?? '.gguf';
  const pad = (n: number) => String(n).padStart(5, '0');
  return Array.from({ length: split.count }, (_, i) => `${stem}-${pad(i + 1)}-of-${pad(split.count)}${ext}${rest}`);
}

/** The part of a URL before its query or fragment (a plain name is returned whole). */
function pathOf(nameOrUrl: string): string {
  const end = nameOrUrl.search(/[?#]/);
  return end < 0 ? nameOrUrl : nameOrUrl.slice(0, end);
}

/** A part's split keys; undefined for a file that is not a split part (or a split of one). */
export function splitInfo(file: Pick<GGUFFile, 'metadata'>): { no: number; count: number; tensors: number } | undefined {
  const count = file.metadata[SPLIT_KEYS.count];
  if (count === undefined) return undefined;
  const no = file.metadata[SPLIT_KEYS.no];
  const tensors = file.metadata[SPLIT_KEYS.tensors];
  for (const [key, v] of [
    [SPLIT_KEYS.count, count],
    [SPLIT_KEYS.no, no],
    [SPLIT_KEYS.tensors, tensors],
  ] as const) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      throw new GGUFError('bad-split', `split metadata ${key} must be a non-negative integer, got ${String(v)}`, { key });
    }
  }
  return { no: no as number, count: count as number, tensors: tensors as number };
}

/** Several sources read as one: part i starts where part i-1 ends. */
export class ConcatSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  /** Offset of each part's first byte. */
  readonly starts: readonly number[];

  constructor(
    readonly parts: readonly ByteSource[],
    name?: string,
  ) {
    if (parts.length === 0) throw new GGUFError('bad-split', 'a concatenated source needs at least one part');
    const starts: number[] = [];
    let size = 0;
    for (const p of parts) {
      starts.push(size);
      size += p.size;
    }
    this.starts = starts;
    this.size = size;
    this.name = name ?? (parts.length === 1 ? parts[0].name : `${parts[0].name} (+${parts.length - 1} parts)`);
  }

  async close(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.close?.()));
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    checkRange(this, offset, length);
    throwIfAborted(signal);
    const first = this.partAt(offset);
    const p = this.parts[first];
    const local = offset - this.starts[first];
    if (local + length <= p.size) return p.read(local, length, signal);
    // A range across parts (only the header reader's look-ahead does this): read each piece.
    const out = new Uint8Array(length);
    for (let done = 0, i = first; done < length; i++) {
      const from = offset + done - this.starts[i];
      const n = Math.min(length - done, this.parts[i].size - from);
      if (n <= 0) continue;
      out.set(await this.parts[i].read(from, n, signal), done);
      done += n;
    }
    return out;
  }

  /** Index of the part holding byte `offset`: the last one starting at or before it (empty parts start where the next one does). */
  private partAt(offset: number): number {
    let lo = 0;
    let hi = this.parts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

/** A parsed model and the bytes its tensor offsets point into. */
export interface OpenedGGUF {
  /** The model's metadata (the first part's) and every tensor, offsets into `source`. */
  readonly file: GGUFFile;
  /** The single file, or the parts concatenated. */
  readonly source: ByteSource;
  /** The files, in split order. */
  readonly parts: readonly ByteSource[];
}

export function isOpenedGGUF(x: unknown): x is OpenedGGUF {
  return typeof x === 'object' && x !== null && 'file' in x && 'source' in x && 'parts' in x;
}

/**
 * Parses a model given as one file or as all the parts of a split model (in any order: they are
 * put in `split.no` order). A split part given without its siblings, a part missing, given twice,
 * or from another split, and tensor counts that do not add up are GGUFErrors.
 */
export async function openGGUF(input: ByteSource | readonly ByteSource[], options: ParseOptions = {}): Promise<OpenedGGUF> {
  const sources = Array.isArray(input) ? [...(input as readonly ByteSource[])] : [input as ByteSource];
  if (sources.length === 0) throw new GGUFError('bad-split', 'no model file was given');
  const files = await Promise.all(sources.map((s) => parseGGUF(s, options)));
  const infos = files.map((f, i) => ({ file: f, source: sources[i], split: splitInfo(f) }));
  if (infos.length === 1) {
    const [{ file, source, split }] = infos;
    if (split && split.count > 1) {
      throw new GGUFError(
        'split-incomplete',
        `${source.name} is part ${split.no + 1} of a model split in ${split.count} files; give all ${split.count} parts (a URL or name ending in -0000N-of-0000M.gguf finds them)`,
        { part: split.no + 1, count: split.count },
      );
    }
    return { file, source, parts: [source] };
  }

  const count = infos[0].split?.count;
  for (const { source, split } of infos) {
    if (!split) {
      throw new GGUFError('bad-split', `${source.name} is not a part of a split model (it has no ${SPLIT_KEYS.count}); give one file, or all parts of one split model`, {});
    }
    if (split.count !== count || split.tensors !== infos[0].split?.tensors) {
      throw new GGUFError(
        'split-mismatch',
        `${source.name} belongs to another split (${split.count} parts, ${split.tensors} tensors) than ${infos[0].source.name} (${count} parts, ${infos[0].split?.tensors} tensors)`,
        {},
      );
    }
  }
  if (count !== infos.length) {
    throw new GGUFError('split-incomplete', `the model is split in ${count} files but ${infos.length} were given`, { count: count ?? 0, given: infos.length });
  }
  const ordered = new Array<(typeof infos)[number]>(infos.length);
  for (const info of infos) {
    const no = (info.split as { no: number }).no;
    if (no >= infos.length || ordered[no]) {
      throw new GGUFError('split-mismatch', `part number ${no + 1} of ${count} appears twice or is out of range (${info.source.name})`, { part: no + 1 });
    }
    ordered[no] = info;
  }

  const parts = ordered.map((o) => o.source);
  const source = new ConcatSource(parts, parts[0].name);
  const tensors: GGUFTensorInfo[] = [];
  const tensorIndex = new Map<string, GGUFTensorInfo>();
  ordered.forEach((o, i) => {
    const base = source.starts[i];
    for (const t of o.file.tensors) {
      if (tensorIndex.has(t.name)) {
        throw new GGUFError('duplicate-tensor', `tensor ${t.name} appears in more than one part (again in ${o.source.name})`, { tensor: t.name });
      }
      const moved = { ...t, offset: t.offset + base };
      tensors.push(moved);
      tensorIndex.set(t.name, moved);
    }
  });
  const expected = (ordered[0].split as { tensors: number }).tensors;
  if (tensors.length !== expected) {
    throw new GGUFError('split-mismatch', `the ${count} parts hold ${tensors.length} tensors but ${SPLIT_KEYS.tensors} says ${expected}`, {
      found: tensors.length,
      expected,
    });
  }
  const first = ordered[0].file;
  return {
    file: { ...first, tensors, tensorIndex, fileSize: source.size },
    source,
    parts,
  };
}

/**
 * Writes a model as `parts` split files the way gguf-split does: all metadata and the split keys in
 * the first file, only the split keys in the others, tensors in index order spread so that each
 * part holds about the same bytes (and at least one tensor).
 */
export function writeSplitGGUF(input: GGUFWriteInput, parts: number): Uint8Array<ArrayBuffer>[] {
  const { tensors } = input;
  if (!Number.isInteger(parts) || parts < 1 || parts > tensors.length || parts > 0xffff) {
    throw new GGUFError('bad-split', `cannot split ${tensors.length} tensors into ${parts} parts (each part needs a tensor)`, { parts });
  }
  const groups: GGUFWriteTensor[][] = [];
  const total = tensors.reduce((s, t) => s + t.data.byteLength, 0);
  let acc = 0;
  let i = 0;
  for (let p = 0; p < parts; p++) {
    const group: GGUFWriteTensor[] = [];
    const target = ((p + 1) * total) / parts;
    // Leave at least one tensor for each later part.
    while (i < tensors.length - (parts - 1 - p) && (group.length === 0 || acc + tensors[i].data.byteLength / 2 <= target || p === parts - 1)) {
      acc += tensors[i].data.byteLength;
      group.push(tensors[i++]);
    }
    groups.push(group);
  }
  return groups.map((group, p) => {
    const split = {
      [SPLIT_KEYS.no]: gguf.u16(p),
      [SPLIT_KEYS.count]: gguf.u16(parts),
      [SPLIT_KEYS.tensors]: gguf.i32(tensors.length),
    };
    const alignment = input.metadata['general.alignment'];
    const metadata = p === 0 ? { ...input.metadata, ...split } : { ...split, ...(alignment ? { 'general.alignment': alignment } : {}) };
    return writeGGUF({ version: input.version, alignment: input.alignment, metadata, tensors: group });
  });
}

/** Splits the bytes of a single-file model into `parts` files (see writeSplitGGUF). */
export async function splitGGUFBytes(bytes: Uint8Array, parts: number): Promise<Uint8Array<ArrayBuffer>[]> {
  const file = await parseGGUF(new MemorySource(bytes));
  const tensors = file.tensors.map((t) => ({ name: t.name, shape: t.shape, type: t.type, data: bytes.subarray(t.offset, t.offset + t.byteLength) }));
  return writeSplitGGUF({ version: file.version === 2 ? 2 : 3, alignment: file.alignment, metadata: metadataFromFile(file), tensors }, parts);
}
