// Writes test/fixtures/stories260K-golden.json: the greedy token ids stories260K produces, from the
// project's CPU reference (src/model/cpu-reference.ts), for the tests that check the GPU path in
// Node and in the browser against them. `npx tsx scripts/golden-stories.ts [--check]`; --check
// compares with the file instead of writing it (exit status 1 when they differ).
// Two cases: 60 tokens from BOS alone (the start of llama2.c's published stories260K sample), and
// the prompt 'Once upon a time' as the engine and CLI tokenize it (BOS added), 40 tokens at most,
// ending before an end-of-generation token as the engine does.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileSource } from '../src/gguf/node-file-source.ts';
import { parseGGUF } from '../src/gguf/reader.ts';
import { CpuModel, cpuGenerate } from '../src/model/cpu-reference.ts';
import { createTokenizer } from '../src/tokenizer/index.ts';
import { demoModelName, projectRoot, sharedRoot } from './setup.mjs';

/** The opening of the stories260K sample at temperature 0 in llama2.c's README (`./run stories260K.bin -z tok512.bin -t 0.0`). */
const LLAMA2C_SAMPLE =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ' +
  'One day, she saw a big, red ball. She wanted to play with it, but it was too high.';
const PROMPT = 'Once upon a time';
const out = join(projectRoot, 'test', 'fixtures', 'stories260K-golden.json');

const path = join(sharedRoot, 'models', demoModelName);
const source = await FileSource.open(path);
const file = await parseGGUF(source);
const model = await CpuModel.load(source, file);
const tokenizer = createTokenizer(file.metadata);

const fromBosTokens = cpuGenerate(model, [tokenizer.bosId], 60);
const fromBosText = tokenizer.decode(fromBosTokens);
/** Both cases must be the published sample, token for token of its text. */
function checkSample(what: string, text: string): void {
  if (text.length < 100 || !LLAMA2C_SAMPLE.startsWith(text)) throw new Error(`${what} is not llama2.c's sample: ${JSON.stringify(text)}`);
}
checkSample('greedy from BOS', fromBosText.trimStart());

const promptTokens = tokenizer.encode(PROMPT, { addBos: tokenizer.addBos, parseSpecial: false });
const raw = cpuGenerate(model, promptTokens, 40);
const end = raw.findIndex((id) => tokenizer.eotIds.has(id));
const promptOut = end < 0 ? raw : raw.slice(0, end);
await source.close?.();
checkSample(`'${PROMPT}' and its continuation`, tokenizer.decode([...promptTokens, ...promptOut], { skipSpecial: true }).trimStart());

const golden = {
  about:
    'Greedy (temperature 0) token ids of stories260K, from the CPU reference (scripts/golden-stories.ts). ' +
    "fromBos starts with llama2.c's published sample; prompt is the engine's tokenization of the text (BOS added) " +
    'and its continuation up to maxTokens, ending before an end-of-generation token.',
  model: { file: demoModelName, sha256: createHash('sha256').update(readFileSync(path)).digest('hex') },
  fromBos: { promptTokens: [tokenizer.bosId], maxTokens: 60, tokens: fromBosTokens, text: fromBosText },
  prompt: {
    text: PROMPT,
    promptTokens,
    maxTokens: 40,
    tokens: promptOut,
    finishReason: end < 0 ? 'length' : 'eos',
    output: tokenizer.decode(promptOut),
  },
};
const json = `${JSON.stringify(golden, null, 2).replace(/\[\s+([\d,\s]+?)\s+\]/g, (_, ids: string) => `[${ids.split(/,\s*/).join(', ')}]`)}\n`;
if (process.argv.includes('--check')) {
  const same = readFileSync(out, 'utf8') === json;
  process.stdout.write(same ? `${out} matches the CPU reference\n` : `${out} differs from the CPU reference\n`);
  process.exit(same ? 0 : 1);
}
writeFileSync(out, json);
process.stdout.write(json);
