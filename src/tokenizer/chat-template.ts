// Chat templates: the model's own Jinja template (`tokenizer.chat_template`) rendered with
// @huggingface/jinja, with the variables Hugging Face's apply_chat_template passes.
import { Template } from '@huggingface/jinja';
import { TokenizerError } from '../errors.ts';

export interface ChatTemplateMessage {
  role: string;
  content: string;
}

export interface ChatTemplateOptions {
  /** End with the opening of an assistant turn, for the model to complete. */
  addGenerationPrompt: boolean;
  /** `bos_token` in the template; defaults to the text of `tokenizer.ggml.bos_token_id`. */
  bosToken?: string;
  /** `eos_token` in the template; defaults to the text of `tokenizer.ggml.eos_token_id`. */
  eosToken?: string;
}

// Parsing a template costs more than rendering it; a model renders the same one on every turn.
const parsed = new Map<string, Template>();
const PARSED_LIMIT = 8;

function compile(source: string): Template {
  let t = parsed.get(source);
  if (t) return t;
  try {
    t = new Template(source);
  } catch (err) {
    throw new TokenizerError(
      'bad-chat-template',
      `the model's chat template (tokenizer.chat_template) does not parse: ${(err as Error).message}; send raw text or tokens instead`,
      {},
      { cause: err },
    );
  }
  if (parsed.size >= PARSED_LIMIT) parsed.delete(parsed.keys().next().value!);
  parsed.set(source, t);
  return t;
}

function tokenTextAt(metadata: Readonly<Record<string, unknown>>, key: string): string {
  const tokens = metadata['tokenizer.ggml.tokens'];
  const raw = metadata[key];
  const id = typeof raw === 'bigint' ? Number(raw) : raw;
  if (!Array.isArray(tokens) || typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= tokens.length) return '';
  return String(tokens[id]);
}

/** Renders the conversation into prompt text with the model's template (encode it with parseSpecial: true). */
export function renderChatTemplate(
  metadata: Readonly<Record<string, unknown>>,
  messages: readonly ChatTemplateMessage[],
  opts: ChatTemplateOptions,
): string {
  const source = metadata['tokenizer.chat_template'];
  if (typeof source !== 'string' || source.length === 0) {
    throw new TokenizerError('no-chat-template', 'the model has no chat template (tokenizer.chat_template); send raw text or tokens instead', {});
  }
  const template = compile(source);
  try {
    return template.render({
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: opts.addGenerationPrompt,
      bos_token: opts.bosToken ?? tokenTextAt(metadata, 'tokenizer.ggml.bos_token_id'),
      eos_token: opts.eosToken ?? tokenTextAt(metadata, 'tokenizer.ggml.eos_token_id'),
    });
  } catch (err) {
    // Templates reject conversations they cannot express (raise_exception), e.g. a system turn the model has no slot for.
    throw new TokenizerError('chat-template-failed', `the model's chat template failed on this conversation: ${(err as Error).message}`, {}, {
      cause: err,
    });
  }
}
