// writeGGUF → parseGGUF for every metadata value type, nested arrays, both versions and
// custom alignments; faithful re-writing of parsed files; writer input validation.
import { describe, expect, it } from 'vitest';
import { AbortedError, GGUFError } from '../../src/errors.ts';
import {
  GGMLType,
  GGUFValueType,
  MemorySource,
  ggmlTypeName,
  gguf,
  metaBool,
  metaF32,
  metaI32,
  metaInt,
  metaNumberArray,
  metaString,
  metaStringArray,
  metaU32,
  metadataFromFile,
  parseGGUF,
  quantize,
  readTensorBytes,
  writeGGUF,
  type GGUFTypedValue,
  type GGUFWriteTensor,
} from '../../src/gguf/index.ts';
import { randomF32 } from '../helpers/gpu.ts';

function everyValueType(): Record<string, GGUFTypedValue> {
  return {
    'u8.max': gguf.u8(255),
    'i8.min': gguf.i8(-128),
    'u16.max': gguf.u16(65535),
    'i16.min': gguf.i16(-32768),
    'u32.max': gguf.u32(0xffff_ffff),
    'i32.min': gguf.i32(-0x8000_0000),
    'f32.exact': gguf.f32(1.5),
    'f32.rounded': gguf.f32(0.1),
    'f32.nan': gguf.f32(NaN),
    'bool.true': gguf.bool(true),
    'bool.false': gguf.bool(false),
    'string.empty': gguf.string(''),
    'string.unicode': gguf.string('héllo ▁ 世界 🦙'),
    'string.bom': gguf.string('\uFEFF starts with a byte-order mark, and is longer than 32 bytes'),
    'u64.max': gguf.u64(0xffff_ffff_ffff_ffffn),
    'u64.number': gguf.u64(12),
    'i64.min': gguf.i64(-(1n << 63n)),
    'f64.pi': gguf.f64(Math.PI),
    'arr.u8': gguf.array('u8', [0, 1, 255]),
    'arr.i8': gguf.array(GGUFValueType.INT8, new Int8Array([-128, 0, 127])),
    'arr.u16': gguf.array('u16', [1, 65535]),
    'arr.i16': gguf.array('i16', [-32768, 32767]),
    'arr.u32': gguf.array('u32', new Uint32Array([0, 0xffff_ffff])),
    'arr.i32': gguf.array('i32', [-1, 2, -3]),
    'arr.f32': gguf.array('f32', new Float32Array([0.25, -1e-5, 3e38])),
    'arr.f32.plain': gguf.array('f32', [0.1, 2]),
    'arr.bool': gguf.array('bool', [true, false, true]),
    'arr.string': gguf.array('string', ['a', '', '▁the', '<0x0A>', '🦙', '\uFEFFbom', 'a-long-token-beyond-the-ascii-fast-path-\uFEFF-é']),
    'arr.u64': gguf.array('u64', [0n, 1n << 63n]),
    'arr.i64': gguf.array('i64', new BigInt64Array([-5n, 5n])),
    'arr.f64': gguf.array('f64', [Math.E, -0]),
    'arr.empty.u32': gguf.array('u32', []),
    'arr.empty.string': gguf.array('string', []),
    'arr.empty.bool': gguf.array('bool', []),
    'arr.nested': gguf.array('array', [
      gguf.array('u32', [1, 2, 3]),
      gguf.array('string', ['x', 'y']),
      gguf.array('string', []),
      gguf.array('array', [gguf.array('f32', [1.5]), gguf.array('array', [])]),
    ]),
  };
}

function tensors(): GGUFWriteTensor[] {
  const a = randomF32(64 * 3, 1);
  const b = randomF32(32 * 4, 2);
  return [
    { name: 'a.f32', shape: [64, 3], type: GGMLType.F32, data: quantize(GGMLType.F32, a) },
    { name: 'b.q8', shape: [32, 4], type: GGMLType.Q8_0, data: quantize(GGMLType.Q8_0, b) },
    { name: 'c.q4', shape: [32, 4], type: GGMLType.Q4_0, data: quantize(GGMLType.Q4_0, b) },
    { name: 'd.f16', shape: [5], type: GGMLType.F16, data: quantize(GGMLType.F16, new Float32Array([1, 2, 3, 4, 5])) },
    { name: 'e.4d', shape: [2, 3, 4, 5], type: GGMLType.I8, data: new Uint8Array(120).map((_, i) => i) },
  ];
}

describe('writeGGUF → parseGGUF', () => {
  it.each([2, 3] as const)('round-trips every value type and nested arrays (v%i)', async (version) => {
    const bytes = writeGGUF({ version, metadata: everyValueType(), tensors: [] });
    const f = await parseGGUF(new MemorySource(bytes));
    const m = f.metadata;
    expect(f.version).toBe(version);
    expect(f.tensors).toEqual([]);
    expect(m['u8.max']).toBe(255);
    expect(m['i8.min']).toBe(-128);
    expect(m['u16.max']).toBe(65535);
    expect(m['i16.min']).toBe(-32768);
    expect(m['u32.max']).toBe(0xffff_ffff);
    expect(m['i32.min']).toBe(-0x8000_0000);
    expect(m['f32.exact']).toBe(1.5);
    expect(m['f32.rounded']).toBe(Math.fround(0.1));
    expect(Number.isNaN(m['f32.nan'])).toBe(true);
    expect(m['bool.true']).toBe(true);
    expect(m['bool.false']).toBe(false);
    expect(m['string.empty']).toBe('');
    expect(m['string.unicode']).toBe('héllo ▁ 世界 🦙');
    expect(m['string.bom']).toBe('\uFEFF starts with a byte-order mark, and is longer than 32 bytes');
    expect(m['u64.max']).toBe(0xffff_ffff_ffff_ffffn);
    expect(m['u64.number']).toBe(12n);
    expect(m['i64.min']).toBe(-(1n << 63n));
    expect(m['f64.pi']).toBe(Math.PI);
    expect(m['arr.u8']).toEqual(new Uint8Array([0, 1, 255]));
    expect(m['arr.i8']).toEqual(new Int8Array([-128, 0, 127]));
    expect(m['arr.u16']).toEqual(new Uint16Array([1, 65535]));
    expect(m['arr.i16']).toEqual(new Int16Array([-32768, 32767]));
    expect(m['arr.u32']).toEqual(new Uint32Array([0, 0xffff_ffff]));
    expect(m['arr.i32']).toEqual(new Int32Array([-1, 2, -3]));
    expect(m['arr.f32']).toEqual(new Float32Array([0.25, -1e-5, 3e38]));
    expect(m['arr.f32.plain']).toEqual(new Float32Array([0.1, 2]));
    expect(m['arr.bool']).toEqual([true, false, true]);
    expect(m['arr.string']).toEqual(['a', '', '▁the', '<0x0A>', '🦙', '\uFEFFbom', 'a-long-token-beyond-the-ascii-fast-path-\uFEFF-é']);
    expect(m['arr.u64']).toEqual(new BigUint64Array([0n, 1n << 63n]));
    expect(m['arr.i64']).toEqual(new BigInt64Array([-5n, 5n]));
    expect(m['arr.f64']).toEqual(new Float64Array([Math.E, -0]));
    expect(m['arr.empty.u32']).toEqual(new Uint32Array(0));
    expect(m['arr.empty.string']).toEqual([]);
    expect(m['arr.nested']).toEqual([new Uint32Array([1, 2, 3]), ['x', 'y'], [], [new Float32Array([1.5]), []]]);
    expect(f.metadataTypes['u8.max']).toBe(GGUFValueType.UINT8);
    expect(f.metadataTypes['f64.pi']).toBe(GGUFValueType.FLOAT64);
    expect(f.metadataTypes['arr.nested']).toBe(GGUFValueType.ARRAY);
    expect(Object.keys(m)).toEqual(Object.keys(everyValueType())); // file order is kept
  });

  it('re-writes a parsed file byte for byte, empty nested arrays included', async () => {
    const original = writeGGUF({ metadata: everyValueType(), tensors: tensors() });
    const src = new MemorySource(original);
    const f = await parseGGUF(src);
    const copied = await Promise.all(
      f.tensors.map(async (t) => ({ name: t.name, shape: t.shape, type: t.type, data: await readTensorBytes(src, t) })),
    );
    const again = writeGGUF({ metadata: metadataFromFile(f), tensors: copied });
    expect(again.length).toBe(original.length);
    expect(Buffer.compare(again, original)).toBe(0);
  });

  it.each([1, 8, 32, 64, 4096])('lays tensors out at alignment %i', async (alignment) => {
    const ts = tensors();
    const bytes = writeGGUF({ alignment, metadata: { 'general.name': gguf.string('t') }, tensors: ts });
    const src = new MemorySource(bytes);
    const f = await parseGGUF(src);
    expect(f.alignment).toBe(alignment);
    expect(f.dataOffset % alignment).toBe(0);
    expect(f.metadata['general.alignment']).toBe(alignment === 32 ? undefined : alignment);
    expect(f.tensors.map((t) => t.name)).toEqual(ts.map((t) => t.name));
    for (const [i, t] of f.tensors.entries()) {
      expect((t.offset - f.dataOffset) % alignment).toBe(0);
      expect(t.shape).toEqual(ts[i].shape);
      expect(t.type).toBe(ts[i].type);
      expect(t.byteLength).toBe(ts[i].data.length);
      expect(t.nElements).toBe(ts[i].shape.reduce((a, b) => a * b, 1));
      expect(await readTensorBytes(src, t)).toEqual(ts[i].data);
      expect(f.tensorIndex.get(t.name)).toBe(t);
    }
  });

  it('typed getters read values and name the key on failure', async () => {
    const f = await parseGGUF(new MemorySource(writeGGUF({ metadata: everyValueType(), tensors: [] })));
    const m = f.metadata;
    expect(metaU32(m, 'u32.max')).toBe(0xffff_ffff);
    expect(metaU32(m, 'u8.max')).toBe(255);
    expect(metaI32(m, 'i32.min')).toBe(-0x8000_0000);
    expect(metaInt(m, 'u64.number')).toBe(12);
    expect(metaF32(m, 'f32.exact')).toBe(1.5);
    expect(metaF32(m, 'u8.max')).toBe(255);
    expect(metaBool(m, 'bool.true')).toBe(true);
    expect(metaString(m, 'string.unicode')).toBe('héllo ▁ 世界 🦙');
    expect(metaStringArray(m, 'arr.string')).toHaveLength(7);
    expect(metaNumberArray(m, 'arr.f32')).toBeInstanceOf(Float32Array);
    expect(metaU32(m, 'absent', 7)).toBe(7);
    expect(metaString(m, 'absent', undefined)).toBeUndefined();
    const fail = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(GGUFError);
        return [(err as GGUFError).code, (err as GGUFError).message];
      }
      return undefined;
    };
    const [code, message] = fail(() => metaU32(m, 'llama.block_count'))!;
    expect(code).toBe('missing-key');
    expect(message).toContain('llama.block_count');
    expect(fail(() => metaU32(m, 'i32.min'))![0]).toBe('bad-key-type');
    expect(fail(() => metaU32(m, 'u64.max'))![0]).toBe('bad-key-type');
    expect(fail(() => metaString(m, 'u8.max'))![1]).toContain('u8.max');
    expect(fail(() => metaStringArray(m, 'arr.u32'))![0]).toBe('bad-key-type');
    expect(fail(() => metaNumberArray(m, 'arr.u64'))![0]).toBe('bad-key-type');
    expect(fail(() => metaBool(m, 'string.empty'))![0]).toBe('bad-key-type');
  });

  it('honours an abort signal', async () => {
    const bytes = writeGGUF({ metadata: {}, tensors: tensors() });
    const ac = new AbortController();
    ac.abort();
    await expect(parseGGUF(new MemorySource(bytes), { signal: ac.signal })).rejects.toBeInstanceOf(AbortedError);
  });
});

describe('writer input validation', () => {
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(GGUFError);
      return (err as GGUFError).code;
    }
    return undefined;
  };

  it('rejects values outside their type', () => {
    expect(code(() => gguf.u8(256))).toBe('bad-value');
    expect(code(() => gguf.i8(-129))).toBe('bad-value');
    expect(code(() => gguf.u32(-1))).toBe('bad-value');
    expect(code(() => gguf.i32(1.5))).toBe('bad-value');
    expect(code(() => gguf.u64(-1n))).toBe('bad-value');
    expect(code(() => gguf.u64(2 ** 60))).toBe('bad-value'); // not a safe integer: pass a bigint
    expect(code(() => gguf.i64(1n << 63n))).toBe('bad-value');
    expect(code(() => gguf.array('u8', [1, 300]))).toBe('bad-value');
    expect(code(() => gguf.array('string', ['a', 1 as unknown as string]))).toBe('bad-value');
    expect(code(() => gguf.array('array', [gguf.u32(1) as never]))).toBe('bad-value');
    expect(code(() => gguf.array('f16' as never, []))).toBe('bad-value-type');
    expect(code(() => gguf.u32(3))).toBeUndefined();
  });

  it('rejects inconsistent tensors and layouts', () => {
    const t = tensors()[0];
    expect(code(() => writeGGUF({ metadata: {}, tensors: [{ ...t, data: t.data.subarray(4) }] }))).toBe('bad-shape');
    expect(code(() => writeGGUF({ metadata: {}, tensors: [t, t] }))).toBe('duplicate-tensor');
    expect(code(() => writeGGUF({ metadata: {}, tensors: [{ ...t, shape: [33], type: GGMLType.Q8_0, data: new Uint8Array(34) }] }))).toBe(
      'bad-shape',
    );
    expect(code(() => writeGGUF({ metadata: {}, tensors: [{ ...t, shape: [1, 1, 1, 1, 1], data: new Uint8Array(4) }] }))).toBe('bad-shape');
    expect(code(() => writeGGUF({ metadata: {}, tensors: [{ ...t, type: 99 as GGMLType }] }))).toBe('bad-type');
    expect(code(() => writeGGUF({ alignment: 3, metadata: {}, tensors: [] }))).toBe('bad-alignment');
    expect(code(() => writeGGUF({ alignment: 64, metadata: { 'general.alignment': gguf.u32(32) }, tensors: [] }))).toBe('bad-alignment');
    expect(code(() => writeGGUF({ version: 1 as 2, metadata: {}, tensors: [] }))).toBe('unsupported-version');
  });
});

describe('tensors of every block format', () => {
  // Bytes of one row: 64 values for the scalar and 32-blocks, 512 (two super-blocks) for K-quants.
  const formats: [GGMLType, number, number][] = [
    [GGMLType.F32, 64, 256],
    [GGMLType.F16, 64, 128],
    [GGMLType.BF16, 64, 128],
    [GGMLType.Q8_0, 64, 68],
    [GGMLType.Q4_0, 64, 36],
    [GGMLType.Q4_1, 64, 40],
    [GGMLType.Q5_0, 64, 44],
    [GGMLType.Q5_1, 64, 48],
    [GGMLType.Q4_K, 512, 288],
    [GGMLType.Q5_K, 512, 352],
    [GGMLType.Q6_K, 512, 420],
  ];

  it('writes, indexes and reads back a tensor of each, named as ggml names it', async () => {
    const written = formats.map(([type, cols]) => ({
      name: `w.${ggmlTypeName(type)}`,
      shape: [cols, 3],
      type,
      data: quantize(type, randomF32(cols * 3, type + 1)),
    }));
    const source = new MemorySource(writeGGUF({ metadata: {}, tensors: written }));
    const f = await parseGGUF(source);
    expect(f.tensors.map((t) => t.name)).toEqual(['w.F32', 'w.F16', 'w.BF16', 'w.Q8_0', 'w.Q4_0', 'w.Q4_1', 'w.Q5_0', 'w.Q5_1', 'w.Q4_K', 'w.Q5_K', 'w.Q6_K']);
    for (const [i, [type, cols, rowBytes]] of formats.entries()) {
      const info = f.tensorIndex.get(written[i].name)!;
      expect(info.type).toBe(type);
      expect(info.nElements).toBe(cols * 3);
      expect(info.byteLength).toBe(rowBytes * 3);
      expect(await readTensorBytes(source, info)).toEqual(written[i].data);
    }
  });

  it('refuses K-quant rows that are not whole super-blocks of 256, in the writer and the reader', async () => {
    const data = quantize(GGMLType.Q6_K, randomF32(512, 3));
    expect(() => writeGGUF({ metadata: {}, tensors: [{ name: 'k', shape: [128, 4], type: GGMLType.Q6_K, data }] })).toThrow(
      'tensor k: Q6_K rows are whole blocks of 256 values, so shape[0] (the row length) must be a multiple of 256; got 128',
    );
    expect(() => quantize(GGMLType.Q4_K, new Float32Array(384))).toThrow(
      'Q4_K encodes whole super-blocks of 256 values (a K-quant row must be a multiple of 256); got 384 values',
    );
    // A valid [256, 2] tensor whose shape is then rewritten to [128, 4]: same size, rows of half a super-block.
    const bytes = writeGGUF({ metadata: {}, tensors: [{ name: 'k', shape: [256, 2], type: GGMLType.Q6_K, data }] });
    const view = new DataView(bytes.buffer);
    const ne0 = bytes.findIndex((_, i) => bytes[i] === 0x6b && view.getUint32(i + 1, true) === 2) + 5; // 'k', nDims = 2, then ne0
    expect(view.getBigUint64(ne0, true)).toBe(256n);
    view.setBigUint64(ne0, 128n, true);
    view.setBigUint64(ne0 + 8, 4n, true);
    await expect(parseGGUF(new MemorySource(bytes))).rejects.toThrow(
      expect.objectContaining({ code: 'bad-shape', message: 'tensor k: Q6_K needs its first dimension to be a multiple of 256, got 128' }),
    );
  });
});
