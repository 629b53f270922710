// Tokenizers built from GGUF metadata: SentencePiece-style ('llama') and byte-level BPE ('gpt2'),
// special tokens, BOS/EOS, streaming decoding through multi-byte UTF-8, and chat templates.
import { TokenizerError } from '../errors.ts';
import { BpeModel } from './bpe.ts';
import { SpmModel } from './spm.ts';
import { completeUtf8, partitionSpecial, readVocab, TokenType, type Metadata, type Vocab } from './vocab.ts';

export { renderChatTemplate } from './chat-template.ts';
export { PRE_TOKENIZERS } from './bpe.ts';
export { TokenType } from './vocab.ts';

export interface EncodeOptions {
  /** Put BOS first (default false; the engine passes `tokenizer.addBos` for raw prompts). */
  addBos?: boolean;
  /** Match control-token text (e.g. `<|im_end|>`) as the token instead of literal text (default false). */
  parseSpecial?: boolean;
}

export interface StreamDecoder {
  /** Text completed by this token; bytes of an unfinished UTF-8 character wait for the next. */
  push(id: number): string;
  /** Whatever is still buffered (an unfinished character becomes U+FFFD). */
  flush(): string;
}

export interface Tokenizer {
  readonly model: 'llama' | 'gpt2';
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Tokens that end a turn: EOS and end-of-turn markers such as `<|eot_id|>`, `<|im_end|>`, `<|end|>`. */
  readonly eotIds: Set<number>;
  /** Whether the model expects BOS at the start of a prompt. */
  readonly addBos: boolean;
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: number[], opts?: { skipSpecial?: boolean }): string;
  tokenText(id: number): string;
  isSpecial(id: number): boolean;
  /** Incremental decoding for generated tokens (continuations: no leading-space removal). */
  createStreamDecoder(opts?: { skipSpecial?: boolean }): StreamDecoder;
}

const EOT_TEXTS = ['<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>', '<｜end▁of▁sentence｜>'];

class GgufTokenizer implements Tokenizer {
  readonly model: 'llama' | 'gpt2';
  readonly eotIds: Set<number>;
  private readonly spm?: SpmModel;
  private readonly bpe?: BpeModel;
  private readonly addSpacePrefix: boolean;

  constructor(
    private readonly vocab: Vocab,
    meta: Metadata,
  ) {
    if (vocab.model === 'llama') {
      this.model = 'llama';
      this.spm = new SpmModel(vocab);
    } else if (vocab.model === 'gpt2') {
      this.model = 'gpt2';
      const merges = meta['tokenizer.ggml.merges'];
      if (!Array.isArray(merges)) throw new TokenizerError('missing-vocab', "a 'gpt2' tokenizer needs 'tokenizer.ggml.merges'");
      const pre = typeof meta['tokenizer.ggml.pre'] === 'string' ? (meta['tokenizer.ggml.pre'] as string) : 'default';
      this.bpe = new BpeModel(vocab, merges as string[], pre);
    } else {
      throw new TokenizerError('unsupported-model', `tokenizer model '${vocab.model}' is not supported; chunklm reads 'llama' (SentencePiece) and 'gpt2' (byte-level BPE)`, {
        model: vocab.model,
      });
    }
    const sp = meta['tokenizer.ggml.add_space_prefix'];
    this.addSpacePrefix = this.model === 'llama' && (typeof sp === 'boolean' ? sp : true);
    this.eotIds = new Set<number>();
    if (vocab.eosId >= 0) this.eotIds.add(vocab.eosId);
    const eot = meta['tokenizer.ggml.eot_token_id'];
    if (typeof eot === 'number') this.eotIds.add(eot);
    for (const t of EOT_TEXTS) {
      const id = vocab.ids.get(t);
      if (id !== undefined && vocab.types[id] === TokenType.CONTROL) this.eotIds.add(id);
    }
  }

  get vocabSize(): number {
    return this.vocab.tokens.length;
  }
  get bosId(): number {
    return this.vocab.bosId;
  }
  get eosId(): number {
    return this.vocab.eosId;
  }
  get addBos(): boolean {
    return this.vocab.addBos && this.vocab.bosId >= 0;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.addBos && this.vocab.bosId >= 0) out.push(this.vocab.bosId);
    let prevSpecial = true;
    for (const frag of partitionSpecial(this.vocab, text, opts.parseSpecial ?? false)) {
      if ('id' in frag) {
        out.push(frag.id);
        prevSpecial = true;
        continue;
      }
      if (this.spm) {
        let t = frag.text;
        if (this.addSpacePrefix && prevSpecial) t = ' ' + t;
        this.spm.encode(t.replace(/ /g, '\u2581'), out);
      } else {
        this.bpe!.encode(frag.text, out);
      }
      prevSpecial = false;
    }
    return out;
  }

  decode(ids: number[], opts: { skipSpecial?: boolean } = {}): string {
    const d = this.createStreamDecoder(opts);
    let text = '';
    for (const id of ids) text += d.push(id);
    text += d.flush();
    // SentencePiece's space prefix is not part of the text (llama.cpp removes it too).
    if (this.addSpacePrefix && text.startsWith(' ')) {
      const first = ids.find((id) => !this.isSpecial(id));
      if (first !== undefined && this.vocab.tokens[first].startsWith('\u2581')) text = text.slice(1);
    }
    return text;
  }

  tokenText(id: number): string {
    this.check(id);
    return this.vocab.tokens[id];
  }

  isSpecial(id: number): boolean {
    const t = this.vocab.types[id];
    return t === TokenType.CONTROL || t === TokenType.UNKNOWN || t === TokenType.UNUSED;
  }

  createStreamDecoder(opts: { skipSpecial?: boolean } = {}): StreamDecoder {
    let pending = new Uint8Array(0);
    const utf8 = new TextDecoder();
    const append = (bytes: Uint8Array | number) => {
      const add = typeof bytes === 'number' ? Uint8Array.of(bytes) : bytes;
      const next = new Uint8Array(pending.length + add.length);
      next.set(pending);
      next.set(add, pending.length);
      pending = next;
    };
    return {
      push: (id: number) => {
        this.check(id);
        const type = this.vocab.types[id];
        if (type === TokenType.CONTROL || type === TokenType.UNKNOWN || type === TokenType.UNUSED) {
          if (opts.skipSpecial !== false) return '';
          append(new TextEncoder().encode(this.vocab.tokens[id]));
        } else if (this.spm) append(this.spm.tokenBytes(id, type === TokenType.BYTE));
        else if (type === TokenType.USER_DEFINED) append(new TextEncoder().encode(this.vocab.tokens[id]));
        else append(this.bpe!.tokenBytes(id));
        const n = completeUtf8(pending);
        const text = utf8.decode(pending.subarray(0, n));
        pending = pending.slice(n);
        return text;
      },
      flush: () => {
        const text = utf8.decode(pending);
        pending = new Uint8Array(0);
        return text;
      },
    };
  }

  private check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocab.tokens.length) {
      throw new TokenizerError('bad-token', `token id ${id} is outside the vocabulary (0..${this.vocab.tokens.length - 1})`, { token: id });
    }
  }
}

export function createTokenizer(metadata: Metadata): Tokenizer {
  return new GgufTokenizer(readVocab(metadata), metadata);
}
