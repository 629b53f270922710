// `chunklm` command line: generate text with a GGUF model on Node (Dawn WebGPU), keep documents
// and their chunk KV in a folder (docs add/list/remove/stats), pack one as a .kvpack, or tokenize
// text with a model's tokenizer (no GPU needed). Run through bin/chunklm.mjs.
//
// Each flag is declared once (Flag): its parser entry, its line in the usage text and, for a
// number, the check its value must pass. Checks that involve several flags stay in the commands.
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { parseArgs, type ParseArgsOptionDescriptor } from 'node:util';
import type { Engine } from '../engine/engine.ts';
import {
  LINK_METHODS,
  type DocumentInfo,
  type DocumentProgress,
  type DocumentStats,
  type GenerateInput,
  type GenerateOptions,
  type GenerationResult,
  type LoadProgress,
} from '../engine/types.ts';
import { ChunklmError, InvalidRequestError, StorageError } from '../errors.ts';
import { documentInfo } from '../engine/documents.ts';
import type { ModelBytes } from '../engine/engine.ts';
import type { ModelFileInfo } from '../engine/types.ts';
import { formatBytes, formatLoadProgress } from '../format.ts';
import { FileSource } from '../gguf/node-file-source.ts';
import type { ByteSource } from '../gguf/source.ts';
import { splitPartNames } from '../gguf/split.ts';
import { withRate } from '../hub/rate.ts';
import { openRemoteModel } from '../hub/remote.ts';
import { FolderModelCache, defaultModelCacheDir } from './model-cache.ts';
import type { DocumentManifest } from '../kv/store.ts';
import { FolderStore } from './folder-store.ts';

/** A command-line flag: what parseArgs needs, plus its help and, for numbers, its check. */
interface Flag extends ParseArgsOptionDescriptor {
  /** The value's placeholder in the usage text (FILE, N); none for a boolean flag. */
  arg?: string;
  /** Help text, one or more lines; '' keeps the flag out of the usage text. */
  help: string;
  /** A number flag: the test its value must pass, and what to call a valid value ("must be ..."). */
  number?: { ok: (n: number) => boolean; what: string };
  /** generate: the flag only means something for a documents request (--doc or --ask-docs). */
  documents?: true;
}
type Flags = Record<string, Flag>;

const nonNegativeInteger = { ok: (n: number) => Number.isInteger(n) && n >= 0, what: 'a non-negative integer' };

const helpFlag = { type: 'boolean', short: 'h', help: '' } satisfies Flag;
const modelFlag = {
  type: 'string',
  short: 'm',
  arg: 'FILE|URL',
  help:
    'the GGUF model: a file, or an http(s) URL such as https://huggingface.co/<repo>/resolve/main/<file>.gguf, downloaded once into the model cache ' +
    '(see --model-cache); a name ending in -00001-of-0000N.gguf loads every part of a split model',
} satisfies Flag;
const storeFlag = {
  type: 'string',
  arg: 'DIR',
  help: 'the document store: a folder of documents and their chunk KV',
} satisfies Flag;
const chunkBosFlag = {
  type: 'string',
  arg: 'yes|no',
  help: 'compute and link each chunk with its own BOS in front (yes: [BOS c1] [BOS c2] ... prompt; default no: [BOS] c1 c2 ... prompt); chunks made one way are made again when asked the other way',
} satisfies Flag;
const idFlag = { type: 'string', arg: 'ID', help: "the document's id (default: the file's name without its extension)" } satisfies Flag;
const titleFlag = { type: 'string', arg: 'T', help: "the document's title (default: its first line)" } satisfies Flag;

const generateFlags = {
  model: modelFlag,
  'model-cache': {
    type: 'string',
    arg: 'DIR',
    help: 'where models loaded from URLs are kept (default: $XDG_CACHE_HOME/chunklm/models, or ~/.cache/chunklm/models; ~/Library/Caches/chunklm/models on macOS, %LOCALAPPDATA%\\chunklm\\models on Windows)',
  },
  prompt: { type: 'string', short: 'p', arg: 'TEXT', help: 'the prompt; with --doc or --ask-docs, the question about the documents' },
  'max-tokens': { type: 'string', arg: 'N', help: 'tokens to generate (default 128)', number: nonNegativeInteger },
  temperature: { type: 'string', arg: 'T', help: '0 is greedy (default 0)', number: { ok: (n) => Number.isFinite(n) && n >= 0, what: 'a number ≥ 0' } },
  'top-k': { type: 'string', arg: 'K', help: 'keep the K most likely tokens (default 0: all)', number: nonNegativeInteger },
  'top-p': { type: 'string', arg: 'P', help: 'nucleus sampling mass in (0, 1] (default 1)', number: { ok: (n) => n > 0 && n <= 1, what: 'a number in (0, 1]' } },
  seed: { type: 'string', arg: 'S', help: 'sampling seed, an integer in [0, 2^32)', number: { ok: (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32, what: 'an integer in [0, 2^32)' } },
  stop: { type: 'string', multiple: true, arg: 'TEXT', help: 'end generation at TEXT (repeatable)' },
  chat: { type: 'boolean', help: "send the prompt as a user message through the model's chat template" },
  system: { type: 'string', arg: 'TEXT', help: 'with --chat or documents: a system message (put before the question when the model has no chat template)' },
  doc: {
    type: 'string',
    multiple: true,
    arg: 'FILE',
    help:
      'a document to put in front of the prompt (repeatable, in order); each is split into chunks whose KV is computed once and reused (KVSplit). ' +
      'With --store, each file is first added to the store as a document (id: its name without extension), so later runs and --ask-docs reuse its chunks',
  },
  'ask-docs': {
    type: 'string',
    multiple: true,
    arg: 'IDS|all',
    help: "stored documents to ask about: ids separated by commas, or 'all' (in the order they were added); needs --store",
  },
  store: { ...storeFlag, documents: true },
  'cache-dir': { type: 'string', arg: 'DIR', help: 'deprecated: the old name of --store', documents: true },
  method: {
    type: 'string',
    arg: 'M',
    documents: true,
    help:
      'how cached chunk KV is used (default attnlink):\n' +
      '  full        no reuse: every token is computed\n' +
      '  prefix      reuse only the longest exactly matching prompt prefix kept\n' +
      '              by an earlier request of this process (a single CLI run\n' +
      '              has none, so it computes everything)\n' +
      "  naive       reuse every chunk's KV as it is\n" +
      '  attnlink    recompute the first K tokens of each chunk\n' +
      '  cacheblend  recompute the share R of chunk tokens whose KV deviates\n' +
      "              most from a full prefill's at layer 1",
  },
  k: { type: 'string', arg: 'K', help: 'with --method attnlink: tokens recomputed at the start of each chunk', number: nonNegativeInteger, documents: true },
  ratio: { type: 'string', arg: 'R', help: 'with --method cacheblend: share of chunk tokens recomputed, in [0, 1]', number: { ok: (n) => n >= 0 && n <= 1, what: 'a number in [0, 1]' }, documents: true },
  'chunk-bos': { ...chunkBosFlag, documents: true },
  json: {
    type: 'boolean',
    help:
      'print one JSON object: promptTokens, tokens, text, ttftMs, prefillTokPerS, decodeTokPerS, finishReason; documents requests add reusedTokens, ' +
      'recomputedTokens, computedTokens, chunks (id, tokens, cached, source: gpu, memory, store or computed, document, index), droppedChunks, warnings, ' +
      'and with --doc and --store the added documents (added)',
  },
  help: helpFlag,
} satisfies Flags;

const docsAddFlags = {
  model: modelFlag,
  store: storeFlag,
  id: { ...idFlag, help: `${idFlag.help}; one file only` },
  title: { ...titleFlag, help: `${titleFlag.help}; one file only` },
  pin: { type: 'boolean', help: "never evict the documents' chunks from the store" },
  'chunk-bos': chunkBosFlag,
  json: { type: 'boolean', help: 'print { documents: [info, ...] }' },
  help: helpFlag,
} satisfies Flags;

const docsListFlags = {
  store: storeFlag,
  json: { type: 'boolean', help: 'print { documents: [info, ...] }' },
  help: helpFlag,
} satisfies Flags;

const docsRemoveFlags = {
  store: storeFlag,
  json: { type: 'boolean', help: 'print { removed: [id, ...] }' },
  help: helpFlag,
} satisfies Flags;

const docsPinFlags = {
  store: storeFlag,
  off: { type: 'boolean', help: 'unpin instead: the chunks may be evicted again' },
  json: { type: 'boolean', help: 'print { documents: [info, ...] }' },
  help: helpFlag,
} satisfies Flags;

const docsImportFlags = {
  model: { ...modelFlag, help: 'the model the packs were made with (a pack for another model is refused)' },
  store: storeFlag,
  json: { type: 'boolean', help: 'print { documents: [info, ...] }' },
  help: helpFlag,
} satisfies Flags;

const docsStatsFlags = {
  model: { ...modelFlag, help: 'also count the documents read for this model (loads it on the GPU)' },
  store: storeFlag,
  json: { type: 'boolean', help: 'print the numbers as one JSON object' },
  help: helpFlag,
} satisfies Flags;

const packFlags = {
  model: modelFlag,
  out: { type: 'string', short: 'o', arg: 'FILE', help: 'the .kvpack file to write (replaced when it exists)' },
  id: idFlag,
  title: titleFlag,
  'chunk-bos': chunkBosFlag,
  json: { type: 'boolean', help: "print the document's info with out and packBytes as one JSON object" },
  help: helpFlag,
} satisfies Flags;

const tokenizeFlags = {
  model: modelFlag,
  text: { type: 'string', arg: 'TEXT', help: 'the text to tokenize' },
  file: { type: 'string', arg: 'PATH', help: 'a file holding the text' },
  'add-bos': { type: 'boolean', help: 'put BOS in front' },
  'parse-special': { type: 'boolean', help: 'encode special-token text such as <s> as that token' },
  json: { type: 'boolean', help: 'print { tokens }' },
  help: helpFlag,
} satisfies Flags;

/** One command in the usage text. */
interface UsageSection {
  synopsis: string;
  about?: string;
  flags?: Flags;
}

const sections = {
  generate: { synopsis: 'chunklm generate --model FILE --prompt TEXT [options]', flags: generateFlags },
  docsAdd: {
    synopsis: 'chunklm docs add --model FILE --store DIR [options] DOC.txt ...',
    about: 'Adds each file to the store as a document: its chunks are computed once and kept.',
    flags: docsAddFlags,
  },
  docsList: {
    synopsis: 'chunklm docs list --store DIR [--json]',
    about: 'The stored documents: id, chunks (stored), tokens, bytes, pinned, created, title.\nNeeds no GPU and no model.',
    flags: docsListFlags,
  },
  docsRemove: {
    synopsis: 'chunklm docs remove --store DIR [--json] ID ...',
    about: 'Removes the documents and the chunks no other document uses. Needs no GPU.',
    flags: docsRemoveFlags,
  },
  docsPin: {
    synopsis: 'chunklm docs pin --store DIR [--off] [--json] ID ...',
    about: "Pins documents: their chunks are never evicted from the store's budget. Needs no GPU.",
    flags: docsPinFlags,
  },
  docsImport: {
    synopsis: 'chunklm docs import --model FILE --store DIR [--json] DOC.kvpack ...',
    about: 'Adds documents from .kvpack files (chunklm pack, documents.export) with their chunk KV:\nnothing is computed. A pack made for another model is refused.',
    flags: docsImportFlags,
  },
  docsStats: {
    synopsis: 'chunklm docs stats --store DIR [--model FILE] [--json]',
    about: "The store's documents, chunks, tokens, bytes and budget; --model also loads the\nmodel and counts the documents read for it.",
    flags: docsStatsFlags,
  },
  pack: {
    synopsis: 'chunklm pack --model FILE --out DOC.kvpack [--id ID] [--title T] [--json] DOC.txt',
    about: 'Reads the document and writes it with its chunk KV as one .kvpack file\n(engine.documents.import reads it back, for the same model).',
    flags: packFlags,
  },
  bench: {
    synopsis: 'chunklm bench pic [--quick] [--json] [--out DIR] ...',
    about:
      'The chunk-cache benchmark (quality of every method against full prefill on stories260K,\n' +
      'and time to first token as chunks grow); writes bench/results/pic-<adapter>.{json,md}.\n' +
      "--json prints the report on stdout. 'chunklm bench pic --help' lists its options.",
  },
  benchEngine: {
    synopsis: 'chunklm bench engine [--quick] [--skip-models] [--out FILE]',
    about: 'The engine benchmark (kernels against copy bandwidth, load/prefill/decode per model).',
  },
  tokenize: {
    synopsis: 'chunklm tokenize --model FILE (--text TEXT | --file PATH) [--add-bos] [--parse-special] [--json]',
    about: 'Token ids of the text under the model\'s tokenizer. By default no BOS is added and\nspecial-token text such as <s> is encoded literally. Needs no GPU.',
    flags: tokenizeFlags,
  },
} satisfies Record<string, UsageSection>;

const FLAG_COLUMN = 25;
const HELP_WIDTH = 72;

/** Breaks a line longer than `width` at spaces; deliberate line breaks stay in the text. */
function wrap(line: string, width = HELP_WIDTH): string[] {
  const out: string[] = [];
  let current = '';
  for (const word of line.split(' ')) {
    if (current.length > 0 && current.length + 1 + word.length > width) {
      out.push(current);
      current = word;
    } else current = current.length > 0 ? `${current} ${word}` : word;
  }
  out.push(current);
  return out;
}

function renderSection(s: UsageSection): string {
  const lines = [`  ${s.synopsis}`];
  const indent = ' '.repeat(6);
  for (const l of s.about?.split('\n') ?? []) lines.push(indent + l);
  for (const [name, flag] of Object.entries(s.flags ?? {})) {
    if (flag.help === '') continue;
    const head = `${indent}--${name}${flag.arg ? ` ${flag.arg}` : ''} `;
    const [first, ...rest] = flag.help.split('\n').flatMap((l) => (l.length > HELP_WIDTH ? wrap(l) : [l]));
    if (head.length <= FLAG_COLUMN) lines.push(head.padEnd(FLAG_COLUMN) + first);
    else lines.push(head.trimEnd(), ' '.repeat(FLAG_COLUMN) + first);
    for (const l of rest) lines.push(' '.repeat(FLAG_COLUMN) + l);
  }
  return lines.join('\n');
}

const EXIT_STATUS = 'Exit status: 0 on success, 1 on a runtime error, 2 on a usage error.';

function renderUsage(list: UsageSection[]): string {
  return `Usage:\n${list.map(renderSection).join('\n')}\n\n${EXIT_STATUS}`;
}

const docsSections = [sections.docsAdd, sections.docsList, sections.docsRemove, sections.docsPin, sections.docsImport, sections.docsStats];

export const usage = renderUsage(Object.values(sections));

/** Bad command-line input: reported with the usage hint and exit status 2. */
function usageError(message: string): InvalidRequestError {
  return new InvalidRequestError('usage', message);
}

/** Runs the command line and returns the exit status (the caller exits with it). */
export async function main(argv: string[]): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      (command === undefined ? process.stderr : process.stdout).write(`${usage}\n`);
      return command === undefined ? 2 : 0;
    }
    if (command === 'generate') return await generateCommand(rest);
    if (command === 'docs') return await docsCommand(rest);
    if (command === 'pack') return await packCommand(rest);
    if (command === 'tokenize') return await tokenizeCommand(rest);
    if (command === 'bench') return await benchCommand(rest);
    throw usageError(`unknown command '${command}' (expected generate, docs, pack, tokenize or bench)`);
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

/** Parses the flags (and positionals when allowed) and checks every number flag. */
function parse<F extends Flags>(args: string[], flags: F, allowPositionals = false) {
  const parsed = (() => {
    try {
      return parseArgs({ args, options: flags, strict: true, allowPositionals });
    } catch (err) {
      // parseArgs throws TypeError with codes such as ERR_PARSE_ARGS_UNKNOWN_OPTION.
      throw usageError((err as Error).message);
    }
  })();
  const numbers: Partial<Record<keyof F, number>> = {};
  const values: Record<string, unknown> = parsed.values;
  for (const [name, flag] of Object.entries(flags as Flags)) {
    const value = values[name];
    if (flag.number === undefined || typeof value !== 'string') continue;
    const n = value.trim() === '' ? NaN : Number(value);
    if (!flag.number.ok(n)) throw usageError(`--${name} must be ${flag.number.what}, got '${value}'`);
    numbers[name as keyof F] = n;
  }
  return { values: parsed.values, positionals: parsed.positionals, numbers };
}

function printHelp(list: UsageSection[]): number {
  process.stdout.write(`${renderUsage(list)}\n`);
  return 0;
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value.length === 0) throw usageError(`${flag} is required`);
  return value;
}

function yesNo(value: string | undefined, flag: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value !== 'yes' && value !== 'no') throw usageError(`${flag} must be yes or no, got '${value}'`);
  return value === 'yes';
}

/** `--ask-docs a,b --ask-docs c` → ['a', 'b', 'c']; 'all' alone → 'all'. */
function askedDocuments(values: readonly string[]): string[] | 'all' {
  const ids = values.flatMap((v) => v.split(',')).map((id) => id.trim()).filter((id) => id.length > 0);
  if (ids.length === 0) throw usageError("--ask-docs needs document ids separated by commas, or 'all'");
  if (ids.includes('all')) {
    if (ids.length > 1) throw usageError("--ask-docs takes 'all' alone, or ids without it");
    return 'all';
  }
  return unique(ids);
}

function unique<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}

/** A document id from its file: the base name without its extension. Two files with one id are refused. */
function idsFromFiles(files: readonly string[], flag: string): string[] {
  const ids = files.map((f) => basename(f, extname(f)));
  const seen = new Map<string, string>();
  files.forEach((f, i) => {
    const other = seen.get(ids[i]);
    if (other !== undefined) throw usageError(`${flag} files ${other} and ${f} would both be the document '${ids[i]}'; rename one, or add them one at a time with --id`);
    seen.set(ids[i], f);
  });
  return ids;
}

async function generateCommand(args: string[]): Promise<number> {
  const { values, numbers } = parse(args, generateFlags);
  if (values.help) return printHelp([sections.generate]);
  const model = required(values.model, '--model');
  // An empty prompt given on purpose is a prompt (generation starts from BOS alone, as in
  // llama.cpp); only a missing flag is refused.
  if (values.prompt === undefined) throw usageError('--prompt is required (--prompt "" starts from BOS alone)');
  const prompt = values.prompt;
  const docs = values.doc ?? [];
  const asked = values['ask-docs'] !== undefined ? askedDocuments(values['ask-docs']) : undefined;
  const documentsRequest = docs.length > 0 || asked !== undefined;
  if (!documentsRequest) {
    const given = Object.entries(generateFlags as Flags)
      .filter(([name, flag]) => flag.documents && (values as Record<string, unknown>)[name] !== undefined)
      .map(([name]) => `--${name}`);
    if (given.length > 0) throw usageError(`${given.join(', ')} ${given.length === 1 ? 'applies' : 'apply'} only to documents requests (--doc or --ask-docs)`);
  }
  if (values.store !== undefined && values['cache-dir'] !== undefined) throw usageError('give --store only (--cache-dir is its deprecated old name)');
  const store = values.store ?? values['cache-dir'];
  if (asked !== undefined && store === undefined) throw usageError('--ask-docs needs --store DIR, the folder the documents were added to (chunklm docs add)');
  if (documentsRequest && values.chat) throw usageError("--chat does not apply to --doc or --ask-docs: documents requests go through the model's chat template when it has one");
  if (values.system !== undefined && !documentsRequest && !values.chat) throw usageError('--system applies to --chat and to documents requests (--doc or --ask-docs)');
  const chunkBos = yesNo(values['chunk-bos'], '--chunk-bos');
  const methods: readonly string[] = LINK_METHODS;
  if (values.method !== undefined && !methods.includes(values.method)) throw usageError(`--method must be one of ${methods.join(', ')}, got '${values.method}'`);
  const method = (values.method ?? 'attnlink') as NonNullable<GenerateOptions['method']>;
  if (values.k !== undefined && method !== 'attnlink') throw usageError(`--k applies to --method attnlink, not ${method}`);
  if (values.ratio !== undefined && method !== 'cacheblend') throw usageError(`--ratio applies to --method cacheblend, not ${method}`);
  const docIds = store !== undefined ? idsFromFiles(docs, '--doc') : [];
  const opts: GenerateOptions = {
    maxTokens: numbers['max-tokens'] ?? 128,
    temperature: numbers.temperature ?? 0,
    topK: numbers['top-k'],
    topP: numbers['top-p'],
    seed: numbers.seed,
    stop: values.stop,
    ...(values.method !== undefined ? { method } : {}),
    k: numbers.k,
    ratio: numbers.ratio,
  };
  const json = values.json === true;
  if (values['cache-dir'] !== undefined) process.stderr.write('[chunklm] --cache-dir is deprecated: use --store DIR\n');
  const texts = await Promise.all(docs.map((d) => readTextFile(d, '--doc')));
  const system = values.system;
  const input: GenerateInput = documentsRequest
    ? {
        ...(store !== undefined ? { documents: asked === 'all' ? 'all' : unique([...(asked ?? []), ...docIds]) } : { texts }),
        question: prompt,
        ...(system !== undefined ? { system } : {}),
      }
    : values.chat
      ? { messages: [...(system !== undefined ? [{ role: 'system' as const, content: system }] : []), { role: 'user', content: prompt }] }
      : prompt;

  return withEngine({ model, modelCache: values['model-cache'], store, chunkBos, json }, async (engine, signal) => {
    const added: DocumentInfo[] = [];
    for (let i = 0; i < docIds.length; i++) {
      const info = await engine.documents.add({ id: docIds[i], text: texts[i] }, { signal, onProgress: json ? undefined : documentProgress(docIds[i]) });
      if (!json) process.stderr.write(`[chunklm] document ${describeAdded(info)}\n`);
      printWarnings(info.warnings);
      added.push(info);
    }
    const result = await engine.complete(input, { ...opts, signal }, (ev) => {
      if (!json && ev.text.length > 0) process.stdout.write(ev.text);
    });
    if (json) {
      const { promptTokens, tokens, text, ttftMs, prefillTokPerS, decodeTokPerS, finishReason } = result;
      const linked = documentsRequest
        ? {
            reusedTokens: result.reusedTokens,
            recomputedTokens: result.recomputedTokens,
            computedTokens: result.computedTokens,
            chunks: result.chunks,
            droppedChunks: result.droppedChunks ?? 0,
            warnings: result.warnings ?? [],
            ...(added.length > 0 ? { added } : {}),
          }
        : {};
      process.stdout.write(`${JSON.stringify({ promptTokens, tokens, text, ttftMs, prefillTokPerS, decodeTokPerS, finishReason, ...linked })}\n`);
    } else {
      process.stdout.write('\n');
      if (documentsRequest) process.stderr.write(`[chunklm] ${formatChunkUse(result)}\n`);
      printWarnings(result.warnings);
      process.stderr.write(`[chunklm] ${formatMetrics(result)}\n`);
    }
    return 0;
  });
}

async function docsCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === '--help' || sub === '-h' || sub === 'help') return printHelp(docsSections);
  if (sub === 'add') return docsAdd(rest);
  if (sub === 'list') return docsList(rest);
  if (sub === 'remove') return docsRemove(rest);
  if (sub === 'pin') return docsPin(rest);
  if (sub === 'import') return docsImport(rest);
  if (sub === 'stats') return docsStats(rest);
  const subs = 'add, list, remove, pin, import or stats';
  throw usageError(sub === undefined ? `docs needs a subcommand: ${subs}` : `unknown docs subcommand '${sub}' (expected ${subs})`);
}

async function docsAdd(args: string[]): Promise<number> {
  const { values, positionals: files } = parse(args, docsAddFlags, true);
  if (values.help) return printHelp([sections.docsAdd]);
  const model = required(values.model, '--model');
  const store = required(values.store, '--store');
  if (files.length === 0) throw usageError('docs add needs at least one text file');
  if (files.length > 1 && (values.id !== undefined || values.title !== undefined)) throw usageError('--id and --title apply when one file is added');
  const chunkBos = yesNo(values['chunk-bos'], '--chunk-bos');
  const ids = values.id !== undefined ? [values.id] : idsFromFiles(files, 'docs add');
  const texts = await Promise.all(files.map((f) => readTextFile(f, 'document')));
  const json = values.json === true;
  return withEngine({ model, store, chunkBos, json }, async (engine, signal) => {
    const infos: DocumentInfo[] = [];
    for (let i = 0; i < files.length; i++) {
      const info = await engine.documents.add(
        { id: ids[i], text: texts[i], ...(values.title !== undefined ? { title: values.title } : {}), ...(values.pin ? { pin: true } : {}) },
        { signal, onProgress: json ? undefined : documentProgress(ids[i]) },
      );
      if (!json) process.stdout.write(`added ${describeAdded(info)}\n`);
      printWarnings(info.warnings);
      infos.push(info);
    }
    if (json) process.stdout.write(`${JSON.stringify({ documents: infos })}\n`);
    return 0;
  });
}

async function docsList(args: string[]): Promise<number> {
  const { values } = parse(args, docsListFlags);
  if (values.help) return printHelp([sections.docsList]);
  const store = await openFolderStore(required(values.store, '--store'));
  const manifests = (await store.listManifests()).sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  if (store.corruptManifests > 0) process.stderr.write(`[chunklm] warning: ${store.corruptManifests} unreadable manifest file(s) in ${store.dir} were skipped\n`);
  const infos = manifests.map(manifestInfo);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ documents: infos })}\n`);
    return 0;
  }
  if (infos.length === 0) {
    process.stdout.write(`no documents in ${store.dir}\n`);
    return 0;
  }
  const rows = infos.map((d) => [d.id, String(d.chunks), String(d.storedChunks), String(d.tokens), formatBytes(d.bytes), d.pinned ? 'yes' : 'no', formatDate(d.createdAt), d.title]);
  process.stdout.write(`${table([['ID', 'CHUNKS', 'STORED', 'TOKENS', 'BYTES', 'PINNED', 'CREATED (UTC)', 'TITLE'], ...rows])}\n`);
  return 0;
}

async function docsRemove(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, docsRemoveFlags, true);
  if (values.help) return printHelp([sections.docsRemove]);
  const store = await openFolderStore(required(values.store, '--store'));
  const ids = unique(positionals);
  if (ids.length === 0) throw usageError('docs remove needs the ids of the documents to remove');
  // All or nothing: an unknown id removes none of them.
  const missing = (await Promise.all(ids.map(async (id) => ((await store.getManifest(id)) ? undefined : id)))).filter((id) => id !== undefined);
  if (missing.length > 0) {
    throw new InvalidRequestError('unknown-document', `there is no document ${missing.map((id) => `'${id}'`).join(', ')} in ${store.dir}; nothing was removed ('chunklm docs list --store ${store.dir}' lists them)`, { id: missing[0] });
  }
  const { DocumentLibrary } = await import('../engine/documents.ts');
  const library = new DocumentLibrary(store);
  for (const id of ids) await library.remove(id);
  process.stdout.write(values.json ? `${JSON.stringify({ removed: ids })}\n` : ids.map((id) => `removed ${id}\n`).join(''));
  return 0;
}

async function docsPin(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, docsPinFlags, true);
  if (values.help) return printHelp([sections.docsPin]);
  const store = await openFolderStore(required(values.store, '--store'));
  const ids = unique(positionals);
  if (ids.length === 0) throw usageError('docs pin needs the ids of the documents to pin');
  const { DocumentLibrary } = await import('../engine/documents.ts');
  const library = new DocumentLibrary(store);
  const infos: Omit<DocumentInfo, 'currentModel'>[] = [];
  for (const id of ids) {
    const { currentModel: _, ...info } = await library.setPinned(id, values.off !== true);
    infos.push(info);
  }
  process.stdout.write(values.json ? `${JSON.stringify({ documents: infos })}\n` : infos.map((d) => `${d.pinned ? 'pinned' : 'unpinned'} ${d.id}\n`).join(''));
  return 0;
}

async function docsImport(args: string[]): Promise<number> {
  const { values, positionals: files } = parse(args, docsImportFlags, true);
  if (values.help) return printHelp([sections.docsImport]);
  const model = required(values.model, '--model');
  const store = required(values.store, '--store');
  if (files.length === 0) throw usageError('docs import needs at least one .kvpack file');
  const packs = await Promise.all(
    files.map(async (f) => {
      try {
        return new Uint8Array(await readFile(f));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
        throw new InvalidRequestError('read-failed', `cannot read the .kvpack ${f} (${code})`, { path: f, errno: code });
      }
    }),
  );
  const json = values.json === true;
  return withEngine({ model, store, json }, async (engine) => {
    const infos: DocumentInfo[] = [];
    for (const pack of packs) {
      const info = await engine.documents.import(pack);
      if (!json) process.stdout.write(`imported ${describeAdded(info)}\n`);
      infos.push(info);
    }
    if (json) process.stdout.write(`${JSON.stringify({ documents: infos })}\n`);
    return 0;
  });
}

async function docsStats(args: string[]): Promise<number> {
  const { values } = parse(args, docsStatsFlags);
  if (values.help) return printHelp([sections.docsStats]);
  const dir = required(values.store, '--store');
  const json = values.json === true;
  const print = (stats: DocumentStats, forModel?: number): number => {
    if (json) process.stdout.write(`${JSON.stringify({ ...stats, ...(forModel !== undefined ? { documentsForModel: forModel } : {}) })}\n`);
    else process.stdout.write(`${formatStats(dir, stats, forModel)}\n`);
    return 0;
  };
  if (values.model === undefined) {
    const store = await openFolderStore(dir);
    const { DocumentLibrary } = await import('../engine/documents.ts');
    return print(await new DocumentLibrary(store).stats());
  }
  await openFolderStore(dir);
  return withEngine({ model: values.model, store: dir, json }, async (engine) => {
    const forModel = (await engine.documents.list()).filter((d) => d.currentModel).length;
    return print(await engine.documents.stats(), forModel);
  });
}

async function packCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, packFlags, true);
  if (values.help) return printHelp([sections.pack]);
  const model = required(values.model, '--model');
  const out = required(values.out, '--out');
  if (positionals.length !== 1) throw usageError(`pack takes one text file, got ${positionals.length}`);
  const file = positionals[0];
  const id = values.id ?? idsFromFiles([file], 'pack')[0];
  const text = await readTextFile(file, 'document');
  const json = values.json === true;
  // No --store: the document lives in memory for this run; the pack is what is kept.
  return withEngine({ model, chunkBos: yesNo(values['chunk-bos'], '--chunk-bos'), json }, async (engine, signal) => {
    const info = await engine.documents.add({ id, text, ...(values.title !== undefined ? { title: values.title } : {}) }, { signal, onProgress: json ? undefined : documentProgress(id) });
    const pack = await engine.documents.export(id);
    await writeFileAtomically(out, pack);
    if (json) process.stdout.write(`${JSON.stringify({ ...info, out, packBytes: pack.byteLength })}\n`);
    else process.stdout.write(`packed ${info.id}: ${count(info.chunks, 'chunk')}, ${count(info.tokens, 'token')} into ${out} (${formatBytes(pack.byteLength)})\n`);
    return 0;
  });
}

/**
 * Opens an engine on Dawn (with the folder store when given), loads the model, and runs `fn`
 * with a signal that the first Ctrl-C aborts (a second one exits).
 */
async function withEngine(
  opts: { model: string; modelCache?: string; store?: string; chunkBos?: boolean; json: boolean },
  fn: (engine: Engine, signal: AbortSignal) => Promise<number>,
): Promise<number> {
  const url = isUrl(opts.model);
  // A local file is opened before Dawn starts, so a mistyped path fails at once.
  const local = url ? undefined : await openLocalModel(opts.model);
  const ctrl = new AbortController();
  const onSigint = (): void => {
    if (ctrl.signal.aborted) process.exit(130);
    ctrl.abort();
  };
  // Ctrl-C during a download cancels it (the model cache keeps nothing of it).
  process.on('SIGINT', onSigint);
  let close = local?.close;
  try {
    // Imported here so that `tokenize`, `docs list` and usage errors never start Dawn.
    const { openNodeEngine } = await import('./engine-host.ts');
    const { engine, adapterInfo } = await openNodeEngine({
      ...(opts.store !== undefined ? { store: opts.store } : {}),
      ...(opts.chunkBos !== undefined ? { chunks: { chunkBos: opts.chunkBos } } : {}),
    });
    const onProgress = opts.json ? undefined : progressPrinter();
    let bytes: ModelBytes;
    if (local) bytes = local.bytes;
    else {
      const dir = opts.modelCache ?? defaultModelCacheDir();
      const remote = await openRemoteModel(opts.model, {
        cache: new FolderModelCache(dir),
        signal: ctrl.signal,
        onProgress,
        checkFit: (file) => engine.checkFit(file),
      });
      close = remote.close;
      if (!opts.json) for (const f of remote.files) process.stderr.write(`[chunklm] ${f.url}: ${describeFileSource(f.source, dir)}
`);
      printWarnings(remote.warnings);
      bytes = remote;
    }
    const info = await engine.load(bytes, { onProgress, signal: ctrl.signal });
    if (!opts.json) {
      process.stderr.write(
        `[chunklm] ${info.name} (${info.architecture}, ${info.nLayers} layers, dim ${info.dim}, ${info.weightType}, ` +
          `${formatBytes(info.weightBytes)}) on ${adapterInfo}; GPU memory peak ${formatBytes(info.gpuMemory.peakBytes)} ` +
          `(weights ${formatBytes(info.gpuMemory.weightBytes)}, KV ${formatBytes(info.gpuMemory.kvBytes)}, activations ${formatBytes(info.gpuMemory.activationBytes)})\n`,
      );
    }
    try {
      return await fn(engine, ctrl.signal);
    } finally {
      engine.unload();
    }
  } finally {
    process.off('SIGINT', onSigint);
    await close?.();
  }
}

function isUrl(model: string): boolean {
  return /^https?:\/\//i.test(model);
}

/** A model file, or every part of the split model a part's name belongs to. */
async function openLocalModel(path: string): Promise<{ bytes: ByteSource | ByteSource[]; close: () => Promise<void> }> {
  const sources: FileSource[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(sources.map((s) => s.close()));
  };
  try {
    for (const part of splitPartNames(path)) sources.push(await FileSource.open(part));
  } catch (err) {
    await close();
    throw err;
  }
  return { bytes: sources.length === 1 ? sources[0] : sources, close };
}

function describeFileSource(source: ModelFileInfo['source'], dir: string): string {
  if (source === 'cache') return `from the model cache ${dir}`;
  if (source === 'download') return `downloaded into the model cache ${dir}`;
  return 'read over the network (not cached)';
}

/** A FolderStore on a folder that must exist (reading a mistyped path would show an empty store). */
async function openFolderStore(dir: string): Promise<FolderStore> {
  let isDir = false;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) throw new InvalidRequestError('no-store', `there is no store at ${dir} (chunklm docs add --store ${dir} makes one)`, { path: dir });
  return new FolderStore(dir);
}

/** What `docs list` shows of a manifest, without a model (so without currentModel). */
function manifestInfo(m: DocumentManifest): Omit<DocumentInfo, 'currentModel'> {
  const { currentModel: _, ...info } = documentInfo(m);
  return info;
}

async function writeFileAtomically(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    throw new StorageError('write-failed', `cannot write ${path} (${code})`, { path, errno: code }, { cause: err });
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
  const { values } = parse(args, tokenizeFlags);
  if (values.help) return printHelp([sections.tokenize]);
  const model = required(values.model, '--model');
  if ((values.text === undefined) === (values.file === undefined)) throw usageError('give exactly one of --text TEXT or --file PATH');
  const text = values.text ?? (await readTextFile(values.file as string, '--file'));
  // A URL's header is read with Range requests; nothing is downloaded or cached.
  const local = isUrl(model) ? undefined : await openLocalModel(model);
  let tokens: number[];
  try {
    const { openGGUF } = await import('../gguf/split.ts');
    const { createTokenizer } = await import('../tokenizer/index.ts');
    const { UrlSource } = await import('../gguf/source.ts');
    const bytes = local?.bytes ?? (await Promise.all(splitPartNames(model).map((u) => UrlSource.open(u))));
    const { file } = await openGGUF(bytes);
    const tokenizer = createTokenizer(file.metadata);
    for (const notice of tokenizer.notices) process.stderr.write(`[chunklm] note: ${notice}\n`);
    tokens = tokenizer.encode(text, { addBos: values['add-bos'] === true, parseSpecial: values['parse-special'] === true });
  } finally {
    await local?.close();
  }
  process.stdout.write(values.json ? `${JSON.stringify({ tokens })}\n` : `${tokens.join(' ')}\n`);
  return 0;
}

async function readTextFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    throw new InvalidRequestError('read-failed', `cannot read ${what} ${path} (${code})`, { path, errno: code });
  }
}

/**
 * Load progress on stderr: one line rewritten in place on a terminal (bytes, speed, time left);
 * elsewhere a line per file downloaded and one every few seconds while it downloads.
 */
function progressPrinter(): (p: LoadProgress) => void {
  const clearLine = '\r\x1b[2K';
  const tty = process.stderr.isTTY;
  let file: string | undefined;
  let lastLine = 0;
  return withRate((p) => {
    if (p.phase === 'download' && p.file !== file) {
      file = p.file;
      if (!tty) process.stderr.write(`[chunklm] downloading ${file}\n`);
    }
    if (tty) {
      process.stderr.write(p.phase === 'ready' ? clearLine : `${clearLine}[chunklm] loading: ${formatLoadProgress(p)}`);
    } else if (p.phase === 'download' && Date.now() - lastLine >= PROGRESS_LINE_MS) {
      lastLine = Date.now();
      process.stderr.write(`[chunklm] ${formatLoadProgress(p)}\n`);
    }
  });
}

/** Off a terminal, a download reports a line this often. */
const PROGRESS_LINE_MS = 5000;

/** Chunks of a document being read, on one terminal line. */
function documentProgress(id: string): ((p: DocumentProgress) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  const clearLine = '\r\x1b[2K';
  return (p) => {
    if (p.phase === 'done') process.stderr.write(clearLine);
    else process.stderr.write(`${clearLine}[chunklm] reading ${id} (${p.phase}) ${p.done}/${p.total} chunks`);
  };
}

function printWarnings(warnings: readonly string[] | undefined): void {
  for (const w of warnings ?? []) process.stderr.write(`[chunklm] warning: ${w}\n`);
}

function describeAdded(d: DocumentInfo): string {
  return `${d.id}: ${count(d.chunks, 'chunk')} (${d.computedChunks ?? 0} computed), ${count(d.tokens, 'token')}, ${formatBytes(d.bytes)}${d.pinned ? ', pinned' : ''}`;
}

/** Where the chunks' KV came from and how the prompt's tokens were spent. */
function formatChunkUse(r: GenerationResult): string {
  const bySource = new Map<string, number>();
  for (const c of r.chunks ?? []) bySource.set(c.source, (bySource.get(c.source) ?? 0) + 1);
  const sources = [...bySource].map(([s, n]) => `${n} ${s === 'computed' ? 'computed' : `from ${s}`}`).join(', ');
  const dropped = r.droppedChunks ? `, ${r.droppedChunks} left out (did not fit the context)` : '';
  return `${count(r.chunks?.length ?? 0, 'chunk')} (${sources || 'none'})${dropped}; ${r.reusedTokens ?? 0} tokens reused, ${r.recomputedTokens ?? 0} recomputed, ${r.computedTokens ?? 0} computed`;
}

function formatStats(dir: string, s: DocumentStats, forModel: number | undefined): string {
  const st = s.tiers.store;
  const lines = [
    `store ${dir}`,
    `documents ${s.documents}${forModel !== undefined ? ` (${forModel} read for this model)` : ''}`,
    `chunks ${s.chunks} (${st.chunks} stored, ${formatBytes(st.bytes)}), ${s.tokens} tokens`,
    `budget ${Number.isFinite(st.budgetBytes) ? formatBytes(st.budgetBytes) : 'unlimited'}` +
      (st.usageBytes !== undefined && st.quotaBytes !== undefined ? `; folder ${formatBytes(st.usageBytes)} of ${formatBytes(st.quotaBytes)} usable` : ''),
  ];
  if (s.collected > 0) lines.push(`collected ${s.collected} chunk file(s) no document named`);
  if (s.corrupt > 0) lines.push(`corrupt records recomputed ${s.corrupt}`);
  for (const w of s.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function table(rows: readonly string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')).join('\n');
}

function formatDate(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

export function formatMetrics(r: GenerationResult): string {
  return (
    `${r.promptTokens.length} prompt tokens, ${r.tokens.length} generated (${r.finishReason}); ` +
    `TTFT ${r.ttftMs.toFixed(1)} ms, prefill ${r.prefillTokPerS.toFixed(1)} tok/s, decode ${r.decodeTokPerS.toFixed(1)} tok/s`
  );
}
