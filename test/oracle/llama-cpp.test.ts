// chunklm against llama.cpp (its prebuilt CPU build, through node-llama-cpp), an implementation
// that shares no code with it.
//
// Forward pass: for every architecture chunklm runs and the weight formats `quantize` writes (all
// of them on llama, three on the others: see formatsFor), a tiny synthetic model decodes 16 greedy
// tokens on chunklm's GPU path (Dawn) and in llama.cpp.
//   - llama.cpp on an F32 copy of the same dequantized weights is the reference: it computes in f32
//     as chunklm does (f32 activations, f32 KV on both sides), so the greedy tokens must be equal
//     and the logits agree to float rounding.
//   - llama.cpp on the quantized file itself rounds the activations to 8 bits (F16/BF16: to 16)
//     before each product on the CPU, so it may part ways where two logits are close. That run is
//     reported (top-1 agreement, the margin where it first diverges); the one assertion is that the
//     first token agrees whenever the reference's margin there exceeds twice the largest logit
//     change the 8-bit rounding made at that step, i.e. wherever no rounding could swap the top two.
// The models use `successorLead` (see synthetic.ts), so most steps have clear margins.
// Combinations chunklm cannot write or run yet are listed as skipped, with the reason.
//
// Tokenizers: chunklm's encode against llama_tokenize on the vocab-only GGUFs of ../shared/vocab,
// with and without special-token parsing, and a synthetic llama model carrying the llama-spm
// vocabulary run from a text prompt to the text of its greedy tokens. The table of results is
// printed at the end.
import { afterAll, describe, expect, it } from 'vitest';
import { UnsupportedModelError } from '../../src/errors.ts';
import { GGMLType, ggmlTypeName, quantize } from '../../src/gguf/quant.ts';
import { FileSource } from '../../src/gguf/node-file-source.ts';
import { MemorySource } from '../../src/gguf/source.ts';
import { parseGGUF } from '../../src/gguf/reader.ts';
import { metadataFromFile } from '../../src/gguf/writer.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { WEIGHT_TYPES } from '../../src/gpu/weights.ts';
import { SUPPORTED_ARCHITECTURES } from '../../src/model/config.ts';
import type { GpuModel } from '../../src/model/gpu-model.ts';
import { makeSyntheticModel, type SyntheticArchitecture, type SyntheticSpec } from '../../src/model/synthetic.ts';
import { acquireNodeDevice } from '../../src/node/gpu.ts';
import { fsShaderSources } from '../../src/node/shaders-fs.ts';
import { createTokenizer, type Tokenizer } from '../../src/tokenizer/index.ts';
import { dequantizedCopy, LlamaCppModel, llamaCppMissing, scratchDir, top2 } from '../helpers/llama-cpp.ts';
import { GREEDY, loadGpuModel } from '../helpers/model.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';

const missing = llamaCppMissing();
const STEPS = 16;
/**
 * Largest |chunklm − reference| logit allowed, relative to the reference's largest |logit|: float
 * rounding (the observed errors are ~3e-7), except where llama.cpp itself rounds. Its CPU GELU
 * (gemma3's FFN) rounds the input to f16 and looks the result up in a table, up to 4e-3 off per
 * activation, which moves gemma3's logits by a few 1e-4.
 */
function logitTolerance(arch: string): number {
  return arch === 'gemma3' ? 2e-3 : 1e-4;
}

const TYPES = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q4_K', 'Q5_K', 'Q6_K'] as const;

/** Why a weight format cannot run end to end yet, or undefined when it can. */
function formatGap(type: number): string | undefined {
  try {
    quantize(type, new Float32Array(256));
  } catch (err) {
    return `quantize() cannot write ${ggmlTypeName(type)} yet (${(err as Error).message})`;
  }
  if (!(WEIGHT_TYPES as readonly number[]).includes(type)) return `chunklm's GPU kernels do not read ${ggmlTypeName(type)} matrices yet`;
  return undefined;
}

/**
 * Rows of 256 (whole K-quant super-blocks), GQA 2, head size 64; per architecture the features that
 * set it apart (gemma3: a local layer with a window of 8, then a global one). Two layers for F32,
 * so the KV of a second layer is checked too, and one for the other formats, whose kernels are the
 * same in every layer: on SwiftShader each layer of each decode step costs a good part of a second.
 * qwen2's F32 model has a tied head (token_embd as the output, as Qwen2.5 has), so without
 * successorLead: the reference comparison does not need wide margins, only the quantized run does.
 */
function specFor(architecture: SyntheticArchitecture, weightType: number): SyntheticSpec {
  const tied = architecture === 'qwen2' && weightType === GGMLType.F32;
  const spec: SyntheticSpec = {
    architecture,
    weightType,
    nLayers: weightType === GGMLType.F32 || architecture === 'gemma3' ? 2 : 1,
    dim: 256,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 64,
    ffnDim: 512,
    vocabSize: 384,
    contextLength: 256,
    ropeBase: architecture === 'llama' ? 10000 : 1e6,
    seed: 11,
    tiedOutput: tied,
    successorLead: tied ? undefined : 4,
  };
  if (architecture === 'gemma3') Object.assign(spec, { slidingWindow: 8, slidingWindowPattern: 2 });
  return spec;
}

/** A prompt of synthetic-vocabulary pieces after BOS. */
const PROMPT = [1, 300, 301, 302, 303, 304];

interface Row {
  model: string;
  /** chunklm's tokens equal llama.cpp's on the F32 copy. */
  reference: string;
  worstLogitError: number;
  /** llama.cpp on the quantized file. */
  quantized: string;
}
const rows: Row[] = [];
const scratch = missing ? undefined : scratchDir();
const started = performance.now();

afterAll(() => {
  scratch?.cleanup();
  if (rows.length === 0) return;
  const lines = rows.map((r) => `  ${r.model.padEnd(26)} ${r.reference.padEnd(16)} ${r.worstLogitError.toExponential(1).padEnd(8)} ${r.quantized}`);
  console.log(
    `llama.cpp oracle (${((performance.now() - started) / 1000).toFixed(0)} s):\n` +
      `  ${'model'.padEnd(26)} ${'vs F32 copy'.padEnd(16)} ${'logit err'.padEnd(8)} llama.cpp on the quantized file (8-bit activations)\n${lines.join('\n')}`,
  );
});

/** chunklm's greedy tokens with the logits it chose each one from. */
async function chunklmGreedy(model: GpuModel, prompt: readonly number[], n: number): Promise<{ tokens: number[]; logits: Float32Array[] }> {
  await model.beginSequence();
  const tokens = [await model.prefill([...prompt], GREEDY)];
  const logits = [await model.readLogits()];
  while (tokens.length < n) {
    tokens.push(await model.decode(GREEDY));
    logits.push(await model.readLogits());
  }
  return { tokens, logits };
}

let gpu: Promise<GpuContext> | undefined;

/** The test GPU, with a uniform arena large enough for the few dozen models loaded one after another. */
function oracleContext(): Promise<GpuContext> {
  gpu ??= acquireNodeDevice().then((d) => new GpuContext(d.device, d.features, fsShaderSources(), { arenaSlots: 8192 }));
  return gpu;
}

/** Opens `bytes` on the test GPU, or says why chunklm refuses the model. */
async function openOnGpu(bytes: Uint8Array): Promise<{ model: GpuModel } | { refused: string }> {
  try {
    return await loadGpuModel(await oracleContext(), bytes, 64);
  } catch (err) {
    if (err instanceof UnsupportedModelError) return { refused: err.message };
    throw err;
  }
}

function relativeError(a: Float32Array, ref: Float32Array): number {
  let d = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    d = Math.max(d, Math.abs(a[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return d / scale;
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/**
 * Runs one model through chunklm and both llama.cpp runs, asserts the reference comparison and the
 * clear-margin rule, and records a row. Returns chunklm's tokens.
 */
async function compareWithLlamaCpp(
  name: string,
  bytes: Uint8Array,
  prompt: readonly number[],
  vocabSize: number,
  opts: { tolerance: number; steps: number },
  skip: (why: string) => void,
): Promise<number[] | undefined> {
  const { tolerance, steps } = opts;
  const opened = await openOnGpu(bytes);
  if ('refused' in opened) {
    skip(`chunklm refuses the model: ${opened.refused}`);
    return undefined;
  }
  let ours: { tokens: number[]; logits: Float32Array[] };
  try {
    ours = await chunklmGreedy(opened.model, prompt, steps);
  } finally {
    opened.model.destroy();
  }

  const file = await parseGGUF(new MemorySource(bytes));
  const isF32 = file.tensors.every((t) => t.type === GGMLType.F32);
  const fileName = name.replaceAll(' ', '-');
  const quantizedPath = scratch!.write(`${fileName}.gguf`, bytes);
  const referencePath = isF32 ? quantizedPath : scratch!.write(`${fileName}-f32.gguf`, await dequantizedCopy(bytes));

  const reference = await LlamaCppModel.open(referencePath, vocabSize);
  const ref = await reference.greedy(prompt, steps);
  await reference.dispose();

  // The reference: the same tokens, each chosen from logits equal to float rounding.
  const diverged = ref.tokens.findIndex((t, i) => t !== ours.tokens[i]);
  const worst = Math.max(...ref.logits.slice(0, diverged < 0 ? steps : diverged).map((l, i) => relativeError(ours.logits[i], l)));
  let quantized = 'same file';
  if (!isF32) {
    const q = await LlamaCppModel.open(quantizedPath, vocabSize);
    const free = await q.greedy(prompt, steps);
    const forced = await q.logitsAlong([...prompt, ...ours.tokens.slice(0, -1)], prompt.length);
    await q.dispose();
    const agree = forced.filter((l, i) => top2(l).first === ours.tokens[i]).length;
    const split = free.tokens.findIndex((t, i) => t !== ours.tokens[i]);
    const at = split < 0 ? '' : `; first split at step ${split}, llama.cpp's margin there ${(free.logits[split][free.tokens[split]] - free.logits[split][ours.tokens[split]]).toFixed(3)}`;
    quantized = `top-1 ${agree}/${steps} on chunklm's tokens, same prefix ${split < 0 ? steps : split}/${steps}${at}`;
    // No rounding of this size could swap the first step's top two: llama.cpp must agree there.
    const change = maxAbsDifference(free.logits[0], ref.logits[0]);
    const margin = top2(ref.logits[0]).margin;
    if (margin > 2 * change) {
      expect(free.tokens[0], `${name}: llama.cpp on the quantized file picks another first token although the margin ${margin.toFixed(3)} exceeds twice the rounding's largest logit change ${change.toFixed(3)}`).toBe(ours.tokens[0]);
    }
  }
  rows.push({ model: name, reference: diverged < 0 ? `${steps}/${steps} equal` : `split at ${diverged}`, worstLogitError: worst, quantized });

  if (diverged >= 0) {
    const [a, b] = [ours.tokens[diverged], ref.tokens[diverged]];
    const theirs = ref.logits[diverged][b] - ref.logits[diverged][a];
    const mine = ours.logits[diverged][a] - ours.logits[diverged][b];
    expect.fail(
      `${name}: chunklm's greedy tokens part from llama.cpp's on the F32 copy at step ${diverged} (chunklm ${a}, llama.cpp ${b}); ` +
        `margins between the two: llama.cpp ${theirs.toExponential(2)}, chunklm ${mine.toExponential(2)}${Math.max(theirs, mine) < 1e-3 ? ' (a near tie)' : ''}; ` +
        `chunklm ${ours.tokens.join(' ')} / llama.cpp ${ref.tokens.join(' ')}`,
    );
  }
  expect(worst, `${name}: logits differ from llama.cpp's on the F32 copy by ${worst.toExponential(2)} of the largest logit`).toBeLessThan(tolerance);
  return ours.tokens;
}

/**
 * Every format on llama; on every other architecture F32 (the two-layer reference), Q8_0 and Q4_K (a
 * 32-value block and a K-quant super-block). A format's kernels are the same under every
 * architecture, and each case costs seconds on SwiftShader: the whole cross product would take many
 * minutes.
 */
function formatsFor(arch: string): readonly (typeof TYPES)[number][] {
  return arch === 'llama' ? TYPES : ['F32', 'Q8_0', 'Q4_K'];
}

describe.skipIf(missing)(missing ?? 'llama.cpp oracle: greedy decoding of synthetic models, architectures × weight formats', () => {
  for (const arch of SUPPORTED_ARCHITECTURES) {
    for (const typeName of formatsFor(arch)) {
      const type = GGMLType[typeName];
      const gap = formatGap(type);
      const title = `${arch} ${typeName}: ${STEPS} greedy tokens equal llama.cpp's on the F32 copy; the quantized run reported`;
      it.skipIf(gap !== undefined)(gap ? `${arch} ${typeName}: skipped: ${gap}` : title, async (ctx) => {
        const bytes = makeSyntheticModel(specFor(arch as SyntheticArchitecture, type));
        await compareWithLlamaCpp(`${arch} ${typeName}`, bytes, PROMPT, 384, { tolerance: logitTolerance(arch), steps: STEPS }, (why) => ctx.skip(why));
      });
    }
  }
});

/** Strings that exercise spaces, Unicode, byte fallback, digits, code and control-looking text. */
const TEXTS = [
  'Hello world',
  ' leading space,  two  spaces and a trailing one ',
  'Unicode: café, naïve, 日本語, 🦙 and \u00a0no-break',
  '\n\ttabs\tand\n\nnewlines\r\n',
  'numbers 1234567 3.14159 and code: if (x <= 3) { return "</s>"; }',
];

/**
 * The texts of the vocab's end-of-generation tokens (`</s>`, `<|end|>`, ...) and of about `n` of its
 * other special tokens (control, user-defined, unknown), spread over their ids.
 */
function specialTexts(tok: Tokenizer, n: number): string[] {
  const ids: number[] = [];
  for (let id = 0; id < tok.vocabSize; id++) if (tok.isSpecial(id)) ids.push(id);
  const step = Math.max(1, Math.ceil(ids.length / n));
  const picked = new Set([...tok.eotIds, ...ids.filter((_, i) => i % step === 0)]);
  return [...picked].map((id) => tok.tokenText(id));
}

const VOCABS = ['llama-spm', 'phi-3', 'gpt-2', 'deepseek-coder', 'falcon'] as const;

describe.skipIf(missing)(missing ?? 'llama.cpp oracle: tokenizers of the vocab-only GGUFs', () => {
  for (const name of VOCABS) {
    const path = sharedFile(`vocab/ggml-vocab-${name}.gguf`);
    it.skipIf(!path)(path ? `${name}: encode equals llama_tokenize with and without special-token parsing` : missingShared(`vocab/ggml-vocab-${name}.gguf`), async () => {
      const src = await FileSource.open(path!);
      const tok = createTokenizer((await parseGGUF(src)).metadata);
      await src.close();
      const ref = await LlamaCppModel.open(path!, tok.vocabSize, { vocabOnly: true });
      try {
        // Each special token's text alone, inside words, and twice with a space between.
        const texts = [...TEXTS, ...specialTexts(tok, 24).flatMap((t) => [t, `a${t}b`, `${t} ${t}`])];
        const wrong: string[] = [];
        for (const parseSpecial of [false, true]) {
          for (const text of texts) {
            const ours = tok.encode(text, { parseSpecial });
            const theirs = ref.tokenize(text, parseSpecial);
            if (JSON.stringify(ours) !== JSON.stringify(theirs)) wrong.push(`${JSON.stringify(text)} parseSpecial=${parseSpecial}: chunklm [${ours}] llama.cpp [${theirs}]`);
          }
        }
        expect(wrong).toEqual([]);
      } finally {
        await ref.dispose();
      }
    });
  }
});

/**
 * A synthetic model carrying a real vocabulary, run from a text prompt. Narrow (dim 64) and only 4
 * steps: on SwiftShader a decode step with a head of 32000 rows takes seconds (a 50257-row head,
 * gpt-2's, twice that, so the byte-level BPE vocabularies are compared by the tokenizer tests above).
 */
const VOCAB_MODELS = [{ vocab: 'llama-spm', architecture: 'llama' }] as const;
const VOCAB_STEPS = 4;

describe.skipIf(missing)(missing ?? 'llama.cpp oracle: synthetic models with a real vocabulary, from text to text', () => {
  for (const m of VOCAB_MODELS) {
    const path = sharedFile(`vocab/ggml-vocab-${m.vocab}.gguf`);
    const title = `${m.architecture} Q8_0 with the ${m.vocab} vocab: prompt tokens, ${VOCAB_STEPS} greedy tokens and their text equal llama.cpp's`;
    it.skipIf(!path)(path ? title : missingShared(`vocab/ggml-vocab-${m.vocab}.gguf`), async (ctx) => {
      const src = await FileSource.open(path!);
      const vocabFile = await parseGGUF(src);
      await src.close();
      const tok = createTokenizer(vocabFile.metadata);
      const spec: SyntheticSpec = {
        ...specFor(m.architecture, GGMLType.Q8_0),
        nLayers: 1,
        dim: 64,
        nHeads: 2,
        nKvHeads: 1,
        headDim: 32,
        ffnDim: 128,
        vocab: metadataFromFile(vocabFile),
      };
      const bytes = makeSyntheticModel(spec);
      const text = 'Once upon a time, in a small town by the sea, there lived';
      const prompt = tok.encode(text, { addBos: tok.addBos });
      const vocabOnly = await LlamaCppModel.open(scratch!.write(`${m.vocab}-vocab.gguf`, bytes), tok.vocabSize, { vocabOnly: true });
      try {
        // The model file's tokenizer, as llama.cpp reads it from the model, on the prompt and a few strings.
        expect(prompt).toEqual([...(tok.addBos ? [tok.bosId] : []), ...vocabOnly.tokenize(text, false)]);
        for (const t of TEXTS) expect(tok.encode(t), JSON.stringify(t)).toEqual(vocabOnly.tokenize(t, false));
        const tokens = await compareWithLlamaCpp(`${m.architecture} ${m.vocab}`, bytes, prompt, tok.vocabSize, { tolerance: logitTolerance(m.architecture), steps: VOCAB_STEPS }, (why) =>
          ctx.skip(why),
        );
        if (tokens) expect(tok.decode(tokens, { skipSpecial: true })).toBe(vocabOnly.detokenize(tokens, false));
      } finally {
        await vocabOnly.dispose();
      }
    });
  }
});
