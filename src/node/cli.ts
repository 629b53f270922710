// `chunklm` command line: generate text with a GGUF model on Node (Dawn WebGPU), or tokenize
// text with a model's tokenizer (no GPU needed). Run through bin/chunklm.mjs.
import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { LINK_METHODS, type GenerateInput, type GenerateOptions, type GenerationResult, type LoadProgress } from '../engine/types.ts';
import { ChunklmError, InvalidRequestError } from '../errors.ts';
import { FileSource } from '../gguf/node-file-source.ts';

export const usage = `Usage:
  chunklm generate --model FILE --prompt TEXT [options]
      --max-tokens N     tokens to generate (default 128)
      --temperature T    0 is greedy (default 0)
      --top-k K          keep the K most likely tokens (default 0: all)
      --top-p P          nucleus sampling mass in (0, 1] (default 1)
      --seed S           sampling seed, an integer in [0, 2^32)
      --stop TEXT        end generation at TEXT (repeatable)
      --chat             send the prompt as a user message through the model's chat template
      --doc FILE         a document to put in front of the prompt (repeatable, in order); each is
                         split into chunks whose KV is computed once and reused (KVSplit)
      --method M         with --doc: how cached chunk KV is used (default attnlink):
                           full        no reuse: every token is computed
                           prefix      reuse only the longest exactly matching prompt prefix kept
                                       by an earlier request of this process (a single CLI run
                                       has none, so it computes everything)
                           naive       reuse every chunk's KV as it is
                           attnlink    recompute the first K tokens of each chunk
                           cacheblend  recompute the share R of chunk tokens whose KV deviates
                                       most from a full prefill's at layer 1
      --k K              with --method attnlink: tokens recomputed at the start of each chunk
      --ratio R          with --method cacheblend: share of chunk tokens recomputed, in [0, 1]
      --chunk-bos yes|no with --doc: compute and link each chunk with its own BOS in front
                         (yes: [BOS c1] [BOS c2] ... prompt; default no: [BOS] c1 c2 ... prompt)
      --cache-dir DIR    with --doc: keep chunk KV in DIR, so later runs reuse it
      --json             print one JSON object: promptTokens, tokens, text, ttftMs,
                         prefillTokPerS, decodeTokPerS, finishReason (with --doc also
                         reusedTokens, recomputedTokens, computedTokens, chunks)
  chunklm bench pic [--quick] [--json] [--out DIR] ...
      The chunk-cache benchmark (quality of every method against full prefill on stories260K,
      and time to first token as chunks grow); writes bench/results/pic-<adapter>.{json,md}.
      --json prints the report on stdout. 'chunklm bench pic --help' lists its options.
  chunklm bench engine [--quick] [--skip-models] [--out FILE]
      The engine benchmark (kernels against copy bandwidth, load/prefill/decode per model).
  chunklm tokenize --model FILE (--text TEXT | --file PATH) [--add-bos] [--parse-special] [--json]
      Token ids of the text under the model's tokenizer. By default no BOS is added and
      special-token text such as <s> is encoded literally. Needs no GPU.

Exit status: 0 on success, 1 on a runtime error, 2 on a usage error.`;

/** Bad command-line input: reported with the usage hint and exit status 2. */
function usageError(message: string): InvalidRequestError {
  return new InvalidRequestError('usage', message);
}

const generateOptions = {
  model: { type: 'string', short: 'm' },
  prompt: { type: 'string', short: 'p' },
  'max-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  seed: { type: 'string' },
  stop: { type: 'string', multiple: true },
  chat: { type: 'boolean' },
  doc: { type: 'string', multiple: true },
  method: { type: 'string' },
  k: { type: 'string' },
  ratio: { type: 'string' },
  'chunk-bos': { type: 'string' },
  'cache-dir': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} satisfies ParseArgsConfig['options'];

const tokenizeOptions = {
  model: { type: 'string', short: 'm' },
  text: { type: 'string' },
  file: { type: 'string' },
  'add-bos': { type: 'boolean' },
  'parse-special': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} satisfies ParseArgsConfig['options'];

/** Runs the command line and returns the exit status (the caller exits with it). */
export async function main(argv: string[]): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      (command === undefined ? process.stderr : process.stdout).write(`${usage}\n`);
      return command === undefined ? 2 : 0;
    }
    if (command === 'generate') return await generateCommand(rest);
    if (command === 'tokenize') return await tokenizeCommand(rest);
    if (command === 'bench') return await benchCommand(rest);
    throw usageError(`unknown command '${command}' (expected generate, tokenize or bench)`);
  } catch (err) {
    return report(err);
  }
}

function report(err: unknown): number {
  if (err instanceof InvalidRequestError && err.code === 'usage') {
    process.stderr.write(`error: ${err.message}\nRun 'chunklm --help' for usage.\n`);
    return 2;
  }
  const name = err instanceof Error ? err.name : 'Error';
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`error: ${name}: ${message}\n`);
  if (!(err instanceof ChunklmError) && err instanceof Error && err.stack && process.env.CHUNKLM_DEBUG) {
    process.stderr.write(`${err.stack}\n`);
  }
  return 1;
}

function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (err) {
    // parseArgs throws TypeError with codes such as ERR_PARSE_ARGS_UNKNOWN_OPTION.
    throw usageError((err as Error).message);
  }
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value.length === 0) throw usageError(`${flag} is required`);
  return value;
}

function numberFlag(value: string | undefined, flag: string, check: (n: number) => boolean, what: string): number | undefined {
  if (value === undefined) return undefined;
  const n = value.trim() === '' ? NaN : Number(value);
  if (!check(n)) throw usageError(`${flag} must be ${what}, got '${value}'`);
  return n;
}

async function generateCommand(args: string[]): Promise<number> {
  const { values } = parse(args, generateOptions);
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const model = required(values.model, '--model');
  const prompt = required(values.prompt, '--prompt');
  const opts: GenerateOptions = {
    maxTokens: numberFlag(values['max-tokens'], '--max-tokens', (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer') ?? 128,
    temperature: numberFlag(values.temperature, '--temperature', (n) => Number.isFinite(n) && n >= 0, 'a number ≥ 0') ?? 0,
    topK: numberFlag(values['top-k'], '--top-k', (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer'),
    topP: numberFlag(values['top-p'], '--top-p', (n) => n > 0 && n <= 1, 'a number in (0, 1]'),
    seed: numberFlag(values.seed, '--seed', (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32, 'an integer in [0, 2^32)'),
    stop: values.stop,
  };
  const json = values.json === true;
  const docs = values.doc ?? [];
  if (docs.length === 0 && (values.method !== undefined || values.k !== undefined || values.ratio !== undefined || values['chunk-bos'] !== undefined || values['cache-dir'] !== undefined)) {
    throw usageError('--method, --k, --ratio, --chunk-bos and --cache-dir apply to --doc requests');
  }
  if (values['chunk-bos'] !== undefined) {
    if (values['chunk-bos'] !== 'yes' && values['chunk-bos'] !== 'no') throw usageError(`--chunk-bos must be yes or no, got '${values['chunk-bos']}'`);
    opts.chunkBos = values['chunk-bos'] === 'yes';
  }
  if (docs.length > 0 && values.chat) throw usageError('--chat and --doc cannot be combined yet');
  const methods: readonly string[] = LINK_METHODS;
  if (values.method !== undefined) {
    if (!methods.includes(values.method)) throw usageError(`--method must be one of ${methods.join(', ')}, got '${values.method}'`);
    opts.method = values.method as GenerateOptions['method'];
  }
  const method = opts.method ?? 'attnlink';
  if (values.k !== undefined && method !== 'attnlink') throw usageError(`--k applies to --method attnlink, not ${method}`);
  if (values.ratio !== undefined && method !== 'cacheblend') throw usageError(`--ratio applies to --method cacheblend, not ${method}`);
  opts.k = numberFlag(values.k, '--k', (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer');
  opts.ratio = numberFlag(values.ratio, '--ratio', (n) => n >= 0 && n <= 1, 'a number in [0, 1]');
  const input: GenerateInput =
    docs.length > 0
      ? { texts: await Promise.all(docs.map((d) => readTextFile(d, '--doc'))), question: prompt }
      : values.chat
        ? { messages: [{ role: 'user', content: prompt }] }
        : prompt;

  const source = await FileSource.open(model);
  try {
    // Imported here so that `tokenize` and usage errors never start Dawn.
    const { openNodeEngine } = await import('./engine-host.ts');
    const { engine, adapterInfo } = await openNodeEngine({ store: values['cache-dir'] });
    const info = await engine.load(source, { onProgress: json ? undefined : progressPrinter() });
    if (!json) {
      process.stderr.write(
        `[chunklm] ${info.name} (${info.architecture}, ${info.nLayers} layers, dim ${info.dim}, ${info.weightType}, ` +
          `${formatBytes(info.weightBytes)}) on ${adapterInfo}\n`,
      );
    }
    // Ctrl-C stops the generation and still prints what was produced; a second one exits.
    const ctrl = new AbortController();
    const onSigint = (): void => {
      if (ctrl.signal.aborted) process.exit(130);
      ctrl.abort();
    };
    process.on('SIGINT', onSigint);
    let result: GenerationResult;
    try {
      result = await engine.complete(input, { ...opts, signal: ctrl.signal }, (ev) => {
        if (!json && ev.text.length > 0) process.stdout.write(ev.text);
      });
    } finally {
      process.off('SIGINT', onSigint);
    }
    engine.unload();
    if (json) {
      const { promptTokens, tokens, text, ttftMs, prefillTokPerS, decodeTokPerS, finishReason } = result;
      const linked = docs.length > 0
        ? { reusedTokens: result.reusedTokens, recomputedTokens: result.recomputedTokens, computedTokens: result.computedTokens, chunks: result.chunks }
        : {};
      process.stdout.write(`${JSON.stringify({ promptTokens, tokens, text, ttftMs, prefillTokPerS, decodeTokPerS, finishReason, ...linked })}\n`);
    } else {
      process.stdout.write('\n');
      process.stderr.write(`[chunklm] ${formatMetrics(result)}\n`);
    }
    return 0;
  } finally {
    await source.close();
  }
}

/** Runs a benchmark script (bench/*.ts) in a child Node process with the same TypeScript loader. */
async function benchCommand(args: string[]): Promise<number> {
  const [which, ...rest] = args;
  const scripts: Record<string, string> = { pic: 'pic.ts', engine: 'engine-bench.ts' };
  if (which === undefined || !(which in scripts)) throw usageError(`bench needs one of ${Object.keys(scripts).join(', ')}${which ? `, got '${which}'` : ''}`);
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const script = fileURLToPath(new URL(`../../bench/${scripts[which]}`, import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...rest], { stdio: 'inherit' });
  const forward = (): void => void child.kill('SIGINT');
  process.on('SIGINT', forward);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', (err) => reject(new InvalidRequestError('bench-failed', `cannot start the benchmark: ${err.message}`)));
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
    });
  } finally {
    process.off('SIGINT', forward);
  }
}

async function tokenizeCommand(args: string[]): Promise<number> {
  const { values } = parse(args, tokenizeOptions);
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const model = required(values.model, '--model');
  if ((values.text === undefined) === (values.file === undefined)) throw usageError('give exactly one of --text TEXT or --file PATH');
  const text = values.text ?? (await readTextFile(values.file as string, '--file'));
  const source = await FileSource.open(model);
  let tokens: number[];
  try {
    const { parseGGUF } = await import('../gguf/reader.ts');
    const { createTokenizer } = await import('../tokenizer/index.ts');
    const file = await parseGGUF(source);
    tokens = createTokenizer(file.metadata).encode(text, { addBos: values['add-bos'] === true, parseSpecial: values['parse-special'] === true });
  } finally {
    await source.close();
  }
  process.stdout.write(values.json ? `${JSON.stringify({ tokens })}\n` : `${tokens.join(' ')}\n`);
  return 0;
}

async function readTextFile(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    throw new InvalidRequestError('read-failed', `cannot read ${flag} ${path} (${code})`, { path, errno: code });
  }
}

/** One progress line on stderr, rewritten in place when stderr is a terminal. */
function progressPrinter(): ((p: LoadProgress) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  const clearLine = '\r\x1b[2K';
  return (p) => {
    if (p.phase === 'ready') {
      process.stderr.write(clearLine);
      return;
    }
    const pct = p.totalBytes > 0 ? Math.floor((100 * p.loadedBytes) / p.totalBytes) : 0;
    process.stderr.write(`${clearLine}[chunklm] loading (${p.phase}) ${pct}% of ${formatBytes(p.totalBytes)}`);
  };
}

export function formatMetrics(r: GenerationResult): string {
  return (
    `${r.promptTokens.length} prompt tokens, ${r.tokens.length} generated (${r.finishReason}); ` +
    `TTFT ${r.ttftMs.toFixed(1)} ms, prefill ${r.prefillTokPerS.toFixed(1)} tok/s, decode ${r.decodeTokPerS.toFixed(1)} tok/s`
  );
}

function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}
