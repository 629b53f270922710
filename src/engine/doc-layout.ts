// How a documents request becomes a prompt: the chat template's text around the documents, the
// chunks' lead-in contexts, and which chunks fit the context (BM25 relevance to the question,
// kept in document order).
import MiniSearch from 'minisearch';
import { DEFAULT_CHUNKER_SETTINGS, splitDocument, type ChunkerSettings } from '../kv/chunker.ts';
import { chunkId } from '../kv/chunk-id.ts';
import { renderChatTemplate, type Tokenizer } from '../tokenizer/index.ts';
import type { ChunkContextMode, ChunkSettings } from './types.ts';

/**
 * What a chunk's KV is computed after, unless the engine is told otherwise. From bench:pic's
 * paired comparison on stories260K (bench/results/pic-*-quality.md, 41 prompts per chunk size):
 * the 8-token lead-in cut the mean KL to full prefill by 14% for naive reuse and 13% for AttnLink
 * k=1, with 95% bootstrap intervals below zero for both (better on 80-83% of prompts); the
 * document's preceding tokens cut it by 11% and 8%. The rule (lowest mean KL at k=1 among the modes
 * whose interval excludes zero for both methods) picks the lead-in. It costs nothing at link time.
 */
export const DEFAULT_CHUNK_CONTEXT: ChunkContextMode = 'lead-in';
export const DEFAULT_CONTEXT_TOKENS = 8;

/**
 * The fixed lead-in: neutral running text, so a chunk's first tokens are not computed as the
 * start of a text (the attention-sink mass they would learn alone). No BOS: on stories260K a BOS
 * lead-in made linking 4-5x worse, because that model reads BOS as "a new story begins".
 */
export const LEAD_IN_TEXT = 'and so it went on, as it had before.';

/** Resolved chunk settings (every field set). */
export type ResolvedChunkSettings = Required<ChunkSettings> & { kv: 'f32' | 'f16' };

export function resolveChunkSettings(s: ChunkSettings = {}, kv: 'f32' | 'f16'): ResolvedChunkSettings {
  return {
    targetTokens: s.targetTokens ?? DEFAULT_CHUNKER_SETTINGS.targetTokens,
    context: s.context ?? DEFAULT_CHUNK_CONTEXT,
    contextTokens: s.contextTokens ?? DEFAULT_CONTEXT_TOKENS,
    chunkBos: s.chunkBos ?? false,
    kv,
  };
}

/** The settings as they enter ids and manifests (stable key order). */
export function settingsRecord(s: ResolvedChunkSettings): Record<string, string | number | boolean> {
  return { targetTokens: s.targetTokens, context: s.context, contextTokens: s.context === 'none' ? 0 : s.contextTokens, chunkBos: s.chunkBos, kv: s.kv };
}

export function sameSettings(a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

/** A document's chunk as linked: its tokens (with BOS when chunkBos), its lead-in, its place in the text. */
export interface ReadChunk {
  id: string;
  tokens: number[];
  context: number[];
  start: number;
  end: number;
  index: number;
}

/** Splits a text into chunks (KVSplit) and names each by content, model and settings. */
export async function readDocument(text: string, tokenizer: Tokenizer, fingerprint: string, s: ResolvedChunkSettings): Promise<ReadChunk[]> {
  const chunker: Partial<ChunkerSettings> = { targetTokens: s.targetTokens };
  const pieces = splitDocument(text, tokenizer, chunker);
  const bos = s.chunkBos && tokenizer.addBos && tokenizer.bosId >= 0;
  const leadIn = s.context === 'lead-in' ? tokenizer.encode(LEAD_IN_TEXT).slice(-s.contextTokens) : [];
  const out: ReadChunk[] = [];
  let before: number[] = []; // the document's tokens so far, for 'previous'
  for (const p of pieces) {
    const tokens = bos ? [tokenizer.bosId, ...p.tokens] : p.tokens;
    const context = s.context === 'previous' ? before.slice(-s.contextTokens) : leadIn;
    const id = await chunkId({
      modelFingerprint: fingerprint,
      tokens,
      settings: { chunkBos: bos, kv: s.kv, context: s.context, contextIds: context.join(',') },
    });
    out.push({ id, tokens, context, start: p.start, end: p.end, index: p.index });
    before = before.length > 4 * s.contextTokens ? [...before.slice(-s.contextTokens), ...p.tokens] : [...before, ...p.tokens];
  }
  return out;
}

/** The prompt around the chunks: `prefix` before them, `suffix` (question, closing, generation prompt) after. */
export interface PromptFrame {
  prefix: number[];
  suffix: number[];
  chat: boolean;
}

const DOCUMENTS_MARK = '\u0000chunklm-documents\u0000';

/**
 * With a chat template: renders [system] + user(documents, question) with the generation prompt
 * and cuts the text where the documents go. Without one: `[BOS] ... question`.
 */
export function promptFrame(metadata: Readonly<Record<string, unknown>>, tokenizer: Tokenizer, question: string, system: string | undefined, withBos: boolean): PromptFrame {
  if (typeof metadata['tokenizer.chat_template'] === 'string') {
    const messages = [
      ...(system ? [{ role: 'system' as const, content: system }] : []),
      { role: 'user' as const, content: `${DOCUMENTS_MARK}\n\n${question}` },
    ];
    const text = renderChatTemplate(metadata, messages, { addGenerationPrompt: true });
    const at = text.indexOf(DOCUMENTS_MARK);
    if (at >= 0) {
      // Templates write BOS themselves when the model wants it; special tokens in them are parsed.
      const prefix = tokenizer.encode(text.slice(0, at), { addBos: false, parseSpecial: true });
      const suffix = tokenizer.encode(text.slice(at + DOCUMENTS_MARK.length), { addBos: false, parseSpecial: true });
      return { prefix, suffix, chat: true };
    }
  }
  const bos = withBos && tokenizer.addBos && tokenizer.bosId >= 0 ? [tokenizer.bosId] : [];
  const q = system ? `${system}\n\n${question}` : question;
  return { prefix: bos, suffix: tokenizer.encode(q), chat: false };
}

/**
 * Which chunks fit `budget` tokens: all when they do; otherwise the most relevant to the question
 * by BM25 (MiniSearch, with prefix and light fuzzy matching), chunks that match nothing after,
 * earliest first. Returns the kept indices in document order.
 */
export function fitChunks(chunks: readonly { text: string; tokens: number }[], question: string, budget: number): number[] {
  const total = chunks.reduce((n, c) => n + c.tokens, 0);
  if (total <= budget) return chunks.map((_, i) => i);
  const index = new MiniSearch<{ id: number; text: string }>({ fields: ['text'], idField: 'id' });
  index.addAll(chunks.map((c, id) => ({ id, text: c.text })));
  const scored = index.search(question, { prefix: true, fuzzy: 0.15, combineWith: 'OR' }).map((r) => Number(r.id));
  const seen = new Set(scored);
  const order = [...scored, ...chunks.map((_, i) => i).filter((i) => !seen.has(i))];
  const kept: number[] = [];
  let used = 0;
  for (const i of order) {
    if (used + chunks[i].tokens > budget) continue;
    kept.push(i);
    used += chunks[i].tokens;
  }
  return kept.sort((a, b) => a - b);
}

/** SHA-256 of a text, lowercase hex. */
export async function textHash(text: string): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}
