// Splitting special tokens out of input text before the text is encoded, as llama.cpp's
// tokenizer_st_partition does: each special token in turn, longest text first, is cut out of every
// raw fragment left so far. So a longer token wins over a shorter one anywhere in the text, not
// only where they overlap at the same position.
//
// Control and unknown tokens are matched only when the caller asks for parseSpecial. User-defined
// tokens are always matched: they are ordinary text the vocabulary stores whole (Hugging Face's
// added tokens that are not "special"), and llama.cpp and Hugging Face both split them out first.
import { Attr, type Vocab } from './vocab.ts';

/** A fragment of input: raw text still to encode, or the id of a special token cut out of it. */
export type Fragment = string | number;

/** std::isspace in the C locale: what rstrip removes after a token. */
const isAsciiSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);

export function splitSpecialTokens(vocab: Vocab, text: string, parseSpecial: boolean): Fragment[] {
  if (text.length === 0) return [];
  let fragments: Fragment[] = [text];
  for (const id of vocab.specialIds) {
    const attr = vocab.attrs[id];
    if (!parseSpecial && attr & (Attr.control | Attr.unknown)) continue;
    const token = vocab.tokens[id];
    // Most special tokens never occur: one search of the whole input rules them out.
    if (!text.includes(token)) continue;
    const next: Fragment[] = [];
    for (const frag of fragments) {
      if (typeof frag === 'number') {
        next.push(frag);
        continue;
      }
      let from = 0;
      for (let at = frag.indexOf(token); at >= 0; at = frag.indexOf(token, from)) {
        if (at > from) next.push(frag.slice(from, at));
        next.push(id);
        from = at + token.length;
        if (attr & Attr.rstrip) while (from < frag.length && isAsciiSpace(frag.charCodeAt(from))) from++;
      }
      if (from < frag.length) next.push(frag.slice(from));
    }
    fragments = next;
  }
  return fragments;
}
