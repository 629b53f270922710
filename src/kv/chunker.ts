// KVSplit: a document cut into chunks along its own structure, so that a chunk is a unit of
// meaning and the same paragraph tokenizes (and hashes, see chunk-id.ts) the same in every
// document. Each chunk's KV is prefilled alone from position 0, so its tokens are exactly what the
// tokenizer gives for its text alone, never a slice of the whole document's tokens.
//
// Where cuts go, strongest first:
//   1. Markdown ATX headings (`# ...` outside code fences) start a new chunk;
//   2. paragraph breaks (a blank line): whole paragraphs are packed while they fit the target;
//   3. inside a paragraph longer than the target (EPIC's rule): fill to the target, then extend
//      to the next sentence end within `sentenceExtend` × target, else to the next line break
//      within `lineExtend` × target, else cut at the last word boundary (or, inside one enormous
//      word, the last character) that fits the target.
// A trailing piece smaller than `minTokens` (the end of a paragraph or of the document after such
// a cut) joins the chunk before it when the result stays within `maxTokens`.
//
// Whitespace convention: every cut is placed at the end of a run of whitespace, so the spaces or
// newlines that end a sentence or paragraph belong to the chunk they end, and every chunk but the
// first starts with a non-whitespace character (the first chunk keeps any leading whitespace of
// the document). The texts concatenate exactly to the document. With a SentencePiece vocab that
// adds a space prefix ('llama'), a chunk's tokens start with '▁' like a word after a space in
// running text, and `decode(tokens)` (which strips that one space by default) gives the text back;
// `decode(tokens, {stripLeadingSpace: false})` gives ' ' + text.
import { InvalidRequestError } from '../errors.ts';
import type { Tokenizer } from '../tokenizer/index.ts';

export interface ChunkerSettings {
  /** Tokens a chunk is filled to before it looks for a place to end (default 512). */
  targetTokens: number;
  /** A chunk past the target may run on to the next sentence end up to this × target tokens (default 1.5). */
  sentenceExtend: number;
  /** ... else to the next line break up to this × target tokens (default 2). */
  lineExtend: number;
  /** Hard cap on a chunk's tokens (default floor(lineExtend × target)); no chunk is longer. */
  maxTokens: number;
  /** A trailing piece with fewer tokens joins the previous chunk; a heading only starts a new chunk once the current one has this many (default floor(target / 8)). */
  minTokens: number;
}

export interface DocumentChunk {
  /** Position of the chunk in the document, from 0. */
  index: number;
  /** `document.slice(start, end)`. */
  text: string;
  /** UTF-16 offset of the chunk's first character in the document. */
  start: number;
  /** UTF-16 offset just past the chunk's last character. */
  end: number;
  /** `tokenizer.encode(text, {addBos: false})`: the chunk tokenized alone. */
  tokens: number[];
}

export const DEFAULT_CHUNKER_SETTINGS: Readonly<Pick<ChunkerSettings, 'targetTokens' | 'sentenceExtend' | 'lineExtend'>> = {
  targetTokens: 512,
  sentenceExtend: 1.5,
  lineExtend: 2,
};

/** Smallest accepted target: room for any single character (a space prefix plus four UTF-8 byte tokens). */
const MIN_TARGET_TOKENS = 8;

/** The full settings, with defaults filled in and checked; throws InvalidRequestError ('bad-chunker-settings'). */
export function resolveChunkerSettings(settings: Partial<ChunkerSettings> = {}): ChunkerSettings {
  const targetTokens = settings.targetTokens ?? DEFAULT_CHUNKER_SETTINGS.targetTokens;
  const sentenceExtend = settings.sentenceExtend ?? DEFAULT_CHUNKER_SETTINGS.sentenceExtend;
  const lineExtend = settings.lineExtend ?? DEFAULT_CHUNKER_SETTINGS.lineExtend;
  const bad = (field: string, value: number, want: string): InvalidRequestError =>
    new InvalidRequestError('bad-chunker-settings', `chunker setting ${field} is ${value}; it must be ${want}`, { field, value });
  if (!Number.isInteger(targetTokens) || targetTokens < MIN_TARGET_TOKENS) throw bad('targetTokens', targetTokens, `an integer >= ${MIN_TARGET_TOKENS}`);
  if (!(sentenceExtend >= 1) || !Number.isFinite(sentenceExtend)) throw bad('sentenceExtend', sentenceExtend, 'a finite number >= 1');
  if (!(lineExtend >= sentenceExtend) || !Number.isFinite(lineExtend)) throw bad('lineExtend', lineExtend, `a finite number >= sentenceExtend (${sentenceExtend})`);
  const maxTokens = settings.maxTokens ?? Math.floor(lineExtend * targetTokens);
  if (!Number.isInteger(maxTokens) || maxTokens < targetTokens) throw bad('maxTokens', maxTokens, `an integer >= targetTokens (${targetTokens})`);
  const minTokens = settings.minTokens ?? Math.floor(targetTokens / 8);
  if (!Number.isInteger(minTokens) || minTokens < 0 || minTokens >= targetTokens) throw bad('minTokens', minTokens, `an integer in 0..targetTokens-1 (${targetTokens - 1})`);
  return { targetTokens, sentenceExtend, lineExtend, maxTokens, minTokens };
}

/** How strong a cut is; smaller is stronger. */
const Level = {
  end: 0, // end of the document
  heading: 1, // before an ATX heading line
  paragraph: 2, // after a blank line
  sentence: 3, // after sentence-ending punctuation
  line: 4, // after a line break
  word: 5, // after any whitespace
} as const;
type Level = (typeof Level)[keyof typeof Level];

/** A place where a chunk may end (and the next begin): a UTF-16 offset and how strong a cut it is. */
interface Cut {
  at: number;
  level: Level;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const HEADING = /^ {0,3}#{1,6}(?:[ \t]|$)/;
// Punctuation that ends a sentence, closing quotes or brackets after it, then the whole run of
// whitespace; a lowercase letter next means an abbreviation ("e.g. the"), not a sentence end.
const SENTENCE_END = /[.!?\u2026]["'\u2019\u201d)\]]*\s+(?![\s\p{Ll}])|[\u3002\uff01\uff1f]["'\u2019\u201d)\]\u300d\u300f]*\s*/gu;
const WHITESPACE_RUN = /\s+/g;

/**
 * Every place in the text where a chunk may end, sorted by offset, one entry per offset with the
 * strongest level that applies there. All cuts sit at the end of a whitespace run (a heading
 * cut is at its '#', after a newline and indentation), except after CJK sentence punctuation.
 */
function findCuts(text: string): Cut[] {
  const levels = new Map<number, Level>();
  const mark = (at: number, level: Level): void => {
    if (at <= 0 || at >= text.length) return;
    const had = levels.get(at);
    if (had === undefined || level < had) levels.set(at, level);
  };
  for (const m of text.matchAll(WHITESPACE_RUN)) {
    const runEnd = m.index + m[0].length;
    const newlines = m[0].split('\n').length - 1;
    mark(runEnd, newlines >= 2 ? Level.paragraph : newlines === 1 ? Level.line : Level.word);
  }
  for (const m of text.matchAll(SENTENCE_END)) mark(m.index + m[0].length, Level.sentence);
  // Headings, skipping lines inside fenced code blocks (where '#' starts a comment).
  let fence: string | undefined;
  const headingEnds: number[] = [];
  let lineStart = 0;
  while (lineStart < text.length) {
    const nl = text.indexOf('\n', lineStart);
    const lineEnd = nl < 0 ? text.length : nl;
    const line = text.slice(lineStart, lineEnd);
    const f = FENCE.exec(line);
    if (fence === undefined) {
      if (f) fence = f[1];
      else if (HEADING.test(line)) {
        // After its indentation, so that the chunk starts at the '#'.
        mark(lineStart + line.indexOf('#'), Level.heading);
        headingEnds.push(lineEnd);
      }
    } else if (f && f[1][0] === fence[0] && f[1].length >= fence.length && line.trim() === f[1]) {
      fence = undefined;
    }
    lineStart = lineEnd + 1;
  }
  // A heading belongs with what follows it: the blank line after it is only a line break.
  const spaces = /\s*/y;
  for (const lineEnd of headingEnds) {
    spaces.lastIndex = lineEnd;
    const at = lineEnd + spaces.exec(text)![0].length;
    if (levels.get(at) === Level.paragraph) levels.set(at, Level.line);
  }
  const cuts = [...levels].map(([at, level]) => ({ at, level }));
  cuts.push({ at: text.length, level: Level.end });
  return cuts.sort((a, b) => a.at - b.at);
}

/** Offset `at` moved back off the low half of a surrogate pair, so a cut never splits a code point. */
function codePointFloor(text: string, at: number): number {
  if (at > 0 && at < text.length) {
    const c = text.charCodeAt(at);
    if (c >= 0xdc00 && c <= 0xdfff) {
      const h = text.charCodeAt(at - 1);
      if (h >= 0xd800 && h <= 0xdbff) return at - 1;
    }
  }
  return at;
}

/**
 * Splits `text` into chunks along paragraphs, headings and sentences (see the top of this file).
 * Deterministic: the same text, tokenizer and settings always give the same chunks. The chunks'
 * texts concatenate to `text`; each chunk's tokens are `tokenizer.encode(chunk.text, {addBos:
 * false})` and number at most `maxTokens`. An empty text gives no chunks.
 */
export function splitDocument(text: string, tokenizer: Tokenizer, settings: Partial<ChunkerSettings> = {}): DocumentChunk[] {
  const s = resolveChunkerSettings(settings);
  const sentenceLimit = Math.min(Math.floor(s.sentenceExtend * s.targetTokens), s.maxTokens);
  const lineLimit = Math.min(Math.floor(s.lineExtend * s.targetTokens), s.maxTokens);
  const cuts = findCuts(text);
  const chunks: DocumentChunk[] = [];
  let cutIndex = 0; // first cut after `start`
  let start = 0;
  while (start < text.length) {
    while (cuts[cutIndex].at <= start) cutIndex++;
    // Tokens of text[start, e), each encoded once per chunk.
    const encoded = new Map<number, number[]>();
    const tokensTo = (e: number): number[] => {
      let t = encoded.get(e);
      if (!t) {
        t = tokenizer.encode(text.slice(start, e), { addBos: false });
        encoded.set(e, t);
      }
      return t;
    };
    const count = (e: number): number => tokensTo(e).length;

    // The window of cuts worth looking at: up to the first one past maxTokens. Growing the
    // character span geometrically keeps this to a few encodes of about a chunk's length.
    let span = s.maxTokens * 4;
    let windowEnd = Math.min(text.length, start + span);
    while (windowEnd < text.length && count(codePointFloor(text, windowEnd)) <= s.maxTokens) {
      span *= 2;
      windowEnd = Math.min(text.length, start + span);
    }
    const window: Cut[] = [];
    for (let i = cutIndex; i < cuts.length && cuts[i].at <= windowEnd; i++) window.push(cuts[i]);

    let end = chooseEnd(text, start, windowEnd, window, s, sentenceLimit, lineLimit, count);
    end = absorbTrailingPiece(end, window, cuts, cutIndex, s, count);
    chunks.push({ index: chunks.length, text: text.slice(start, end), start, end, tokens: tokensTo(end) });
    start = end;
  }
  return chunks;
}

/** The furthest cut of at most `maxLevel` whose chunk has at most `limit` tokens (binary search: counts grow with the span). */
function lastFitting(window: readonly Cut[], maxLevel: Level, limit: number, count: (e: number) => number): Cut | undefined {
  const eligible = window.filter((c) => c.level <= maxLevel);
  let lo = 0;
  let hi = eligible.length - 1;
  let best: Cut | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (count(eligible[mid].at) <= limit) {
      best = eligible[mid];
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}

function chooseEnd(
  text: string,
  start: number,
  windowEnd: number,
  window: readonly Cut[],
  s: ChunkerSettings,
  sentenceLimit: number,
  lineLimit: number,
  count: (e: number) => number,
): number {
  // A heading ends the chunk once it holds minTokens; before that the heading joins it, so a
  // title line alone never becomes a chunk.
  let hardEnd: number | undefined;
  for (const c of window) {
    if (c.level <= Level.heading && count(c.at) >= s.minTokens) {
      hardEnd = c.at;
      break;
    }
  }
  const upTo = hardEnd === undefined ? window : window.filter((c) => c.at <= hardEnd);
  if (hardEnd !== undefined && count(hardEnd) <= s.targetTokens) return hardEnd;

  // Whole paragraphs while they fit the target; a cut that would leave a chunk under minTokens
  // (a heading line before a long paragraph) is passed over.
  const para = lastFitting(upTo, Level.paragraph, s.targetTokens, count);
  if (para && count(para.at) >= s.minTokens) return para.at;

  // EPIC: fill to the target, then run on to the next sentence end, else the next line break.
  const fill = lastFitting(upTo, Level.word, s.targetTokens, count);
  const fillAt = fill?.at ?? start;
  for (const [maxLevel, limit] of [
    [Level.sentence, sentenceLimit],
    [Level.line, lineLimit],
  ] as const) {
    const next = upTo.find((c) => c.at >= fillAt && c.level <= maxLevel);
    if (next && count(next.at) <= limit) return next.at;
  }
  if (fill) return fill.at;
  // One word longer than the target: the furthest character that fits.
  return fitCharacters(text, start, hardEnd ?? windowEnd, s.targetTokens, count);
}

/** The furthest offset in (start, bound] whose chunk has at most `limit` tokens; at least one code point. */
function fitCharacters(text: string, start: number, bound: number, limit: number, count: (e: number) => number): number {
  const first = codePointFloor(text, start + 1) === start ? start + 2 : start + 1;
  let lo = first;
  let hi = bound;
  let best = first;
  while (lo <= hi) {
    const mid = codePointFloor(text, (lo + hi) >> 1);
    if (mid < lo) {
      lo++;
      continue;
    }
    if (count(mid) <= limit) {
      best = Math.max(best, mid);
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}

/**
 * A chunk cut inside a paragraph (or before the end of the text) takes the rest of that paragraph
 * when the rest has fewer than minTokens and the whole stays within maxTokens, so that no tiny
 * tail becomes a chunk of its own.
 */
function absorbTrailingPiece(
  end: number,
  window: readonly Cut[],
  cuts: readonly Cut[],
  cutIndex: number,
  s: ChunkerSettings,
  count: (e: number) => number,
): number {
  const endCut = window.find((c) => c.at === end);
  if (end >= cuts[cuts.length - 1].at || (endCut && endCut.level <= Level.heading)) return end;
  // The piece runs to the next paragraph break after a cut inside a paragraph, and to the next
  // heading or the end of the text after a paragraph break.
  const boundary = endCut && endCut.level === Level.paragraph ? Level.heading : Level.paragraph;
  let i = cutIndex;
  while (cuts[i].at <= end) i++;
  while (cuts[i].level > boundary) i++;
  const pieceEnd = cuts[i].at;
  if (pieceEnd > (window[window.length - 1]?.at ?? end)) return end; // past maxTokens anyway
  const whole = count(pieceEnd);
  if (whole > s.maxTokens) return end;
  // The piece's size is taken as the tokens it adds to the chunk (close to its own count, and
  // no third encode).
  return whole - count(end) < s.minTokens ? pieceEnd : end;
}
