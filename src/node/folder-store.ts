// The persistent tier in a folder, for Node: `dir/chunks/<id>.clkv` holds a chunk record and
// `dir/documents/<url-encoded id>.json` a document manifest. Every file is written under a
// temporary name in the same folder and renamed, so a killed writer never leaves a partial file
// under a real name; at worst it leaves a `*.tmp` file, which sweepTemporary() removes.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { StorageError } from '../errors.ts';
import { isDocumentManifest } from '../kv/store.ts';
import type { DocumentManifest, PersistentStore, StorageEstimate } from '../kv/store.ts';

const CHUNK_ID = /^[0-9a-f]{16,128}$/;
const CHUNK_FILE = /^([0-9a-f]{16,128})\.clkv$/;
const TEMPORARY_SUFFIX = '.tmp';

function errnoCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  return typeof err.code === 'string' ? err.code : undefined;
}

function toStorageError(err: unknown, what: string, bytes?: number): StorageError {
  if (err instanceof StorageError) return err;
  const code = errnoCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new StorageError('quota-exceeded', `no room to ${what} (${code}); free disk space or delete documents`, { bytes, errno: code }, { cause: err });
  }
  return new StorageError('store-unavailable', `cannot ${what}: ${message}`, { errno: code }, { cause: err });
}

/**
 * A document id as a file name: percent-encoded, and upper-case letters and the characters
 * encodeURIComponent leaves alone (`!'()*~`) encoded too, so that ids differing only in case stay
 * apart on case-insensitive file systems and every name is legal on Windows.
 */
function manifestFileName(id: string): string {
  let name = '';
  for (const ch of id) {
    if (/[a-z0-9._-]/.test(ch)) name += ch;
    else {
      const encoded = encodeURIComponent(ch);
      name += encoded === ch ? `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}` : encoded;
    }
  }
  return `${name}.json`;
}

/** A unique temporary name beside `path`, in the same folder so that the rename is atomic. */
function temporaryPath(path: string): string {
  return `${path}.${process.pid}-${randomBytes(6).toString('hex')}${TEMPORARY_SUFFIX}`;
}

/** A Buffer as a plain Uint8Array, without a copy when it owns its whole memory. */
function plainBytes(buf: Buffer): Uint8Array {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) return new Uint8Array(buf.buffer);
  return new Uint8Array(buf);
}

/** Makes a rename in `dir` durable. Some platforms cannot open a folder (Windows): best effort there. */
async function syncFolder(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
  } catch {
    return;
  }
  try {
    await handle.sync();
  } catch (err) {
    const code = errnoCode(err);
    if (code !== 'EINVAL' && code !== 'EPERM' && code !== 'EISDIR' && code !== 'ENOTSUP') throw err;
  } finally {
    await handle.close();
  }
}

/** Runs `fn` over `items` at most `limit` at a time: thousands of files open at once hit EMFILE. */
async function mapLimited<T, R>(items: readonly T[], fn: (item: T, i: number) => Promise<R>, limit = 32): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

async function listFolder(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw toStorageError(err, `list ${dir}`);
  }
}

export class FolderStore implements PersistentStore {
  readonly name: string;
  private readonly chunksDir: string;
  private readonly documentsDir: string;
  private folders: Promise<void> | undefined;
  private corrupt = 0;

  constructor(readonly dir: string) {
    this.name = dir;
    this.chunksDir = join(dir, 'chunks');
    this.documentsDir = join(dir, 'documents');
  }

  /** Manifest files that listManifests() skipped (unreadable, not JSON, not a manifest), at its last call. */
  get corruptManifests(): number {
    return this.corrupt;
  }

  private chunkPath(id: string): string {
    if (!CHUNK_ID.test(id)) {
      throw new StorageError('bad-id', `not a chunk id: '${id}' (expected 16 to 128 lower-case hex digits)`, { id });
    }
    return join(this.chunksDir, `${id}.clkv`);
  }

  private manifestPath(id: string): string {
    return join(this.documentsDir, manifestFileName(id));
  }

  private ensureFolders(): Promise<void> {
    this.folders ??= Promise.all([mkdir(this.chunksDir, { recursive: true }), mkdir(this.documentsDir, { recursive: true })]).then(
      () => undefined,
      (err: unknown) => {
        this.folders = undefined;
        throw toStorageError(err, `create the store folders under ${this.dir}`);
      },
    );
    return this.folders;
  }

  async getChunk(id: string): Promise<Uint8Array | undefined> {
    return (await this.getChunks([id]))[0];
  }

  async getChunks(ids: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    const paths = ids.map((id) => this.chunkPath(id));
    return mapLimited(paths, async (path, i) => {
      try {
        return plainBytes(await readFile(path));
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return undefined;
        throw toStorageError(err, `read chunk ${ids[i]}`);
      }
    });
  }

  /**
   * Writes every record to a temporary file first and renames them only when all are written:
   * a failed write leaves none of them. A crash during the renames can leave some records
   * stored, which is harmless: no manifest names them yet, and chunk records are idempotent.
   */
  async putChunks(entries: readonly (readonly [string, Uint8Array])[]): Promise<void> {
    if (entries.length === 0) return;
    const paths = entries.map(([id]) => this.chunkPath(id));
    const bytes = entries.reduce((sum, [, record]) => sum + record.byteLength, 0);
    await this.ensureFolders();
    const temps = paths.map(temporaryPath);
    // Every write runs to its end (settled, not raced), so that the cleanup below sees all temps.
    const failures = await mapLimited(temps, (tmp, i) =>
      this.writeTemporary(tmp, entries[i][1]).then(
        () => undefined,
        (err: unknown) => err ?? new Error(`cannot write ${tmp}`),
      ),
    );
    const failure = failures.find((err) => err !== undefined);
    try {
      if (failure !== undefined) throw failure;
      for (let i = 0; i < temps.length; i++) await rename(temps[i], paths[i]);
    } catch (err) {
      await Promise.all(temps.map((tmp) => rm(tmp, { force: true })));
      throw toStorageError(err, `store ${entries.length} chunks (${bytes} bytes) in ${this.chunksDir}`, bytes);
    }
  }

  private async writeTemporary(path: string, data: Uint8Array | string, sync = false): Promise<void> {
    const handle = await open(path, 'wx');
    try {
      await handle.writeFile(data);
      if (sync) await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async deleteChunks(ids: readonly string[]): Promise<void> {
    const paths = ids.map((id) => this.chunkPath(id));
    try {
      await mapLimited(paths, (path) => rm(path, { force: true }));
    } catch (err) {
      throw toStorageError(err, `delete chunks in ${this.chunksDir}`);
    }
  }

  async chunkIds(): Promise<string[]> {
    const ids: string[] = [];
    for (const file of await listFolder(this.chunksDir)) {
      const m = CHUNK_FILE.exec(file);
      if (m) ids.push(m[1]);
    }
    return ids;
  }

  async getManifest(id: string): Promise<DocumentManifest | undefined> {
    let text: string;
    try {
      text = await readFile(this.manifestPath(id), 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw toStorageError(err, `read document ${id}`);
    }
    // A file that is not a manifest reads as a miss, as an unreadable record does.
    try {
      const value: unknown = JSON.parse(text);
      return isDocumentManifest(value) && value.id === id ? value : undefined;
    } catch {
      return undefined;
    }
  }

  async listManifests(): Promise<DocumentManifest[]> {
    const files = (await listFolder(this.documentsDir)).filter((f) => f.endsWith('.json'));
    const read = await mapLimited(files, async (file): Promise<DocumentManifest | 'gone' | 'corrupt'> => {
      try {
        const value: unknown = JSON.parse(await readFile(join(this.documentsDir, file), 'utf8'));
        return isDocumentManifest(value) ? value : 'corrupt';
      } catch (err) {
        // Deleted between the listing and the read: not corrupt, just gone.
        return errnoCode(err) === 'ENOENT' ? 'gone' : 'corrupt';
      }
    });
    this.corrupt = read.filter((r) => r === 'corrupt').length;
    return read.filter((r): r is DocumentManifest => typeof r === 'object');
  }

  /** Durable once resolved: the file is synced before the rename and the folder after it. */
  async putManifest(m: DocumentManifest): Promise<void> {
    await this.ensureFolders();
    const path = this.manifestPath(m.id);
    const tmp = temporaryPath(path);
    try {
      await this.writeTemporary(tmp, JSON.stringify(m), true);
      await rename(tmp, path);
      await syncFolder(this.documentsDir);
    } catch (err) {
      await rm(tmp, { force: true });
      throw toStorageError(err, `store document ${m.id} in ${this.documentsDir}`);
    }
  }

  async deleteManifests(ids: readonly string[]): Promise<void> {
    try {
      await Promise.all(ids.map((id) => rm(this.manifestPath(id), { force: true })));
    } catch (err) {
      throw toStorageError(err, `delete documents in ${this.documentsDir}`);
    }
  }

  /**
   * Removes temporary files left by writers that were killed: those older than `olderThanMs`
   * (a minute by default, so that a write in progress in another process is left alone).
   * Returns how many it removed.
   */
  async sweepTemporary(olderThanMs = 60_000): Promise<number> {
    const now = Date.now();
    let removed = 0;
    for (const dir of [this.chunksDir, this.documentsDir]) {
      for (const file of await listFolder(dir)) {
        if (!file.endsWith(TEMPORARY_SUFFIX)) continue;
        const path = join(dir, file);
        try {
          if (now - (await stat(path)).mtimeMs < olderThanMs) continue;
          await rm(path, { force: true });
          removed++;
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') throw toStorageError(err, `remove ${path}`);
        }
      }
    }
    return removed;
  }

  /** usage: bytes of the files under the store; quota: usage plus the space free to this user. */
  async estimate(): Promise<StorageEstimate | undefined> {
    let free: number;
    try {
      const fs = await statfs(this.dir);
      free = fs.bavail * fs.bsize;
    } catch {
      return undefined;
    }
    let usage = 0;
    for (const dir of [this.chunksDir, this.documentsDir]) {
      for (const file of await listFolder(dir)) {
        try {
          usage += (await stat(join(dir, file))).size;
        } catch {
          // removed while we counted
        }
      }
    }
    return { usage, quota: free + usage };
  }
}
