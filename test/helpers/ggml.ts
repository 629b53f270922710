// ggml's own quantizers and dequantizers, the oracle for src/gguf/quant.ts: libggml-base.so from
// node-llama-cpp's prebuilt CPU binary (installed under oracle/ by `npm test`), called through
// koffi. Tests call `ggmlOracleMissing()` and skip with its reason when the library is absent.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { GGMLType, tensorByteLength } from '../../src/gguf/quant.ts';
import { projectRoot } from './shared.ts';

const oracleModules = resolve(projectRoot, 'oracle/node_modules');
const koffiEntry = resolve(oracleModules, 'koffi/index.js');
export const ggmlLibraryPath = resolve(oracleModules, '@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so');

/** Why the oracle cannot run here, or undefined when it can. */
export function ggmlOracleMissing(): string | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return `the ggml oracle is node-llama-cpp's linux-x64 build; this is ${process.platform}-${process.arch}, so the comparison with ggml is skipped`;
  }
  const absent = [koffiEntry, ggmlLibraryPath].filter((p) => !existsSync(p));
  if (absent.length > 0) {
    return (
      `the ggml oracle is not installed (missing ${absent.join(', ')}): run \`npm test\`, which installs it, ` +
      'or `cd oracle && npm install --ignore-scripts --omit=optional`'
    );
  }
  return undefined;
}

export interface GgmlOracle {
  /** ggml_quantize_chunk(type, src, dst, 0, nRows, nPerRow, NULL): the reference quantizers. */
  quantizeChunk(type: GGMLType, src: Float32Array, nRows: number, nPerRow: number): Uint8Array;
  /** ggml's row dequantizer of `type` (dequantize_row_*, ggml_fp16/bf16_to_fp32_row). */
  dequantize(type: GGMLType, bytes: Uint8Array, n: number): Float32Array;
  /** ggml_type_name, ggml_type_size and ggml_blck_size. */
  typeInfo(type: number): { name: string; typeSize: number; blockSize: number };
}

// The exported row decoder of each type; all take (const void * x, float * y, int64_t n).
const DEQUANTIZERS: Partial<Record<GGMLType, string>> = {
  [GGMLType.F16]: 'ggml_fp16_to_fp32_row',
  [GGMLType.BF16]: 'ggml_bf16_to_fp32_row',
  [GGMLType.Q4_0]: 'dequantize_row_q4_0',
  [GGMLType.Q4_1]: 'dequantize_row_q4_1',
  [GGMLType.Q5_0]: 'dequantize_row_q5_0',
  [GGMLType.Q5_1]: 'dequantize_row_q5_1',
  [GGMLType.Q8_0]: 'dequantize_row_q8_0',
  [GGMLType.Q4_K]: 'dequantize_row_q4_K',
  [GGMLType.Q5_K]: 'dequantize_row_q5_K',
  [GGMLType.Q6_K]: 'dequantize_row_q6_K',
};

interface KoffiLibrary {
  func(signature: string): (...args: unknown[]) => unknown;
}
interface Koffi {
  load(path: string): KoffiLibrary;
}

let loaded: Promise<GgmlOracle> | undefined;

/** Loads libggml-base.so once per test file; call only when `ggmlOracleMissing()` is undefined. */
export function loadGgmlOracle(): Promise<GgmlOracle> {
  loaded ??= (async () => {
    // koffi is ESM with a default export (index.js); imported by path, as it lives in oracle/'s own node_modules.
    const koffi = ((await import(pathToFileURL(koffiEntry).href)) as { default: Koffi }).default;
    const lib = koffi.load(ggmlLibraryPath);
    const quantizeChunk = lib.func(
      'size_t ggml_quantize_chunk(int type, const float *src, _Out_ uint8_t *dst, int64_t start, int64_t nrows, int64_t n_per_row, const float *imatrix)',
    );
    const quantizeInit = lib.func('void ggml_quantize_init(int type)');
    const typeName = lib.func('const char *ggml_type_name(int type)');
    const typeSize = lib.func('size_t ggml_type_size(int type)');
    const blockSize = lib.func('int64_t ggml_blck_size(int type)');
    const rowDecoders = new Map<GGMLType, (x: Uint8Array, y: Float32Array, n: number) => unknown>();
    for (const [type, symbol] of Object.entries(DEQUANTIZERS)) {
      rowDecoders.set(Number(type) as GGMLType, lib.func(`void ${symbol}(const uint8_t *x, _Out_ float *y, int64_t n)`));
    }
    return {
      quantizeChunk(type, src, nRows, nPerRow) {
        quantizeInit(type); // a no-op for these types, but ggml asks for it before quantizing
        const dst = new Uint8Array(tensorByteLength(type, nRows * nPerRow));
        const written = Number(quantizeChunk(type, src, dst, 0, nRows, nPerRow, null));
        if (written !== dst.length) throw new Error(`ggml_quantize_chunk wrote ${written} bytes, expected ${dst.length}`);
        return dst;
      },
      dequantize(type, bytes, n) {
        const decode = rowDecoders.get(type);
        if (!decode) throw new Error(`no ggml row decoder listed for type ${type}`);
        const out = new Float32Array(n);
        decode(bytes, out, n);
        return out;
      },
      typeInfo(type) {
        return { name: String(typeName(type)), typeSize: Number(typeSize(type)), blockSize: Number(blockSize(type)) };
      },
    };
  })();
  return loaded;
}
