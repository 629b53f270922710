// Chat templates: Phi-3's own template from its vocab GGUF, a ChatML template (Qwen, many others)
// on a small vocab with its markers, and the errors a template can raise.
import { describe, expect, it } from 'vitest';
import { TokenizerError } from '../../src/errors.ts';
import { createTokenizer, renderChatTemplate, TokenType } from '../../src/tokenizer/index.ts';
import { missingShared, sharedFile } from '../helpers/shared.ts';
import { vocabMetadata } from './fixtures.ts';

const conversation = [
  { role: 'user', content: 'Hello' },
  { role: 'assistant', content: 'Hi there' },
  { role: 'user', content: 'How are you?' },
];

describe.skipIf(!sharedFile('vocab/ggml-vocab-phi-3.gguf'))(
  sharedFile('vocab/ggml-vocab-phi-3.gguf') ? "Phi-3's template from its GGUF" : missingShared('vocab/ggml-vocab-phi-3.gguf'),
  () => {
    it('renders the conversation with BOS from the vocab and the assistant slot open', async () => {
      const meta = await vocabMetadata('phi-3');
      const text = renderChatTemplate(meta, conversation, { addGenerationPrompt: true });
      expect(text).toBe('<s><|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nHow are you?<|end|>\n<|assistant|>\n');
      expect(renderChatTemplate(meta, conversation.slice(0, 1), { addGenerationPrompt: true, bosToken: '' })).toBe(
        '<|user|>\nHello<|end|>\n<|assistant|>\n',
      );
    });

    it('encodes the rendered prompt into the chat markers with parseSpecial', async () => {
      const meta = await vocabMetadata('phi-3');
      const tok = createTokenizer(meta);
      const ids = tok.encode(renderChatTemplate(meta, conversation.slice(0, 1), { addGenerationPrompt: true }), { parseSpecial: true });
      // <s> <|user|> ▁Hello <|end|> <|assistant|>: Phi-3's markers eat the newline after them.
      expect(ids).toEqual([1, 32010, ...tok.encode('Hello'), 32007, 32001]);
      expect(tok.decode(ids, { skipSpecial: true })).toBe('Hello');
    });
  },
);

const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** A byte-level BPE vocab: the 256 byte characters, ChatML's two markers, and a ChatML template. */
function chatmlMetadata(template: string = CHATML): Record<string, unknown> {
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const tokens: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) tokens.push(String.fromCharCode(printable(b) ? b : 0x100 + n++));
  tokens.push('<|im_start|>', '<|im_end|>', '<|endoftext|>');
  const types = tokens.map((_, i) => (i < 256 ? TokenType.normal : TokenType.control));
  return {
    'tokenizer.ggml.model': 'gpt2',
    'tokenizer.ggml.pre': 'qwen2',
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.token_type': Int32Array.from(types),
    'tokenizer.ggml.merges': [],
    'tokenizer.ggml.eos_token_id': 258,
    'tokenizer.chat_template': template,
  };
}

describe('ChatML template', () => {
  it('renders turns and the generation prompt only when asked', () => {
    const meta = chatmlMetadata();
    const withPrompt = renderChatTemplate(meta, conversation.slice(0, 1), { addGenerationPrompt: true });
    expect(withPrompt).toBe('<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n');
    expect(renderChatTemplate(meta, conversation.slice(0, 1), { addGenerationPrompt: false })).toBe('<|im_start|>user\nHello<|im_end|>\n');
  });

  it('gives marker ids with parseSpecial, and <|im_end|> ends the turn', () => {
    const meta = chatmlMetadata();
    const tok = createTokenizer(meta);
    const ids = tok.encode(renderChatTemplate(meta, conversation.slice(0, 1), { addGenerationPrompt: true }), { parseSpecial: true });
    const bytes = (s: string): number[] => [...new TextEncoder().encode(s)];
    // With no merges every byte is its own token, and byte b is token b's character.
    const byteIds = (s: string): number[] => bytes(s).map((b) => tok.encode(String.fromCharCode(b))[0]);
    expect(ids).toEqual([256, ...byteIds('user\nHello'), 257, ...byteIds('\n'), 256, ...byteIds('assistant\n')]);
    expect(tok.eotIds).toEqual(new Set([257, 258]));
  });

  it('passes eos_token and bos_token, from the vocab or as given', () => {
    const meta = chatmlMetadata('[{{ bos_token }}|{{ eos_token }}]');
    expect(renderChatTemplate(meta, [], { addGenerationPrompt: false })).toBe('[|<|endoftext|>]');
    expect(renderChatTemplate(meta, [], { addGenerationPrompt: false, bosToken: '<B>', eosToken: '<E>' })).toBe('[<B>|<E>]');
  });
});

describe('chat template errors', () => {
  const failure = (f: () => unknown): TokenizerError => {
    try {
      f();
    } catch (err) {
      expect(err).toBeInstanceOf(TokenizerError);
      return err as TokenizerError;
    }
    throw new Error('expected a TokenizerError');
  };

  it('says when the model has no template', () => {
    const meta = chatmlMetadata();
    delete meta['tokenizer.chat_template'];
    expect(failure(() => renderChatTemplate(meta, conversation, { addGenerationPrompt: true })).code).toBe('no-chat-template');
  });

  it('reports a template that does not parse', () => {
    const err = failure(() => renderChatTemplate(chatmlMetadata('{% for m in messages %}'), conversation, { addGenerationPrompt: true }));
    expect(err.code).toBe('bad-chat-template');
  });

  it("carries the template's own raise_exception message", () => {
    const tpl = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok";
    const meta = chatmlMetadata(tpl);
    expect(renderChatTemplate(meta, conversation, { addGenerationPrompt: true })).toBe('ok');
    const err = failure(() => renderChatTemplate(meta, [{ role: 'system', content: 'x' }], { addGenerationPrompt: true }));
    expect(err.code).toBe('chat-template-failed');
    expect(err.message).toContain('System role not supported');
  });
});
