// Hostile and broken GGUF input: every case must fail fast with a GGUFError and the right code,
// never allocate from an unchecked count, never hang. Files are built byte by byte so that each
// one is wrong in exactly one place.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GGUFError } from '../../src/errors.ts';
import { GGMLType, MemorySource, gguf, parseGGUF, quantize, writeGGUF, type ByteSource } from '../../src/gguf/index.ts';
import { sharedFile } from '../helpers/shared.ts';

/** Little-endian byte builder that writes whatever it is told, valid or not. */
class Raw {
  private out: number[] = [];
  u8(v: number): this {
    this.out.push(v & 0xff);
    return this;
  }
  u32(v: number): this {
    for (let i = 0; i < 4; i++) this.out.push((v >>> (8 * i)) & 0xff);
    return this;
  }
  u64(v: number | bigint): this {
    let b = BigInt.asUintN(64, BigInt(v));
    for (let i = 0; i < 8; i++, b >>= 8n) this.out.push(Number(b & 0xffn));
    return this;
  }
  f32(v: number): this {
    const b = new Uint8Array(new Float32Array([v]).buffer);
    this.out.push(...b);
    return this;
  }
  /** A GGUF string; `len` overrides the stored length. */
  str(s: string, len?: number | bigint): this {
    const b = new TextEncoder().encode(s);
    this.u64(len ?? b.length);
    this.out.push(...b);
    return this;
  }
  zeros(n: number): this {
    for (let i = 0; i < n; i++) this.out.push(0);
    return this;
  }
  padTo(align: number): this {
    while (this.out.length % align) this.out.push(0);
    return this;
  }
  get length(): number {
    return this.out.length;
  }
  bytes(): Uint8Array {
    return new Uint8Array(this.out);
  }
}

const T_U32 = 4;
const T_F32 = 6;
const T_BOOL = 7;
const T_STRING = 8;
const T_ARRAY = 9;
const T_F64 = 12;

interface Spec {
  magic?: number;
  version?: number;
  nTensors?: number | bigint;
  nKv?: number | bigint;
  kv?: (r: Raw) => void;
  tensors?: (r: Raw) => void;
  align?: number;
  dataBytes?: number;
}

const kvString = (r: Raw, key: string, v: string) => r.str(key).u32(T_STRING).str(v);
const tensorInfo = (r: Raw, name: string, dims: (number | bigint)[], type: number, offset: number | bigint): Raw => {
  r.str(name).u32(dims.length);
  for (const d of dims) r.u64(d);
  return r.u32(type).u64(offset);
};

/** A valid file by default: 1 KV, two F32 [8] tensors at 0 and 32, 64 data bytes. */
function build(spec: Spec = {}): Uint8Array {
  const r = new Raw();
  r.u32(spec.magic ?? 0x46554747).u32(spec.version ?? 3);
  r.u64(spec.nTensors ?? 2).u64(spec.nKv ?? 1);
  (spec.kv ?? ((x) => kvString(x, 'general.architecture', 'llama')))(r);
  (spec.tensors ??
    ((x) => {
      tensorInfo(x, 'a', [8], GGMLType.F32, 0);
      tensorInfo(x, 'b', [8], GGMLType.F32, 32);
    }))(r);
  r.padTo(spec.align ?? 32);
  r.zeros(spec.dataBytes ?? 64);
  return r.bytes();
}

const BIG = 2n ** 60n;

const rawCases: [string, Uint8Array, string][] = [
  ['empty file', new Uint8Array(0), 'truncated'],
  ['three bytes', new TextEncoder().encode('GGU'), 'truncated'],
  ['magic GGUG', build({ magic: 0x47554747 }), 'bad-magic'],
  ['old ggjt magic', build({ magic: 0x67676a74 }), 'bad-magic'],
  ['byte-swapped magic', build({ magic: 0x47475546 }), 'bad-magic'],
  ['version 0', build({ version: 0 }), 'unsupported-version'],
  ['version 1', build({ version: 1 }), 'unsupported-version'],
  ['version 4', build({ version: 4 }), 'unsupported-version'],
  ['version 0xFFFFFFFF', build({ version: 0xffffffff }), 'unsupported-version'],
  ['big-endian version 3', build({ version: 0x03000000 }), 'unsupported-version'],
  ['header cut after the version', build().subarray(0, 12), 'truncated'],
  ['2^60 tensors', build({ nTensors: BIG }), 'bad-count'],
  ['2^64-1 tensors', build({ nTensors: -1n }), 'bad-count'],
  ['1000 tensors in a small file', build({ nTensors: 1000 }), 'bad-count'],
  ['2^60 key/values', build({ nKv: BIG }), 'bad-count'],
  ['2^40 key/values', build({ nKv: 2n ** 40n }), 'bad-count'],
  ['counts that fit alone but not together', build({ nTensors: 5, nKv: 8, dataBytes: 0 }), 'bad-count'],
  ['key length 2^40', build({ kv: (r) => r.str('k', 2n ** 40n).u32(T_U32).u32(1) }), 'bad-string'],
  ['key length 2^64-1', build({ kv: (r) => r.str('k', -1n).u32(T_U32).u32(1) }), 'bad-string'],
  ['string value length 2^40', build({ kv: (r) => r.str('k').u32(T_STRING).str('v', 2n ** 40n) }), 'bad-string'],
  ['string value longer than the file', build({ kv: (r) => r.str('k').u32(T_STRING).str('v', 5000) }), 'bad-string'],
  [
    'tensor name length 2^40',
    build({ nTensors: 1, tensors: (r) => r.str('a', 2n ** 40n).u32(1).u64(8).u32(0).u64(0) }),
    'bad-string',
  ],
  ['value type 13', build({ kv: (r) => r.str('k').u32(13).u32(1) }), 'bad-value-type'],
  ['value type 0xFFFFFFFF', build({ kv: (r) => r.str('k').u32(0xffffffff).u32(1) }), 'bad-value-type'],
  ['array element type 99', build({ kv: (r) => r.str('k').u32(T_ARRAY).u32(99).u64(1).u32(0) }), 'bad-value-type'],
  ['u8 array of 2^50', build({ kv: (r) => r.str('k').u32(T_ARRAY).u32(0).u64(2n ** 50n) }), 'bad-count'],
  ['f64 array of 2^64-1', build({ kv: (r) => r.str('k').u32(T_ARRAY).u32(T_F64).u64(-1n) }), 'bad-count'],
  ['string array of 2^50', build({ kv: (r) => r.str('k').u32(T_ARRAY).u32(T_STRING).u64(2n ** 50n) }), 'bad-count'],
  ['array of 2^50 arrays', build({ kv: (r) => r.str('k').u32(T_ARRAY).u32(T_ARRAY).u64(2n ** 50n) }), 'bad-count'],
  ['bool array of 2^50', build({ kv: (r) => r.str('k').u32(T_ARRAY).u32(T_BOOL).u64(2n ** 50n) }), 'bad-count'],
  ['u32 array longer than the file', build({ kv: (r) => r.str('k').u32(T_ARRAY).u32(T_U32).u64(100) }), 'bad-count'],
  [
    'string 2^40 inside a string array',
    build({ kv: (r) => r.str('k').u32(T_ARRAY).u32(T_STRING).u64(2).str('ok').str('x', 2n ** 40n) }),
    'bad-string',
  ],
  [
    'arrays nested 20 deep',
    build({
      kv: (r) => {
        r.str('k').u32(T_ARRAY);
        for (let i = 0; i < 20; i++) r.u32(T_ARRAY).u64(1);
        r.u32(T_U32).u64(0);
      },
    }),
    'bad-value',
  ],
  ['duplicate key', build({ nKv: 2, kv: (r) => kvString(kvString(r, 'k', 'a'), 'k', 'b') }), 'duplicate-key'],
  ['n_dims 5', build({ tensors: (r) => tensorInfo(tensorInfo(r, 'a', [8, 1, 1, 1, 1], 0, 0), 'b', [8], 0, 32) }), 'bad-shape'],
  ['n_dims 9', build({ nTensors: 1, tensors: (r) => tensorInfo(r, 'a', [1, 1, 1, 1, 1, 1, 1, 1, 8], 0, 0) }), 'bad-shape'],
  ['n_dims 0xFFFFFFFF', build({ nTensors: 1, tensors: (r) => r.str('a').u32(0xffffffff).u64(8).u32(0).u64(0) }), 'bad-shape'],
  ['dimension 0', build({ nTensors: 1, tensors: (r) => tensorInfo(r, 'a', [8, 0], 0, 0) }), 'bad-shape'],
  ['dimension 2^64-1 (-1)', build({ nTensors: 1, tensors: (r) => tensorInfo(r, 'a', [8, -1n], 0, 0) }), 'bad-shape'],
  ['dimension 2^63', build({ nTensors: 1, tensors: (r) => tensorInfo(r, 'a', [2n ** 63n], 0, 0) }), 'bad-shape'],
  ['dimensions multiplying past 2^53', build({ nTensors: 1, tensors: (r) => tensorInfo(r, 'a', [2 ** 30, 2 ** 30], 0, 0) }), 'bad-shape'],
  ['2^51 F32 elements: 2^53 bytes', build({ nTensors: 1, tensors: (r) => tensorInfo(r, 'a', [2 ** 4, 2 ** 47], 0, 0) }), 'bad-shape'],
  ['Q8_0 row of 33', build({ nTensors: 1, tensors: (r) => tensorInfo(r, 'a', [33], GGMLType.Q8_0, 0) }), 'bad-shape'],
  ['ggml type 99', build({ nTensors: 1, tensors: (r) => tensorInfo(r, 'a', [8], 99, 0) }), 'bad-type'],
  ['retired ggml type 4', build({ nTensors: 1, tensors: (r) => tensorInfo(r, 'a', [32], 4, 0) }), 'bad-type'],
  ['ggml type 0xFFFFFFFF', build({ nTensors: 1, tensors: (r) => tensorInfo(r, 'a', [8], 0xffffffff, 0) }), 'bad-type'],
  ['offset 2^40', build({ nTensors: 1, tensors: (r) => tensorInfo(r, 'a', [8], 0, 2 ** 40) }), 'bad-offset'],
  ['offset 2^63', build({ nTensors: 1, tensors: (r) => tensorInfo(r, 'a', [8], 0, 2n ** 63n) }), 'bad-offset'],
  ['offset just past the data', build({ nTensors: 1, tensors: (r) => tensorInfo(r, 'a', [8], 0, 64) }), 'bad-offset'],
  ['misaligned offset', build({ tensors: (r) => tensorInfo(tensorInfo(r, 'a', [8], 0, 0), 'b', [8], 0, 48) }), 'bad-offset'],
  ['overlapping tensors', build({ tensors: (r) => tensorInfo(tensorInfo(r, 'a', [16], 0, 0), 'b', [8], 0, 32) }), 'bad-offset'],
  ['same offset twice', build({ tensors: (r) => tensorInfo(tensorInfo(r, 'a', [8], 0, 0), 'b', [8], 0, 0) }), 'bad-offset'],
  ['duplicate tensor name', build({ tensors: (r) => tensorInfo(tensorInfo(r, 'a', [8], 0, 0), 'a', [8], 0, 32) }), 'duplicate-tensor'],
  ['tensor data cut short', build({ dataBytes: 40 }), 'truncated'],
  ['no tensor data at all', build({ dataBytes: 0 }), 'truncated'],
  ...[0, 3, 48, 2 ** 30].map(
    (a): [string, Uint8Array, string] => [
      `alignment ${a}`,
      build({ nKv: 1, kv: (r) => r.str('general.alignment').u32(T_U32).u32(a) }),
      'bad-alignment',
    ],
  ),
  ['alignment as a string', build({ kv: (r) => kvString(r, 'general.alignment', '32') }), 'bad-alignment'],
  ['alignment as an f32', build({ kv: (r) => r.str('general.alignment').u32(T_F32).f32(32) }), 'bad-alignment'],
  [
    'offset misaligned for alignment 64',
    build({ align: 64, kv: (r) => r.str('general.alignment').u32(T_U32).u32(64) }),
    'bad-offset',
  ],
];

// [label, expected code, bytes], so that test titles read "label → code".
const cases = rawCases.map(([label, bytes, code]): [string, string, Uint8Array] => [label, code, bytes]);

function parseError(bytes: Uint8Array): Promise<GGUFError | undefined> {
  return parseGGUF(new MemorySource(bytes)).then(
    () => undefined,
    (err: unknown) => {
      if (!(err instanceof GGUFError)) throw err;
      return err;
    },
  );
}

describe('malformed GGUF files', () => {
  it('the builder makes valid files when told nothing wrong', async () => {
    const f = await parseGGUF(new MemorySource(build()));
    expect(f.tensors.map((t) => [t.name, t.offset - f.dataOffset])).toEqual([
      ['a', 0],
      ['b', 32],
    ]);
    // Known types the runtime cannot compute still parse; so does a zero-dimensional tensor.
    const q4k = await parseGGUF(
      new MemorySource(build({ nTensors: 2, dataBytes: 176, tensors: (r) => tensorInfo(tensorInfo(r, 'k', [256], GGMLType.Q4_K, 0), 's', [], 0, 160) })),
    );
    expect(q4k.tensors.map((t) => [t.type, t.byteLength, t.nElements, t.shape])).toEqual([
      [GGMLType.Q4_K, 144, 256, [256]],
      [GGMLType.F32, 4, 1, []],
    ]);
  });

  it.each(cases)('%s → %s', async (_label, code, bytes) => {
    const t0 = performance.now();
    const err = await parseError(bytes);
    const ms = performance.now() - t0;
    expect(err?.code).toBe(code);
    expect(err?.message.length).toBeGreaterThan(20);
    expect(ms).toBeLessThan(250);
  });

  it('names the problem in the message', async () => {
    expect((await parseError(build({ version: 0x03000000 })))?.message).toContain('big-endian');
    expect((await parseError(build({ version: 1 })))?.message).toContain('v1');
    expect((await parseError(build({ nTensors: 1, tensors: (r) => tensorInfo(r, 'blk.0.attn_q.weight', [8], 99, 0) })))?.message).toContain(
      'blk.0.attn_q.weight',
    );
  });
});

/** Every cut of `bytes` before `dataOffset` and a spread of cuts after it; returns codes seen. */
async function cutEverywhere(bytes: Uint8Array, headerCuts: number[], dataCuts: number[]): Promise<Set<string>> {
  const seen = new Set<string>();
  for (const cut of headerCuts) {
    const err = await parseError(bytes.subarray(0, cut));
    if (!err || !['truncated', 'bad-count', 'bad-string'].includes(err.code)) {
      throw new Error(`cut at ${cut}: expected truncated/bad-count/bad-string, got ${err ? err.code : 'success'}`);
    }
    seen.add(err.code);
  }
  for (const cut of dataCuts) {
    const err = await parseError(bytes.subarray(0, cut));
    if (err?.code !== 'truncated') throw new Error(`cut at ${cut} in the data: expected truncated, got ${err ? err.code : 'success'}`);
  }
  return seen;
}

describe('truncated files', () => {
  it('fails at every byte of a small header, and in the data', async () => {
    const bytes = writeGGUF({
      metadata: {
        'general.architecture': gguf.string('llama'),
        'llama.block_count': gguf.u32(2),
        'tokenizer.ggml.tokens': gguf.array('string', ['<unk>', '<s>', '▁a', 'bc']),
        'tokenizer.ggml.scores': gguf.array('f32', [0, -1, -2, -3]),
        nested: gguf.array('array', [gguf.array('u64', [1n]), gguf.array('bool', [true])]),
      },
      tensors: [
        { name: 'w', shape: [32, 2], type: GGMLType.Q8_0, data: quantize(GGMLType.Q8_0, new Float32Array(64).fill(1)) },
        { name: 'v', shape: [8], type: GGMLType.F32, data: new Uint8Array(32) },
      ],
    });
    const f = await parseGGUF(new MemorySource(bytes));
    const headerCuts = Array.from({ length: f.dataOffset }, (_, i) => i);
    const dataCuts = Array.from({ length: bytes.length - f.dataOffset }, (_, i) => f.dataOffset + i);
    const t0 = performance.now();
    const seen = await cutEverywhere(bytes, headerCuts, dataCuts);
    expect(seen.has('truncated')).toBe(true);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  const stories = sharedFile('models/stories260K.gguf');
  it.skipIf(!stories)('fails at a spread of cuts through stories260K.gguf', async () => {
    const bytes = new Uint8Array(readFileSync(stories!));
    const headerCuts = Array.from({ length: Math.ceil(14176 / 53) }, (_, i) => i * 53);
    const dataCuts = Array.from({ length: 40 }, (_, i) => 14176 + Math.floor(((bytes.length - 14176) * i) / 40));
    dataCuts.push(bytes.length - 1);
    const seen = await cutEverywhere(bytes, headerCuts, dataCuts);
    expect(seen.has('truncated')).toBe(true);
  });
});

/** A virtual source of any size: a header followed by zeros; counts what was read. */
class VirtualSource implements ByteSource {
  readonly name = 'virtual';
  bytesRead = 0;
  constructor(
    private readonly header: Uint8Array,
    readonly size: number,
  ) {}
  async read(offset: number, length: number): Promise<Uint8Array> {
    this.bytesRead += length;
    const out = new Uint8Array(length);
    if (offset < this.header.length) out.set(this.header.subarray(offset, offset + length));
    return out;
  }
}

describe('huge files with corrupt headers', () => {
  const TB = 2 ** 40;
  const head = (fill: (r: Raw) => void) => {
    const r = new Raw().u32(0x46554747).u32(3);
    fill(r);
    return r.bytes();
  };
  const huge: [string, string, Uint8Array][] = [
    ['2^35 key/values of zeros', 'bad-count', head((r) => r.u64(0).u64(2n ** 35n))],
    ['2^19 empty keys (duplicates)', 'duplicate-key', head((r) => r.u64(0).u64(2n ** 19n))],
    ['2^19 empty tensor names (duplicates)', 'duplicate-tensor', head((r) => r.u64(2n ** 19n).u64(0))],
    ['string of 2^39 bytes', 'bad-string', head((r) => r.u64(0).u64(1).str('k').u32(T_STRING).u64(2n ** 39n))],
    ['u8 array of 2^38', 'bad-count', head((r) => r.u64(0).u64(1).str('k').u32(T_ARRAY).u32(0).u64(2n ** 38n))],
    ['string array of 2^34', 'bad-count', head((r) => r.u64(0).u64(1).str('k').u32(T_ARRAY).u32(T_STRING).u64(2n ** 34n))],
  ];
  it.each(huge)('%s → %s without reading much', async (_label, code, header) => {
    const src = new VirtualSource(header, TB);
    const t0 = performance.now();
    await expect(parseGGUF(src)).rejects.toMatchObject({ name: 'GGUFError', code });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(src.bytesRead).toBeLessThanOrEqual(4 << 20);
  });
});
