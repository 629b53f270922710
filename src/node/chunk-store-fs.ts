// Chunk KV in a folder (`--cache-dir`): one file per chunk id, written to a temporary name and
// renamed, so a crash never leaves a partial file under a chunk's name.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChunkStore } from '../kv/chunk-store.ts';

export class FolderChunkStore implements ChunkStore {
  constructor(readonly dir: string) {}

  private path(id: string): string {
    if (!/^[0-9a-f]{16,128}$/.test(id)) throw new Error(`not a chunk id: ${id}`);
    return join(this.dir, `${id}.clkv`);
  }

  async get(id: string): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(this.path(id)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async put(id: string, bytes: Uint8Array): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = `${this.path(id)}.${process.pid}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, this.path(id));
  }
}
