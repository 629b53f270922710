// The persistent tier of the chunk cache, as the engine sees it: content-addressed chunk records
// and document manifests. Implemented over IndexedDB in a page (idb-store.ts), over a folder on
// Node (src/node/folder-store.ts), and in memory for tests and one-off runs (memory-store.ts).
//
// The contract every implementation keeps:
// - chunk writes are idempotent (same id, same bytes), so two tabs writing one chunk agree;
// - `putChunks` writes all of its records in one transaction (all or none; a folder renames its
//   files one by one, so a crash can leave some of them, which no manifest names yet: orphans the
//   next start collects);
// - `putManifest` is durable once it resolves (IndexedDB: a 'strict' transaction; a folder: a
//   renamed, fsynced file), and is written only after the chunks it names, so a killed writer
//   leaves the whole document or none of it. Chunk writes are 'relaxed': a power cut (not a
//   killed tab) can lose a chunk a durable manifest names, which then reads as a miss and is
//   recomputed;
// - a record that cannot be read (a missing blob file, NotReadableError) reads as undefined: a miss;
// - a write the backing storage refuses for lack of room throws StorageError 'quota-exceeded'.

/** A chunk a manifest names: its id, its tokens (to recompute it on a miss) and its stored size. */
export interface ManifestChunk {
  id: string;
  /** The chunk's token ids, as it is linked (no lead-in). */
  tokens: number[];
  /** Tokens its KV was computed after (a lead-in or the document's preceding tokens); absent when none. */
  context?: number[];
  /** UTF-16 offsets of the chunk's text in the document. */
  start: number;
  end: number;
  /** Bytes of its stored record (0 when not stored). */
  bytes: number;
}

/** A document as stored: what it is, and how it was read for one model. */
export interface DocumentManifest {
  /** Manifest layout version (DOCUMENT_MANIFEST_VERSION). */
  version: number;
  id: string;
  title: string;
  text: string;
  /** SHA-256 (hex) of the text. */
  textHash: string;
  /** The fingerprint of the model whose chunks are listed. */
  modelFingerprint: string;
  /** Chunker and chunk-context settings the chunks were made with (they enter the chunk ids). */
  settings: Record<string, string | number | boolean>;
  chunks: ManifestChunk[];
  tokens: number;
  bytes: number;
  createdAt: number;
  lastUsedAt: number;
  pinned: boolean;
}

export const DOCUMENT_MANIFEST_VERSION = 1;

/** Whether a stored value has the manifest's shape; the stores skip (and count) those that do not. */
export function isDocumentManifest(value: unknown): value is DocumentManifest {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  return typeof m.version === 'number' && typeof m.id === 'string' && Array.isArray(m.chunks);
}

export interface ChunkStore {
  /** The record, or undefined when absent or unreadable (a miss). */
  getChunk(id: string): Promise<Uint8Array | undefined>;
  /** Several records in one read; undefined entries are misses. */
  getChunks(ids: readonly string[]): Promise<(Uint8Array | undefined)[]>;
  /** Writes the records in one transaction. Throws StorageError 'quota-exceeded' when refused for room. */
  putChunks(entries: readonly (readonly [string, Uint8Array])[]): Promise<void>;
  deleteChunks(ids: readonly string[]): Promise<void>;
  /** Every stored chunk id (never the values). */
  chunkIds(): Promise<string[]>;
}

export interface ManifestStore {
  getManifest(id: string): Promise<DocumentManifest | undefined>;
  listManifests(): Promise<DocumentManifest[]>;
  /** Durable once resolved. */
  putManifest(m: DocumentManifest): Promise<void>;
  deleteManifests(ids: readonly string[]): Promise<void>;
}

/** Room the backing storage reports, when it can (navigator.storage.estimate in a page). */
export interface StorageEstimate {
  usage: number;
  quota: number;
  /** Whether the browser granted persistent storage (never evicted under pressure). */
  persisted?: boolean;
}

/** Everything a documents library keeps: chunks and manifests, plus what the storage allows. */
export interface PersistentStore extends ChunkStore, ManifestStore {
  /** Where it lives, for messages ('indexeddb:chunklm', a folder path, 'memory'). */
  readonly name: string;
  /** Set when the store keeps less than the host meant it to (memory standing in for IndexedDB): why. */
  readonly notice?: string;
  estimate?(): Promise<StorageEstimate | undefined>;
  /** Asks the browser not to evict this origin's data (navigator.storage.persist). */
  persist?(): Promise<boolean>;
  /** Called with a note when another tab or process changed the documents (BroadcastChannel). */
  onChange?(listener: (change: StoreChange) => void): () => void;
  /** Tells other tabs that documents changed. */
  announce?(change: StoreChange): void;
  close?(): void;
}

export interface StoreChange {
  kind: 'added' | 'removed' | 'cleared' | 'updated';
  ids: string[];
}
