// A local file as a ByteSource, for Node only (CLI, tests, benchmarks): positioned reads
// through one open FileHandle, so nothing but the requested ranges is loaded.
import { open, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { GGUFError, throwIfAborted } from '../errors.ts';
import { checkRange, type ByteSource } from './source.ts';

export class FileSource implements ByteSource {
  private closed = false;

  private constructor(
    private readonly handle: FileHandle,
    readonly name: string,
    readonly size: number,
    /** Absolute or relative path the file was opened with. */
    readonly path: string,
  ) {}

  static async open(path: string): Promise<FileSource> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
      throw new GGUFError('open-failed', `cannot open ${path} (${code}); check the path and its permissions`, { path, errno: code }, { cause: err });
    }
    const stat = await handle.stat();
    if (!stat.isFile()) {
      await handle.close();
      throw new GGUFError('open-failed', `${path} is not a regular file`, { path });
    }
    return new FileSource(handle, basename(path), stat.size, path);
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    if (this.closed) throw new GGUFError('closed', `${this.path} was already closed`, { path: this.path });
    checkRange(this, offset, length);
    throwIfAborted(signal);
    const out = new Uint8Array(length);
    // read() may return fewer bytes than asked (large reads are split by the OS).
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(out, done, length - done, offset + done);
      if (bytesRead === 0) {
        throw new GGUFError('truncated', `${this.path} ended at byte ${offset + done} while reading; was it changed during loading?`, {
          path: this.path,
          offset: offset + done,
        });
      }
      done += bytesRead;
    }
    throwIfAborted(signal);
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}
