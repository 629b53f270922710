// The Tokenizer built from GGUF metadata: special tokens split out first, then SentencePiece-style
// or byte-level BPE encoding of the text between them; decoding to bytes per token, then UTF-8.
import { TokenizerError } from '../errors.ts';
import { BpeEncoder, byteLevelBytes } from './bpe.ts';
import { splitSpecialTokens } from './special.ts';
import { SpmEncoder } from './spm.ts';
import { Attr, loadVocab, type Vocab } from './vocab.ts';

export interface EncodeOptions {
  /** Put BOS first (default false; prompts pass `tokenizer.addBos`). */
  addBos?: boolean;
  /** Turn the text of control tokens (`<s>`, `<|im_end|>`, ...) into their ids instead of encoding it as text (default false). */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Leave out control and unknown tokens (default false: their text is written, as llama.cpp does). */
  skipSpecial?: boolean;
  /**
   * Drop the space that SentencePiece vocabs put before the text: one leading space of the first
   * token that writes something (BOS and skipped special tokens do not count). Defaults to whether
   * the vocab adds that prefix (`tokenizer.ggml.add_space_prefix`, true for 'llama'). Pass false
   * to decode a continuation of earlier text.
   */
  stripLeadingSpace?: boolean;
}

export interface StreamDecoder {
  /** The text this token completes; bytes of an unfinished UTF-8 character wait for the next token. */
  push(id: number): string;
  /** Whatever is still buffered; an unfinished character becomes U+FFFD. */
  flush(): string;
}

export interface Tokenizer {
  /** `tokenizer.ggml.model`. */
  readonly model: 'llama' | 'gpt2';
  readonly vocabSize: number;
  /** -1 when the model has none. */
  readonly bosId: number;
  /** -1 when the model has none. */
  readonly eosId: number;
  /** Tokens that end generation: EOS, `tokenizer.ggml.eot_token_id`, and `<|eot_id|>`, `<|im_end|>`, `<|end|>`, `<end_of_turn>`, ... when present. */
  readonly eotIds: Set<number>;
  /** Whether the model expects BOS at the start of a prompt. */
  readonly addBos: boolean;
  /** What loading changed in the vocabulary, one sentence each (tokens retyped as control, as llama.cpp does); usually empty. */
  readonly notices: readonly string[];
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  /** The token's text as the vocabulary stores it (U+2581 for spaces, GPT-2 byte characters, `<0x0A>`, ...). */
  tokenText(id: number): string;
  /** Control, user-defined or unknown tokens: the ones split out of text before encoding. */
  isSpecial(id: number): boolean;
  /** Incremental decode(): concatenated pushes and the flush equal decode() of all ids with the same options. */
  createStreamDecoder(opts?: DecodeOptions): StreamDecoder;
}

const utf8 = new TextEncoder();
const EMPTY = new Uint8Array(0);

class GGUFTokenizer implements Tokenizer {
  readonly model: 'llama' | 'gpt2';
  readonly eotIds: Set<number>;
  private readonly spm?: SpmEncoder;
  private readonly bpe?: BpeEncoder;
  /** Bytes of each token as written when special tokens are shown; filled on first use. */
  private readonly pieces: (Uint8Array | undefined)[];

  constructor(private readonly vocab: Vocab) {
    this.model = vocab.kind === 'spm' ? 'llama' : 'gpt2';
    if (vocab.kind === 'spm') this.spm = new SpmEncoder(vocab);
    else this.bpe = new BpeEncoder(vocab);
    this.eotIds = new Set(vocab.eogIds);
    this.pieces = new Array<Uint8Array | undefined>(vocab.tokens.length);
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
  get notices(): readonly string[] {
    return this.vocab.notices;
  }
  get addBos(): boolean {
    return this.vocab.addBos && this.vocab.bosId >= 0;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.addBos) {
      if (this.vocab.bosId < 0) {
        throw new TokenizerError('no-bos', 'this model has no BOS token (tokenizer.ggml.bos_token_id); encode without addBos', {});
      }
      out.push(this.vocab.bosId);
    }
    // SentencePiece puts a space before the text and after every special token, as llama.cpp does.
    let afterSpecial = true;
    for (const frag of splitSpecialTokens(this.vocab, text, opts.parseSpecial ?? false)) {
      if (typeof frag === 'number') {
        out.push(frag);
        afterSpecial = true;
      } else if (this.spm) {
        const prefixed = this.vocab.addSpacePrefix && afterSpecial ? ` ${frag}` : frag;
        this.spm.encode(prefixed.replaceAll(' ', '\u2581'), out);
        afterSpecial = false;
      } else {
        this.bpe!.encode(frag, out);
      }
    }
    return out;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const next = this.pieceWriter(opts);
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const id of ids) {
      const p = next(id);
      parts.push(p);
      total += p.length;
    }
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  }

  createStreamDecoder(opts: DecodeOptions = {}): StreamDecoder {
    const next = this.pieceWriter(opts);
    // A streaming TextDecoder keeps an unfinished UTF-8 sequence for the next call, and gives the
    // same characters as decoding all bytes at once.
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    return {
      push: (id: number) => decoder.decode(next(id), { stream: true }),
      flush: () => decoder.decode(),
    };
  }

  tokenText(id: number): string {
    this.check(id);
    return this.vocab.tokens[id];
  }

  isSpecial(id: number): boolean {
    this.check(id);
    return (this.vocab.attrs[id] & (Attr.control | Attr.userDefined | Attr.unknown)) !== 0;
  }

  /** A function from each next id to its bytes, holding the leading-space state of one decode. */
  private pieceWriter(opts: DecodeOptions): (id: number) => Uint8Array {
    const skipSpecial = opts.skipSpecial ?? false;
    let strip = opts.stripLeadingSpace ?? this.vocab.addSpacePrefix;
    return (id) => {
      this.check(id);
      const bytes = skipSpecial && this.vocab.attrs[id] & (Attr.control | Attr.unknown) ? EMPTY : this.piece(id);
      // llama.cpp strips only the very first token; looking past BOS and skipped tokens as well
      // makes decode(encode(text, {addBos: true}), ...) give back the text.
      if (!strip || bytes.length === 0 || id === this.vocab.bosId) return bytes;
      strip = false;
      return bytes[0] === 0x20 ? bytes.subarray(1) : bytes;
    };
  }

  /** The bytes a token stands for, in llama.cpp's order of precedence over its attributes. */
  private piece(id: number): Uint8Array {
    const cached = this.pieces[id];
    if (cached) return cached;
    const text = this.vocab.tokens[id];
    const attr = this.vocab.attrs[id];
    let bytes: Uint8Array;
    if (attr & (Attr.control | Attr.unknown | Attr.userDefined)) bytes = utf8.encode(text);
    else if (attr & Attr.normal) bytes = this.spm ? utf8.encode(text.replaceAll('\u2581', ' ')) : byteLevelBytes(text);
    else if (attr & Attr.byte) {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(text);
      bytes = m ? Uint8Array.of(parseInt(m[1], 16)) : utf8.encode(text);
    } else bytes = EMPTY; // unused and undefined tokens stand for nothing
    this.pieces[id] = bytes;
    return bytes;
  }

  private check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocab.tokens.length) {
      throw new TokenizerError('bad-token', `token id ${id} is outside the vocabulary (0..${this.vocab.tokens.length - 1})`, { token: id });
    }
  }
}

/**
 * The model's tokenizer from its GGUF metadata (`tokenizer.ggml.*`): 'llama' (SentencePiece-style)
 * or 'gpt2' (byte-level BPE with the pre-tokenizer `tokenizer.ggml.pre` names). Throws
 * TokenizerError when the metadata cannot make one.
 */
export function createTokenizer(metadata: Readonly<Record<string, unknown>>): Tokenizer {
  return new GGUFTokenizer(loadVocab(metadata));
}
