// Chat templates: the model's own Jinja template (`tokenizer.chat_template`), rendered with
// @huggingface/jinja.
import { Template } from '@huggingface/jinja';
import { TokenizerError } from '../errors.ts';

export interface ChatTemplateMessage {
  role: string;
  content: string;
}

export function renderChatTemplate(
  metadata: Record<string, unknown>,
  messages: ChatTemplateMessage[],
  opts: { addGenerationPrompt: boolean },
): string {
  const source = metadata['tokenizer.chat_template'];
  if (typeof source !== 'string' || source.length === 0) {
    throw new TokenizerError('no-chat-template', 'the model has no chat template (tokenizer.chat_template); send raw text or tokens instead');
  }
  const tokens = metadata['tokenizer.ggml.tokens'] as string[] | undefined;
  const special = (key: string) => {
    const id = metadata[key];
    return typeof id === 'number' && tokens && id >= 0 && id < tokens.length ? tokens[id] : '';
  };
  try {
    return new Template(source).render({
      messages,
      add_generation_prompt: opts.addGenerationPrompt,
      bos_token: special('tokenizer.ggml.bos_token_id'),
      eos_token: special('tokenizer.ggml.eos_token_id'),
    });
  } catch (err) {
    throw new TokenizerError('chat-template-failed', `the model's chat template failed to render: ${(err as Error).message}`, {}, { cause: err });
  }
}
