// Streaming decode (UTF-8 characters split across tokens) and chat templates, on the shared
// vocab files: byte-fallback SentencePiece (llama-spm), byte-level BPE (gpt-2) and Phi-3's template.
import { describe, expect, it } from 'vitest';
import { TokenizerError } from '../../src/errors.ts';
import { createTokenizer, renderChatTemplate, type Tokenizer } from '../../src/tokenizer/index.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';
import { vocabMetadata } from './fixtures.ts';

const TEXTS = ['Hello 🦙 world', '日本語のテキスト、中文。', '👩‍👩‍👧 family ❤️‍🔥 and 🇫🇷', ' leading space\nand lines', 'a🦙'];

/** Pushes every id, recording what each push returned, then flushes. */
function stream(tok: Tokenizer, ids: number[], opts?: { skipSpecial?: boolean }): { pieces: string[]; tail: string } {
  const d = tok.createStreamDecoder(opts);
  const pieces = ids.map((id) => d.push(id));
  return { pieces, tail: d.flush() };
}

for (const name of ['llama-spm', 'gpt-2'] as const) {
  const file = `vocab/ggml-vocab-${name}.gguf`;
  describe.skipIf(!sharedFile(file))(sharedFile(file) ? `${name} stream decoding` : missingShared(file), () => {
    it('gives decode() of all ids, never a broken character on the way', async () => {
      const tok = createTokenizer(await vocabMetadata(name));
      let split = 0;
      for (const text of TEXTS) {
        for (const addBos of tok.bosId >= 0 ? [false, true] : [false]) {
          const ids = tok.encode(text, { addBos });
          const { pieces, tail } = stream(tok, ids);
          expect(pieces.join('') + tail).toBe(tok.decode(ids));
          expect(tail).toBe('');
          expect(pieces.join('')).not.toContain('\uFFFD');
          // Tokens that end mid-character return nothing and the next one completes it.
          split += pieces.filter((p) => p === '').length;
        }
      }
      expect(split).toBeGreaterThan(0);
      expect(tok.decode(tok.encode(TEXTS[1]))).toBe(TEXTS[1]);
    });

    it('writes an unfinished character as U+FFFD only on flush', async () => {
      const tok = createTokenizer(await vocabMetadata(name));
      const ids = tok.encode('🦙');
      const { pieces, tail } = stream(tok, ids.slice(0, -1));
      expect(pieces.join('')).not.toContain('\uFFFD');
      expect(tail).toBe('\uFFFD');
      expect(tok.decode(ids.slice(0, -1))).toContain('\uFFFD');
    });

    it('follows decode() with skipSpecial and BOS', async () => {
      const tok = createTokenizer(await vocabMetadata(name));
      const eos = tok.eosId;
      const ids = [...tok.encode('x 日本'), eos, ...tok.encode('y')];
      for (const skipSpecial of [false, true]) {
        const { pieces, tail } = stream(tok, ids, { skipSpecial });
        expect(pieces.join('') + tail).toBe(tok.decode(ids, { skipSpecial }));
      }
      expect(tok.decode(ids, { skipSpecial: true })).not.toContain(tok.tokenText(eos));
    });
  });
}

const PHI3 = 'vocab/ggml-vocab-phi-3.gguf';
describe.skipIf(!sharedFile(PHI3))(sharedFile(PHI3) ? 'phi-3 chat template' : missingShared(PHI3), () => {
  const messages = [
    { role: 'user', content: 'Hi there' },
    { role: 'assistant', content: 'Hello!' },
    { role: 'user', content: 'Count to 3.' },
  ];

  it('renders the conversation with BOS and the turn markers', async () => {
    const meta = await vocabMetadata('phi-3');
    const prompt = renderChatTemplate(meta, messages, { addGenerationPrompt: true });
    expect(prompt).toBe('<s><|user|>\nHi there<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nCount to 3.<|end|>\n<|assistant|>\n');
  });

  it('encodes the rendered prompt with parseSpecial into the marker ids', async () => {
    const meta = await vocabMetadata('phi-3');
    const tok = createTokenizer(meta);
    const ids = tok.encode(renderChatTemplate(meta, messages.slice(0, 1), { addGenerationPrompt: true }), { parseSpecial: true });
    // <s> <|user|> "Hi there" <|end|> <|assistant|>; Phi-3 strips the newline after its markers.
    expect(ids).toEqual([1, 32010, ...tok.encode('Hi there'), 32007, 32001]);
    expect(tok.eotIds.has(32007)).toBe(true);
  });

  it('takes bos_token and eos_token overrides', async () => {
    const meta = await vocabMetadata('phi-3');
    expect(renderChatTemplate(meta, messages.slice(0, 1), { addGenerationPrompt: true, bosToken: '' })).toMatch(/^<\|user\|>/);
  });
});

describe('chat template errors', () => {
  it('throws no-chat-template when the model has none', () => {
    expect(() => renderChatTemplate({ 'tokenizer.ggml.model': 'llama' }, [{ role: 'user', content: 'x' }], { addGenerationPrompt: true })).toThrow(
      expect.objectContaining({ name: 'TokenizerError', code: 'no-chat-template' }),
    );
  });

  it('throws bad-chat-template for a template that does not parse', () => {
    const render = () => renderChatTemplate({ 'tokenizer.chat_template': '{% for %}' }, [], { addGenerationPrompt: false });
    expect(render).toThrow(TokenizerError);
    expect(render).toThrow(expect.objectContaining({ code: 'bad-chat-template' }));
  });

  it('renders add_generation_prompt and the token texts from the vocabulary', () => {
    const meta = {
      'tokenizer.ggml.tokens': ['<unk>', '<|im_start|>', '<|im_end|>'],
      'tokenizer.ggml.bos_token_id': 1,
      'tokenizer.ggml.eos_token_id': 2,
      'tokenizer.chat_template':
        "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}",
    };
    const msgs = [{ role: 'user', content: 'hi' }];
    expect(renderChatTemplate(meta, msgs, { addGenerationPrompt: true })).toBe('<|im_start|>user: hi<|im_end|>assistant:');
    expect(renderChatTemplate(meta, msgs, { addGenerationPrompt: false })).toBe('<|im_start|>user: hi<|im_end|>');
  });
});
