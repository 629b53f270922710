import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../src/errors.ts';
import { FileSource } from '../../src/gguf/node-file-source.ts';
import { parseGGUF } from '../../src/gguf/reader.ts';
import { chunkId, encodeChunkIdInput, fingerprintFromParts, type ChunkIdInput } from '../../src/kv/chunk-id.ts';
import { resolveChunkerSettings, splitDocument, type DocumentChunk } from '../../src/kv/chunker.ts';
import { createTokenizer, type Tokenizer } from '../../src/tokenizer/index.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';

async function loadTokenizer(path: string): Promise<Tokenizer> {
  const src = await FileSource.open(path);
  try {
    return createTokenizer((await parseGGUF(src)).metadata);
  } finally {
    await src.close();
  }
}

// Sentences with distinct words, so that paragraphs built from them differ.
const SENTENCES = [
  'Once upon a time, there was a little girl named Lily.',
  'She liked to play outside in the park with her friends.',
  'One day, she saw a big red ball under a tree.',
  'The ball was shiny and she wanted to take it home.',
  'Her mom said that the ball belonged to another boy.',
  'Lily felt sad, but she gave the ball back to him.',
  'The boy smiled and asked her to play together.',
  'They ran and laughed until the sun went down.',
  'At night, Lily dreamed of balls and trees and friends.',
  'Tom had a small dog that liked to bark at cars.',
  'Every morning the dog waited by the door for him.',
  'When it rained, they stayed inside and read books.',
];

const TARGET = 48;

/** Paragraphs of whole sentences, each between 55% and 100% of the target, so two never fit together. */
function paragraphsNear(tok: Tokenizer, n: number, offset: number): string[] {
  const out: string[] = [];
  let i = offset;
  while (out.length < n) {
    let p = SENTENCES[i++ % SENTENCES.length];
    while (tok.encode(p).length < 0.55 * TARGET) p += ' ' + SENTENCES[i++ % SENTENCES.length];
    if (tok.encode(p).length <= TARGET) out.push(p);
  }
  return out;
}

/** Checks that hold for every split: exact cover, faithful tokens, the cap, the whitespace convention. */
function expectFaithful(doc: string, chunks: DocumentChunk[], tok: Tokenizer, maxTokens: number): void {
  expect(chunks.map((c) => c.text).join('')).toBe(doc);
  let at = 0;
  for (const [i, c] of chunks.entries()) {
    expect(c.index).toBe(i);
    expect(c.start).toBe(at);
    expect(c.end).toBe(at + c.text.length);
    expect(doc.slice(c.start, c.end)).toBe(c.text);
    at = c.end;
    expect(c.text.length).toBeGreaterThan(0);
    expect(c.tokens).toEqual(tok.encode(c.text, { addBos: false }));
    expect(c.tokens.length).toBeLessThanOrEqual(maxTokens);
    // decode gives the text back; SentencePiece writes it after the one space it prefixed.
    expect(tok.decode(c.tokens)).toBe(c.text);
    if (tok.model === 'llama') {
      expect(tok.tokenText(c.tokens[0]).startsWith('\u2581')).toBe(true);
      expect(tok.decode(c.tokens, { stripLeadingSpace: false })).toBe(' ' + c.text);
    }
    if (i > 0) expect(c.text).toMatch(/^\S/);
  }
  expect(at).toBe(doc.length);
}

const VOCABS = [
  { name: 'stories260K (SentencePiece)', rel: 'models/stories260K.gguf' },
  { name: 'gpt-2 (byte-level BPE)', rel: 'vocab/ggml-vocab-gpt-2.gguf' },
];

for (const vocab of VOCABS) {
  const path = sharedFile(vocab.rel);
  describe.skipIf(!path)(`splitDocument with ${vocab.name}${path ? '' : `: ${missingShared(vocab.rel)}`}`, () => {
    let tok: Tokenizer;
    beforeAll(async () => {
      tok = await loadTokenizer(path!);
    });

    it('covers a mixed document exactly with faithful tokens under the cap, deterministically', async () => {
      const doc = [
        '  # Title\n\n',
        paragraphsNear(tok, 3, 0).join('\n\n'),
        '\n\n## Code\n\n```python\n# not a heading\nx = 1  # comment\n```\n\n',
        SENTENCES.join(' ').repeat(3),
        '\n\nÜnïcödé 😀 text — with “quotes.” 日本語の文です。次の文です。\n',
        'word '.repeat(200),
        'y'.repeat(400),
        '\n\n\n',
      ].join('');
      const chunks = splitDocument(doc, tok, { targetTokens: TARGET });
      expect(chunks.length).toBeGreaterThan(8);
      expectFaithful(doc, chunks, tok, resolveChunkerSettings({ targetTokens: TARGET }).maxTokens);
      // The same input gives the same chunks, with this tokenizer or a fresh one.
      expect(splitDocument(doc, tok, { targetTokens: TARGET })).toEqual(chunks);
      expect(splitDocument(doc, await loadTokenizer(path!), { targetTokens: TARGET })).toEqual(chunks);
      // The '#' lines inside the code fence are not headings: no chunk starts there.
      expect(chunks.some((c) => c.text.startsWith('# not a heading'))).toBe(false);
    });

    it('keeps paragraphs whole when each fits the target and no two do', () => {
      const paras = paragraphsNear(tok, 5, 3);
      for (let i = 1; i < paras.length; i++) expect(tok.encode(`${paras[i - 1]}\n\n${paras[i]}`).length).toBeGreaterThan(TARGET);
      const doc = paras.join('\n\n');
      const chunks = splitDocument(doc, tok, { targetTokens: TARGET });
      expect(chunks.map((c) => c.text)).toEqual(paras.map((p, i) => (i < paras.length - 1 ? `${p}\n\n` : p)));
    });

    it('packs small paragraphs together up to the target', () => {
      const small = SENTENCES.slice(0, 8);
      const doc = small.join('\n\n');
      const chunks = splitDocument(doc, tok, { targetTokens: TARGET });
      expectFaithful(doc, chunks, tok, 2 * TARGET);
      expect(chunks.length).toBeLessThan(small.length);
      for (const c of chunks) expect(c.text).toMatch(/\.(\n\n)?$/); // every cut at a paragraph break
      // Greedy: each chunk could not have taken the next paragraph within the target.
      for (let i = 0; i + 1 < chunks.length; i++) {
        const next = chunks[i + 1].text;
        const nextPara = next.includes('\n\n') ? next.slice(0, next.indexOf('\n\n') + 2) : next;
        expect(tok.encode(chunks[i].text + nextPara).length).toBeGreaterThan(TARGET);
      }
    });

    it('cuts a long paragraph at the first sentence end past the target (EPIC), within 1.5x', () => {
      const doc = SENTENCES.join(' ').repeat(2).replaceAll('.O', '. O');
      const chunks = splitDocument(doc, tok, { targetTokens: TARGET });
      expectFaithful(doc, chunks, tok, 2 * TARGET);
      expect(chunks.length).toBeGreaterThan(2);
      for (const c of chunks.slice(0, -1)) {
        expect(c.text).toMatch(/\. $/);
        expect(c.tokens.length).toBeLessThanOrEqual(1.5 * TARGET);
        // Without its last sentence the chunk would fit the target: it extended to the next end only.
        const previousEnd = c.text.slice(0, -2).lastIndexOf('. ');
        if (previousEnd >= 0) expect(tok.encode(c.text.slice(0, previousEnd + 2)).length).toBeLessThanOrEqual(TARGET);
      }
    });

    it('falls back to line breaks when sentences run past 1.5x the target', () => {
      // Lines of words with no sentence punctuation, in one paragraph.
      const lines = Array.from({ length: 40 }, (_, i) => `item ${i} has the colour blue and a long name`);
      const doc = lines.join('\n');
      const chunks = splitDocument(doc, tok, { targetTokens: TARGET });
      expectFaithful(doc, chunks, tok, 2 * TARGET);
      for (const c of chunks.slice(0, -1)) expect(c.text.endsWith('\n')).toBe(true);
    });

    it('cuts one enormous sentence at the token budget, at word boundaries, then inside one enormous word', () => {
      const words = Array.from({ length: 300 }, (_, i) => `w${i}`).join(' ');
      const chunks = splitDocument(words, tok, { targetTokens: TARGET });
      expectFaithful(words, chunks, tok, 2 * TARGET);
      expect(chunks.length).toBeGreaterThan(3);
      for (const [i, c] of chunks.slice(0, -1).entries()) {
        expect(c.text.endsWith(' ')).toBe(true);
        expect(c.tokens.length).toBeLessThanOrEqual(TARGET);
        // It took every word that fit: one more word and its space would pass the target.
        const nextWord = chunks[i + 1].text.split(' ')[0] + ' ';
        expect(tok.encode(c.text + nextWord).length).toBeGreaterThan(TARGET);
      }
      const word = 'abcdefghij'.repeat(100);
      const cut = splitDocument(word, tok, { targetTokens: TARGET });
      // No cut lands inside a run of spaces after an abbreviation-like period.
      const spaced = Array.from({ length: 60 }, (_, i) => `Item ${i} e.g.   next one.  `).join('');
      expectFaithful(spaced, splitDocument(spaced, tok, { targetTokens: TARGET }), tok, 2 * TARGET);
      expectFaithful(word, cut, tok, 2 * TARGET);
      expect(cut.length).toBeGreaterThan(1);
      for (const c of cut.slice(0, -1)) expect(c.tokens.length).toBeLessThanOrEqual(TARGET);
    });

    it('never splits a surrogate pair when it must cut inside a word', () => {
      const doc = '😀'.repeat(300);
      const chunks = splitDocument(doc, tok, { targetTokens: TARGET });
      expectFaithful(doc, chunks, tok, 2 * TARGET);
      for (const c of chunks) expect(c.text).toMatch(/^(?:😀)+$/u);
    });

    it('starts a new chunk at each heading once the current chunk holds minTokens', () => {
      // Indented headings too: their indentation stays with the chunk before.
      const headings = ['# One', '  ## Two', '### Three', ' ## Four'];
      const doc = headings.map((h, i) => `${h}\n\n${SENTENCES[i]}. e.g.  not a sentence end`).join('\n\n');
      // The whole document would fit one chunk; the headings still cut it.
      expect(tok.encode(doc).length).toBeLessThanOrEqual(4 * TARGET);
      const chunks = splitDocument(doc, tok, { targetTokens: 4 * TARGET, minTokens: 8 });
      expectFaithful(doc, chunks, tok, 8 * TARGET);
      expect(chunks.map((c) => c.start)).toEqual(headings.map((h) => doc.indexOf(h.trimStart())));
      // A heading never ends up alone: it stays with the text after it even when that is long.
      const long = `# Heading\n\n${SENTENCES.join(' ')}`;
      const first = splitDocument(long, tok, { targetTokens: TARGET })[0];
      expect(first.text.startsWith('# Heading\n\nOnce upon')).toBe(true);
    });

    it('merges a trailing piece under minTokens into the chunk before it, within maxTokens', () => {
      // No extension allowed, so the budget cut leaves a short tail.
      let n = 1;
      while (tok.encode('word '.repeat(n)).length <= TARGET + 2) n++;
      const doc = 'word '.repeat(n);
      const strict = { targetTokens: TARGET, sentenceExtend: 1, lineExtend: 1, maxTokens: TARGET + 16 };
      const merged = splitDocument(doc, tok, { ...strict, minTokens: 8 });
      expect(merged.length).toBe(1);
      expect(merged[0].tokens.length).toBeGreaterThan(TARGET);
      expectFaithful(doc, merged, tok, TARGET + 16);
      const unmerged = splitDocument(doc, tok, { ...strict, minTokens: 0 });
      expect(unmerged.length).toBe(2);
      expect(unmerged[0].tokens.length).toBeLessThanOrEqual(TARGET);
    });

    it('gives the same paragraph in two documents the same tokens and chunk id', async () => {
      const [a, b, c, d, shared] = paragraphsNear(tok, 5, 5);
      const doc1 = [a, shared, b].join('\n\n');
      const doc2 = `# Other document\n\n${[c, d, shared].join('\n\n')}\n`;
      const find = (doc: string): DocumentChunk => {
        const found = splitDocument(doc, tok, { targetTokens: TARGET }).find((ch) => ch.text.startsWith(shared));
        expect(found).toBeDefined();
        return found!;
      };
      const c1 = find(doc1);
      const c2 = find(doc2);
      expect(c1.text.trimEnd()).toBe(shared);
      expect(c2.text.trimEnd()).toBe(shared);
      const fp = fingerprintFromParts(['llama', vocab.rel]);
      const settings = { bosPrefix: true };
      // The whitespace after a paragraph is part of its chunk (doc2 ends in "\n", doc1 has "\n\n"
      // there), so the same chunk is the paragraph followed by a blank line in both documents.
      const doc3 = `${c}\n\n${shared}\n\n${d}`;
      const c3 = find(doc3);
      expect(c3.text).toBe(c1.text);
      expect(c3.tokens).toEqual(c1.tokens);
      expect(await chunkId({ modelFingerprint: fp, tokens: c3.tokens, settings })).toBe(await chunkId({ modelFingerprint: fp, tokens: c1.tokens, settings }));
    });

    it('gives an empty document no chunks and a whitespace-only one a single chunk', () => {
      expect(splitDocument('', tok)).toEqual([]);
      const ws = splitDocument(' \n\n \n', tok, { targetTokens: TARGET });
      expect(ws.length).toBe(1);
      expectFaithful(' \n\n \n', ws, tok, 2 * TARGET);
    });
  });
}

describe('chunker settings', () => {
  it('fills in the defaults: target 512, extend 1.5x / 2x, cap 1024, min 64', () => {
    expect(resolveChunkerSettings()).toEqual({ targetTokens: 512, sentenceExtend: 1.5, lineExtend: 2, maxTokens: 1024, minTokens: 64 });
    expect(resolveChunkerSettings({ targetTokens: 100, lineExtend: 3 })).toMatchObject({ maxTokens: 300, minTokens: 12 });
  });

  it.each([
    [{ targetTokens: 0 }, 'targetTokens'],
    [{ targetTokens: 64.5 }, 'targetTokens'],
    [{ sentenceExtend: 0.5 }, 'sentenceExtend'],
    [{ sentenceExtend: 2, lineExtend: 1.5 }, 'lineExtend'],
    [{ targetTokens: 64, maxTokens: 32 }, 'maxTokens'],
    [{ targetTokens: 64, minTokens: 64 }, 'minTokens'],
    [{ minTokens: -1 }, 'minTokens'],
  ])('rejects %j with a typed error naming %s', (settings, field) => {
    let err: unknown;
    try {
      resolveChunkerSettings(settings);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect((err as InvalidRequestError).code).toBe('bad-chunker-settings');
    expect((err as InvalidRequestError).fields.field).toBe(field);
  });
});

describe('chunkId', () => {
  const base = { modelFingerprint: fingerprintFromParts(['llama', 'abc']), tokens: [1, 2, 3, 70000], settings: { bosPrefix: true, kv: 'f16' } };

  it('is the SHA-256 hex of the canonical encoding, independent of settings key order', async () => {
    const id = await chunkId(base);
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(id).toBe(createHash('sha256').update(encodeChunkIdInput(base)).digest('hex'));
    expect(await chunkId({ ...base, settings: { kv: 'f16', bosPrefix: true } })).toBe(id);
    // The token bytes sit at the end as a count then u32 little-endian values.
    const bytes = encodeChunkIdInput(base);
    expect(Array.from(bytes.subarray(bytes.length - 20))).toEqual([4, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0x70, 0x11, 0x01, 0x00]);
  });

  it('changes with the model fingerprint, any setting, or the tokens', async () => {
    const id = await chunkId(base);
    const variants: ChunkIdInput[] = [
      { ...base, modelFingerprint: fingerprintFromParts(['llama', 'abd']) },
      { ...base, settings: { bosPrefix: false, kv: 'f16' } },
      { ...base, settings: { bosPrefix: true } },
      { ...base, settings: { bosPrefix: 'true', kv: 'f16' } }, // a string is not the boolean
      { ...base, settings: { bosPrefix: true, kv: 'f16', prefixTokens: 1 } },
      { ...base, tokens: [1, 2, 3] },
      { ...base, tokens: [1, 2, 3, 70001] },
      { ...base, tokens: [] },
    ];
    const ids = await Promise.all(variants.map((v) => chunkId(v)));
    expect(new Set([id, ...ids]).size).toBe(variants.length + 1);
  });

  it('rejects tokens that are not u32 and settings that are not finite', async () => {
    await expect(chunkId({ ...base, tokens: [1, -1] })).rejects.toMatchObject({ name: 'InvalidRequestError', code: 'bad-chunk-id-input' });
    await expect(chunkId({ ...base, tokens: [1.5] })).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(chunkId({ ...base, settings: { k: Number.NaN } })).rejects.toMatchObject({ code: 'bad-chunk-id-input' });
  });
});

describe('fingerprintFromParts', () => {
  it('is stable and unambiguous about where parts split', () => {
    expect(fingerprintFromParts(['llama', 'F32'])).toBe(fingerprintFromParts(['llama', 'F32']));
    expect(fingerprintFromParts(['ab', 'c'])).not.toBe(fingerprintFromParts(['a', 'bc']));
    expect(fingerprintFromParts(['a,b'])).not.toBe(fingerprintFromParts(['a', 'b']));
    expect(fingerprintFromParts([])).not.toBe(fingerprintFromParts(['']));
  });
});
