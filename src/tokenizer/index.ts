// Public surface of the tokenizer layer: tokenizers built from GGUF metadata ('llama'
// SentencePiece-style and 'gpt2' byte-level BPE) and chat templates.
export {
  createTokenizer,
  type DecodeOptions,
  type EncodeOptions,
  type StreamDecoder,
  type Tokenizer,
} from './tokenizer.ts';
export { renderChatTemplate, type ChatTemplateMessage, type ChatTemplateOptions } from './chat-template.ts';
export { PRE_TOKENIZER_NAMES } from './pre-tokenizer.ts';
export { TokenType } from './vocab.ts';
