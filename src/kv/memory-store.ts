// The persistent tier in memory: for tests and one-off runs, and the simplest statement of the
// contract in store.ts. Values are copied on the way in and out, as a real store would, so that
// a caller reusing its buffers (or mutating a manifest it was given) never changes what is stored.
import { StorageError } from '../errors.ts';
import type { DocumentManifest, PersistentStore, StorageEstimate } from './store.ts';

export interface MemoryStoreOptions {
  /** Chunk bytes the store may hold; a write that would go over throws 'quota-exceeded'. */
  quotaBytes?: number;
  /** Why this store stands in for a persistent one (IndexedDB refused): surfaced in stats warnings. */
  notice?: string;
}

export class MemoryStore implements PersistentStore {
  readonly name = 'memory';
  readonly quotaBytes: number | undefined;
  readonly notice: string | undefined;
  private readonly chunks = new Map<string, Uint8Array>();
  private readonly manifests = new Map<string, DocumentManifest>();
  private chunkBytes = 0;

  constructor(options: MemoryStoreOptions = {}) {
    this.quotaBytes = options.quotaBytes;
    this.notice = options.notice;
  }

  async getChunk(id: string): Promise<Uint8Array | undefined> {
    return this.chunks.get(id)?.slice();
  }

  async getChunks(ids: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    return ids.map((id) => this.chunks.get(id)?.slice());
  }

  async putChunks(entries: readonly (readonly [string, Uint8Array])[]): Promise<void> {
    // Sized as the store would be after the write (an id written twice counts once), so that
    // rewriting chunks that are already there never fails for room.
    const after = new Map<string, number>();
    for (const [id, bytes] of entries) after.set(id, bytes.byteLength);
    let total = this.chunkBytes;
    for (const [id, size] of after) total += size - (this.chunks.get(id)?.byteLength ?? 0);
    if (this.quotaBytes !== undefined && total > this.quotaBytes) {
      throw new StorageError(
        'quota-exceeded',
        `the memory store holds at most ${this.quotaBytes} bytes of chunks; this write needs ${total}. Delete documents or raise quotaBytes.`,
        { bytes: total, quota: this.quotaBytes },
      );
    }
    for (const [id, bytes] of entries) this.chunks.set(id, bytes.slice());
    this.chunkBytes = total;
  }

  async deleteChunks(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      const bytes = this.chunks.get(id);
      if (!bytes) continue;
      this.chunkBytes -= bytes.byteLength;
      this.chunks.delete(id);
    }
  }

  async chunkIds(): Promise<string[]> {
    return [...this.chunks.keys()];
  }

  async getManifest(id: string): Promise<DocumentManifest | undefined> {
    const m = this.manifests.get(id);
    return m && structuredClone(m);
  }

  async listManifests(): Promise<DocumentManifest[]> {
    return [...this.manifests.values()].map((m) => structuredClone(m));
  }

  async putManifest(m: DocumentManifest): Promise<void> {
    this.manifests.set(m.id, structuredClone(m));
  }

  async deleteManifests(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.manifests.delete(id);
  }

  async estimate(): Promise<StorageEstimate> {
    const encoder = new TextEncoder();
    let usage = this.chunkBytes;
    for (const m of this.manifests.values()) usage += encoder.encode(JSON.stringify(m)).byteLength;
    return { usage, quota: this.quotaBytes ?? Number.POSITIVE_INFINITY };
  }
}
