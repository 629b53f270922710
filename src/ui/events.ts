// What the demo's components tell each other. Each component takes the page's one
// ChunklmClient as a property and fires these (bubbling, composed) events; <chunklm-app> holds
// the shared state and passes it down as properties. Components import only the client and the
// public API types, never engine/ or worker/ internals.
import type { ChunkSource, LinkMethod, ModelInfo } from '../api.ts';

/** What the visitor set in the settings panel; the chat and the model panel read it. */
export interface DemoSettings {
  method: LinkMethod;
  /** AttnLink: tokens recomputed at the start of each chunk. */
  k: number;
  /** CacheBlend: share of chunk tokens recomputed. */
  ratio: number;
  /** Tokens per chunk when a document is read (documents read with another size are read again when used). */
  chunkTokens: number;
  /** KV precision in the GPU pool and in storage; applies at the next model load. */
  kvDtype: 'f16' | 'f32';
  maxTokens: number;
  /** 0: greedy. */
  temperature: number;
  topK: number;
  topP: number;
  /** undefined: a new seed per answer. */
  seed: number | undefined;
}

export const DEFAULT_SETTINGS: DemoSettings = {
  method: 'attnlink',
  k: 16,
  ratio: 0.15,
  chunkTokens: 256,
  kvDtype: 'f16',
  maxTokens: 256,
  temperature: 0,
  topK: 40,
  topP: 0.95,
  seed: undefined,
};

/** One answer as the TTFT chart draws it. */
export interface AnswerRecord {
  /** 1-based, in the order answers were asked in this page. */
  n: number;
  method: LinkMethod;
  ttftMs: number;
  promptTokens: number;
  reusedTokens: number;
  recomputedTokens: number;
  computedTokens: number;
  /** Chunks by where their KV came from. */
  sources: Record<ChunkSource, number>;
  finishReason: string;
}

export interface ChunklmEvents {
  /** A model finished loading (model panel). */
  'chunklm-model-loaded': CustomEvent<ModelInfo>;
  /** The model was unloaded, or a load started that replaces it (model panel). */
  'chunklm-model-unloaded': CustomEvent<void>;
  /** The documents chosen for questions changed (documents panel): their ids, in list order. */
  'chunklm-selection-changed': CustomEvent<string[]>;
  /** The documents in the store changed (documents panel, or an answer that read one again). */
  'chunklm-documents-changed': CustomEvent<void>;
  /** The visitor changed a setting (settings panel). */
  'chunklm-settings-changed': CustomEvent<DemoSettings>;
  /** An answer started (true) or ended (false) (chat). */
  'chunklm-busy': CustomEvent<boolean>;
  /** An answer ended, stopped ones included (chat). */
  'chunklm-answer': CustomEvent<AnswerRecord>;
}

/** Fires one of the events above from `el` (bubbling out of shadow roots). */
export function emit<K extends keyof ChunklmEvents>(el: EventTarget, type: K, detail: ChunklmEvents[K]['detail']): void {
  el.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
}

declare global {
  interface HTMLElementEventMap extends ChunklmEvents {}
}
