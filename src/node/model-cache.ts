// The Node model cache: downloaded GGUF files in a folder (by default under the user's cache
// directory, see defaultModelCacheDir). An entry is two files named by a hash of its URL:
// `<key>.gguf` (the bytes) and `<key>.json` (url, bytes, etag, cachedAt). A download streams into
// `<key>.<pid>.<n>.part`, is flushed, renamed to `<key>.gguf`, and only then is the `.json` written
// (itself through a rename): an entry is read only when its `.json` names a `.gguf` of the size it
// says, so a killed download leaves debris that is swept later, never an entry.
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { StorageError } from '../errors.ts';
import { FileSource } from '../gguf/node-file-source.ts';
import { checkWrittenBytes, type CachedModelFile, type ModelCache } from '../hub/model-cache.ts';

/**
 * Where models are cached unless told otherwise: `$XDG_CACHE_HOME/chunklm/models` (default
 * `~/.cache/chunklm/models`) on Linux and other Unixes, `~/Library/Caches/chunklm/models` on macOS,
 * `%LOCALAPPDATA%\chunklm\models` on Windows.
 */
export function defaultModelCacheDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform, home = homedir()): string {
  if (platform === 'win32') return join(env.LOCALAPPDATA ?? join(home, 'AppData', 'Local'), 'chunklm', 'models');
  if (platform === 'darwin') return join(home, 'Library', 'Caches', 'chunklm', 'models');
  return join(env.XDG_CACHE_HOME || join(home, '.cache'), 'chunklm', 'models');
}

/** A `.gguf` without its `.json` this old belongs to a writer that died between its two renames. */
const ORPHAN_AGE_MS = 10 * 60 * 1000;

let partCounter = 0;

export class FolderModelCache implements ModelCache {
  readonly description: string;

  constructor(readonly dir: string) {
    this.description = dir;
  }

  async list(): Promise<CachedModelFile[]> {
    const names = await this.names();
    await this.sweep(names);
    const out: CachedModelFile[] = [];
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const key = name.slice(0, -'.json'.length);
      const entry = await this.readEntry(key);
      if (entry) out.push(entry);
    }
    return out.sort((a, b) => a.cachedAt - b.cachedAt || a.url.localeCompare(b.url));
  }

  async open(url: string): Promise<{ entry: CachedModelFile; source: FileSource } | undefined> {
    const key = keyOf(url);
    const entry = await this.readEntry(key);
    if (!entry || entry.url !== url) return undefined;
    const source = await FileSource.open(this.path(key, '.gguf'));
    if (source.size !== entry.bytes) {
      await source.close();
      await this.remove(url);
      return undefined;
    }
    return { entry, source };
  }

  async write(file: Omit<CachedModelFile, 'cachedAt'>, body: AsyncIterable<Uint8Array>): Promise<CachedModelFile> {
    const key = keyOf(file.url);
    await fsCall(mkdir(this.dir, { recursive: true }), 'create', this.dir);
    await this.remove(file.url);
    const part = this.path(key, `.${process.pid}.${partCounter++}.part`);
    const handle = await fsCall(open(part, 'w'), 'write', part);
    let closed = false;
    try {
      let written = 0;
      for await (const chunk of body) {
        for (let at = 0; at < chunk.byteLength; ) {
          const { bytesWritten } = await fsCall(handle.write(chunk, at, chunk.byteLength - at), 'write', part, file.url);
          at += bytesWritten;
        }
        written += chunk.byteLength;
      }
      checkWrittenBytes(file, written);
      await fsCall(handle.sync(), 'write', part, file.url);
      closed = true;
      await handle.close();
      await fsCall(rename(part, this.path(key, '.gguf')), 'write', part, file.url);
      const entry: CachedModelFile = { url: file.url, bytes: file.bytes, ...(file.etag !== undefined ? { etag: file.etag } : {}), cachedAt: Date.now() };
      const metaTmp = this.path(key, `.${process.pid}.${partCounter++}.json.part`);
      const meta = await fsCall(open(metaTmp, 'w'), 'write', metaTmp);
      try {
        await meta.writeFile(JSON.stringify(entry));
        await meta.sync();
      } finally {
        await meta.close();
      }
      await fsCall(rename(metaTmp, this.path(key, '.json')), 'write', metaTmp, file.url);
      return entry;
    } catch (err) {
      if (!closed) await handle.close().catch(() => undefined);
      await rm(part, { force: true }).catch(() => undefined);
      throw err;
    }
  }

  async remove(url: string): Promise<boolean> {
    const key = keyOf(url);
    const had = (await this.readEntry(key)) !== undefined;
    // The .json goes first: without it, what is left is not an entry.
    await fsCall(rm(this.path(key, '.json'), { force: true }), 'remove', this.dir, url);
    await fsCall(rm(this.path(key, '.gguf'), { force: true }), 'remove', this.dir, url);
    return had;
  }

  private path(key: string, ext: string): string {
    return join(this.dir, `${key}${ext}`);
  }

  private async names(): Promise<string[]> {
    try {
      return await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw storageError(err, 'list', this.dir);
    }
  }

  private async readEntry(key: string): Promise<CachedModelFile | undefined> {
    let meta: unknown;
    try {
      meta = JSON.parse(await readFile(this.path(key, '.json'), 'utf8'));
    } catch {
      return undefined;
    }
    const m = meta as Partial<CachedModelFile>;
    if (typeof m.url !== 'string' || !Number.isSafeInteger(m.bytes) || typeof m.cachedAt !== 'number' || (m.etag !== undefined && typeof m.etag !== 'string')) return undefined;
    if (keyOf(m.url) !== key) return undefined;
    try {
      if ((await stat(this.path(key, '.gguf'))).size !== m.bytes) return undefined;
    } catch {
      return undefined;
    }
    return { url: m.url, bytes: m.bytes as number, ...(m.etag !== undefined ? { etag: m.etag } : {}), cachedAt: m.cachedAt };
  }

  /** Removes what killed writers left: parts of processes no longer running, and old `.gguf` files without a `.json`. */
  private async sweep(names: string[]): Promise<void> {
    const present = new Set(names);
    for (const name of names) {
      const part = /^[0-9a-f]+\.(\d+)\.\d+\.(?:json\.)?part$/.exec(name);
      if (part) {
        if (!processAlive(Number(part[1]))) await rm(join(this.dir, name), { force: true }).catch(() => undefined);
        continue;
      }
      if (name.endsWith('.gguf') && !present.has(`${name.slice(0, -'.gguf'.length)}.json`)) {
        const path = join(this.dir, name);
        const s = await stat(path).catch(() => undefined);
        if (s && Date.now() - s.mtimeMs > ORPHAN_AGE_MS) await rm(path, { force: true }).catch(() => undefined);
      }
    }
  }
}

function keyOf(url: string): string {
  return createHash('sha256').update(url).digest('hex').slice(0, 40);
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function fsCall<T>(p: Promise<T>, what: string, path: string, url?: string): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw storageError(err, what, path, url);
  }
}

function storageError(err: unknown, what: string, path: string, url?: string): StorageError {
  const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new StorageError('quota-exceeded', `the model cache ${path} is out of space${url ? ` for ${url}` : ''} (${code})`, { path, url, errno: code }, { cause: err });
  }
  return new StorageError('cache-failed', `the model cache could not ${what} ${path} (${code})`, { path, url, errno: code }, { cause: err });
}
