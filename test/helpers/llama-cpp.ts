// llama.cpp as an independent oracle: node-llama-cpp's prebuilt CPU binary, installed in
// oracle/node_modules by `npm test` (scripts/setup.mjs). Tests that use it skip with
// `llamaCppMissing()`'s reason when it is not installed. Only what the tests need is typed here.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { dequantize, GGMLType } from '../../src/gguf/quant.ts';
import { parseGGUF } from '../../src/gguf/reader.ts';
import { MemorySource } from '../../src/gguf/source.ts';
import { metadataFromFile, writeGGUF } from '../../src/gguf/writer.ts';
import { projectRoot } from './shared.ts';

const oracleModules = resolve(projectRoot, 'oracle/node_modules');
const entry = resolve(oracleModules, 'node-llama-cpp/dist/index.js');
const prebuilt = resolve(oracleModules, '@node-llama-cpp/linux-x64');

/** Why llama.cpp cannot run here (for `describe.skipIf`), or undefined when it can. */
export function llamaCppMissing(): string | undefined {
  const install = 'run npm test once, or: (cd oracle && npm install --ignore-scripts --omit=optional)';
  if (!existsSync(entry)) return `needs llama.cpp from ${oracleModules}/node-llama-cpp, which is absent, so this suite is skipped; ${install}`;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return `needs llama.cpp's prebuilt CPU binary, which oracle/ installs for linux-x64 only (this is ${process.platform}-${process.arch}), so this suite is skipped`;
  }
  if (!existsSync(prebuilt)) return `needs llama.cpp's prebuilt binary ${prebuilt}, which is absent, so this suite is skipped; ${install}`;
  return undefined;
}

type Token = number;
type EvaluateItem = Token | [Token, { generateNext: { logits: true } }];

interface NlcSequence {
  controlledEvaluate(input: EvaluateItem[]): Promise<(undefined | { next: { logits?: Map<Token, number> } })[]>;
}
interface NlcContext {
  getSequence(): NlcSequence;
  dispose(): Promise<void>;
}
interface NlcModel {
  tokenize(text: string, specialTokens?: boolean): Token[];
  detokenize(tokens: readonly Token[], specialTokens?: boolean): string;
  createContext(options: Record<string, unknown>): Promise<NlcContext>;
  dispose(): Promise<void>;
}
interface NlcLlama {
  loadModel(options: { modelPath: string; gpuLayers?: number; vocabOnly?: boolean }): Promise<NlcModel>;
}

let llamaPromise: Promise<NlcLlama> | undefined;
/**
 * While a vocab-only GGUF loads: node-llama-cpp first loads it as a whole model to estimate its
 * memory, which fails (it has no tensors) and logs errors that mean nothing here.
 */
let quiet = false;

/** The CPU backend, loaded once per test file; never builds or downloads anything. Logs errors only. */
function llama(): Promise<NlcLlama> {
  llamaPromise ??= import(pathToFileURL(entry).href).then((m: { getLlama(o: Record<string, unknown>): Promise<NlcLlama> }) =>
    m.getLlama({
      build: 'never',
      skipDownload: true,
      gpu: false,
      logLevel: 'error',
      logger: (level: string, message: string) => {
        if (!quiet) process.stderr.write(`[llama.cpp ${level}] ${message.trimEnd()}\n`);
      },
    }),
  );
  return llamaPromise;
}

/** A model (or a vocab-only GGUF) opened in llama.cpp. */
export class LlamaCppModel {
  private constructor(
    private readonly model: NlcModel,
    private readonly vocabSize: number,
  ) {}

  /** `vocabSize` sizes the logit arrays (llama.cpp hands logits back as a map). */
  static async open(path: string, vocabSize: number, opts: { vocabOnly?: boolean } = {}): Promise<LlamaCppModel> {
    const backend = await llama();
    quiet = opts.vocabOnly ?? false;
    try {
      return new LlamaCppModel(await backend.loadModel({ modelPath: path, gpuLayers: 0, vocabOnly: opts.vocabOnly ?? false }), vocabSize);
    } finally {
      quiet = false;
    }
  }

  /** llama_tokenize without BOS; `parseSpecial` is its parse_special. */
  tokenize(text: string, parseSpecial: boolean): number[] {
    return this.model.tokenize(text, parseSpecial);
  }

  detokenize(ids: readonly number[], special: boolean): string {
    return this.model.detokenize(ids, special);
  }

  /**
   * Evaluates `tokens` in a fresh context and returns the logits after each of tokens[from-1..]:
   * entry i is the next-token distribution given tokens[0..from+i-1] (teacher forcing). KV cache in
   * f32 and no flash attention, so nothing but the weights' own format rounds activations.
   */
  async logitsAlong(tokens: readonly number[], from: number): Promise<Float32Array[]> {
    return this.withSequence(async (seq) => {
      const input: EvaluateItem[] = tokens.map((t, i) => (i >= from - 1 ? [t, { generateNext: { logits: true } }] : t));
      const out = await seq.controlledEvaluate(input);
      return out.slice(from - 1).map((o) => this.dense(o?.next.logits));
    });
  }

  /** Greedy decoding of `n` tokens after `prompt`, one token per step, with the logits of each step. */
  async greedy(prompt: readonly number[], n: number): Promise<{ tokens: number[]; logits: Float32Array[] }> {
    return this.withSequence(async (seq) => {
      const tokens: number[] = [];
      const logits: Float32Array[] = [];
      let input: EvaluateItem[] = prompt.map((t, i) => (i === prompt.length - 1 ? [t, { generateNext: { logits: true } }] : t));
      while (tokens.length < n) {
        const out = await seq.controlledEvaluate(input);
        const l = this.dense(out[out.length - 1]?.next.logits);
        const t = top2(l).first;
        tokens.push(t);
        logits.push(l);
        input = [[t, { generateNext: { logits: true } }]];
      }
      return { tokens, logits };
    });
  }

  async dispose(): Promise<void> {
    await this.model.dispose();
  }

  private async withSequence<T>(f: (seq: NlcSequence) => Promise<T>): Promise<T> {
    const ctx = await this.model.createContext({
      contextSize: 128,
      batchSize: 128,
      sequences: 1,
      // One thread: ggml's workers spin while they wait, which on a busy machine costs seconds per
      // token of a tiny model instead of milliseconds.
      threads: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
    });
    try {
      return await f(ctx.getSequence());
    } finally {
      await ctx.dispose();
    }
  }

  private dense(map: Map<number, number> | undefined): Float32Array {
    if (!map) throw new Error('llama.cpp returned no logits for a position that asked for them');
    const out = new Float32Array(this.vocabSize).fill(-Infinity);
    for (const [id, v] of map) out[id] = v;
    return out;
  }
}

/** The two largest logits: ids and values (the lower id first on equal values). */
export function top2(logits: Float32Array): { first: number; second: number; margin: number } {
  let first = 0;
  let second = -1;
  for (let i = 1; i < logits.length; i++) {
    if (logits[i] > logits[first]) {
      second = first;
      first = i;
    } else if (second < 0 || logits[i] > logits[second]) second = i;
  }
  return { first, second, margin: logits[first] - logits[second] };
}

/** The same model with every tensor dequantized to F32: the weights' values, without their format. */
export async function dequantizedCopy(bytes: Uint8Array): Promise<Uint8Array> {
  const file = await parseGGUF(new MemorySource(bytes));
  const tensors = file.tensors.map((t) => {
    const values = dequantize(t.type, bytes.subarray(t.offset, t.offset + t.byteLength), t.nElements);
    return { name: t.name, shape: t.shape, type: GGMLType.F32, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
  });
  return writeGGUF({ metadata: metadataFromFile(file), tensors });
}

/** A private temp folder for model files llama.cpp reads by path; `cleanup` removes it. */
export function scratchDir(): { write(name: string, bytes: Uint8Array): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'chunklm-oracle-'));
  return {
    write: (name, bytes) => {
      const path = join(dir, name);
      writeFileSync(path, bytes);
      return path;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
