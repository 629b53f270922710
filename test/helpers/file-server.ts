// A static file server for download tests, in the test process: Range requests, HEAD, ETags and
// CORS like the Hugging Face Hub, a log of every request, and faults on demand (connections dropped
// mid-body, server errors, slow bodies) so that resume, retry and cancellation can be tested.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServedFile {
  bytes: Uint8Array;
  /** Sent quoted as the ETag header; none: no ETag. */
  etag?: string;
}

export interface RequestRecord {
  method: string;
  path: string;
  range?: string;
  /** Body bytes the answer carries (or would have, for a dropped connection). */
  bytes: number;
  /** Body bytes handed to the connection so far. */
  sent: number;
}

export interface Faults {
  /** The next `times` GETs send `afterBytes` bytes of their body, then the connection is destroyed. */
  drop?: { afterBytes: number; times: number };
  /** The next `times` GETs answer this status with no body. */
  status?: { code: number; times: number };
  /** Bodies go out `chunkBytes` at a time, `delayMs` apart. */
  slow?: { chunkBytes: number; delayMs: number };
}

export class FileServer {
  readonly files = new Map<string, ServedFile>();
  readonly log: RequestRecord[] = [];
  faults: Faults = {};
  private constructor(
    private readonly server: Server,
    readonly origin: string,
  ) {}

  static start(): Promise<FileServer> {
    let self: FileServer | undefined;
    const server = createServer((req, res) => self?.handle(req, res));
    return new Promise((resolve) => {
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        self = new FileServer(server, `http://127.0.0.1:${port}`);
        resolve(self);
      });
    });
  }

  /** Serves `bytes` at `path` (starting with '/'); returns its URL. */
  put(path: string, bytes: Uint8Array, etag?: string): string {
    this.files.set(path, { bytes, ...(etag !== undefined ? { etag } : {}) });
    return this.url(path);
  }

  url(path: string): string {
    return `${this.origin}${path}`;
  }

  /** GET requests so far, for paths starting with `prefix`: each one is a request for file bytes. */
  gets(prefix = '/'): RequestRecord[] {
    return this.log.filter((r) => r.method === 'GET' && r.path.startsWith(prefix));
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections(); // fetch keeps connections alive; close() would wait for them
      this.server.close(() => resolve());
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = decodeURIComponent(new URL(req.url ?? '/', this.origin).pathname);
    const range = req.headers.range;
    const record: RequestRecord = { method: req.method ?? '', path, ...(range ? { range } : {}), bytes: 0, sent: 0 };
    this.log.push(record);
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Expose-Headers', 'Content-Range, Content-Length, ETag, Accept-Ranges');
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'Access-Control-Allow-Headers': 'Range', 'Access-Control-Allow-Methods': 'GET, HEAD' }).end();
      return;
    }
    const file = this.files.get(path);
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    const size = file.bytes.byteLength;
    const headers: Record<string, string | number> = { 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream' };
    if (file.etag !== undefined) headers.ETag = `"${file.etag}"`;
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...headers, 'Content-Length': size }).end();
      return;
    }
    const { status } = this.faults;
    if (status && status.times > 0) {
      status.times--;
      res.writeHead(status.code, headers).end();
      return;
    }
    let start = 0;
    let end = size - 1;
    let code = 200;
    const m = /^bytes=(\d+)-(\d*)$/.exec(range ?? '');
    if (m) {
      start = Number(m[1]);
      end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
      if (start >= size || start > end) {
        res.writeHead(416, { ...headers, 'Content-Range': `bytes */${size}` }).end();
        return;
      }
      code = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
    const body = file.bytes.subarray(start, end + 1);
    record.bytes = body.byteLength;
    res.writeHead(code, { ...headers, 'Content-Length': body.byteLength });
    const { drop, slow } = this.faults;
    if (drop && drop.times > 0) {
      drop.times--;
      const part = body.subarray(0, Math.min(drop.afterBytes, body.byteLength));
      record.sent = part.byteLength;
      res.write(part, () => res.socket?.destroy());
      return;
    }
    if (slow) {
      let at = 0;
      const next = (): void => {
        if (res.destroyed || res.writableEnded) return;
        if (at >= body.byteLength) {
          res.end();
          return;
        }
        const chunk = body.subarray(at, at + slow.chunkBytes);
        at += chunk.byteLength;
        record.sent = at;
        res.write(chunk, () => setTimeout(next, slow.delayMs));
      };
      next();
      return;
    }
    record.sent = body.byteLength;
    res.end(body);
  }
}
