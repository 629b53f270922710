// Byte sources: UrlSource against local HTTP servers (with and without Range support),
// BlobSource and FileSource range checks.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AbortedError, GGUFError } from '../../src/errors.ts';
import { BlobSource, GGMLType, UrlSource, gguf, parseGGUF, quantize, readTensorBytes, writeGGUF } from '../../src/gguf/index.ts';
import { FileSource } from '../../src/gguf/node-file-source.ts';
import { randomF32 } from '../helpers/gpu.ts';

// A 4 MiB tensor behind a small header: reading the header must not fetch the tensor.
const weights = randomF32(1 << 20, 9);
const model = writeGGUF({
  metadata: { 'general.architecture': gguf.string('test'), 'tokenizer.ggml.tokens': gguf.array('string', ['a', 'b', 'c']) },
  tensors: [
    { name: 'w', shape: [1024, 1024], type: GGMLType.F32, data: quantize(GGMLType.F32, weights) },
    { name: 'n', shape: [64], type: GGMLType.F32, data: quantize(GGMLType.F32, weights.subarray(0, 64)) },
  ],
});

interface ServerMode {
  ranges: boolean;
  head: boolean;
}

interface TestServer {
  url: string;
  servedBytes: number;
  requests: string[];
  close(): Promise<void>;
}

function serve(body: Uint8Array, mode: ServerMode): Promise<TestServer> {
  const state = { servedBytes: 0, requests: [] as string[] };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    state.requests.push(`${req.method} ${req.headers.range ?? ''}`.trim());
    if (req.url === '/missing.gguf') {
      res.writeHead(404).end();
      return;
    }
    if (req.method === 'HEAD') {
      if (!mode.head) res.writeHead(405).end();
      else res.writeHead(200, { 'Content-Length': body.length, 'Accept-Ranges': mode.ranges ? 'bytes' : 'none' }).end();
      return;
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (mode.ranges && m) {
      const start = Number(m[1]);
      const end = Math.min(Number(m[2]), body.length - 1);
      const part = body.subarray(start, end + 1);
      state.servedBytes += part.length;
      res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${body.length}`, 'Content-Length': part.length });
      res.end(part);
      return;
    }
    state.servedBytes += body.length;
    res.writeHead(200, { 'Content-Length': body.length });
    res.end(body);
  };
  const server: Server = createServer(handler);
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}/model.gguf`,
        get servedBytes() {
          return state.servedBytes;
        },
        requests: state.requests,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections(); // fetch keeps connections alive; close() would wait for them
            server.close(() => r());
          }),
      });
    });
  });
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GGUFError);
    return (err as GGUFError).code;
  }
  return undefined;
}

describe('UrlSource', () => {
  const servers: TestServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });
  const start = async (mode: ServerMode) => {
    const s = await serve(model, mode);
    servers.push(s);
    return s;
  };

  it('parses the header with range requests only, and reads tensors exactly', async () => {
    const s = await start({ ranges: true, head: true });
    const src = await UrlSource.open(s.url);
    expect(src.size).toBe(model.length);
    const f = await parseGGUF(src);
    expect(f.metadata['tokenizer.ggml.tokens']).toEqual(['a', 'b', 'c']);
    expect(f.tensors.map((t) => t.name)).toEqual(['w', 'n']);
    expect(s.servedBytes).toBeLessThan(model.length / 2); // the 4 MiB tensor was not downloaded
    const n = f.tensorIndex.get('n')!;
    const bytes = await readTensorBytes(src, n);
    expect(Buffer.compare(bytes, model.subarray(n.offset, n.offset + n.byteLength))).toBe(0);
    const w = f.tensorIndex.get('w')!;
    const chunks: number[] = [];
    const big = await readTensorBytes(src, w, { chunkSize: 1 << 20, onProgress: (l) => chunks.push(l) });
    expect(chunks).toEqual([1, 2, 3, 4].map((i) => i << 20));
    expect(Buffer.compare(big, model.subarray(w.offset, w.offset + w.byteLength))).toBe(0);
  });

  it('finds the size with a one-byte range request when HEAD is refused', async () => {
    const s = await start({ ranges: true, head: false });
    const src = await UrlSource.open(s.url);
    expect(src.size).toBe(model.length);
    expect(s.requests).toContain('GET bytes=0-0');
    expect((await parseGGUF(src)).tensors).toHaveLength(2);
  });

  it("refuses a server that ignores Range instead of downloading everything", async () => {
    const s = await start({ ranges: false, head: true });
    const src = await UrlSource.open(s.url); // HEAD alone cannot tell
    expect(await codeOf(parseGGUF(src))).toBe('range-unsupported');
    const s2 = await start({ ranges: false, head: false });
    expect(await codeOf(UrlSource.open(s2.url))).toBe('range-unsupported');
  });

  it('reports HTTP errors, unreachable hosts and aborts', async () => {
    const s = await start({ ranges: true, head: true });
    expect(await codeOf(UrlSource.open(s.url.replace('model', 'missing')))).toBe('http-error');
    expect(await codeOf(UrlSource.open('http://127.0.0.1:1/none.gguf', { retry: { retries: 1, initialDelayMs: 1 } }))).toBe('fetch-failed');
    const src = await UrlSource.open(s.url);
    const ac = new AbortController();
    ac.abort();
    await expect(src.read(0, 10, ac.signal)).rejects.toBeInstanceOf(AbortedError);
    expect(await codeOf(src.read(model.length - 4, 8))).toBe('truncated');
  });

  it('checks that the server sent the bytes asked for', async () => {
    // A fetch that answers 206 but with one byte too few.
    const short: typeof fetch = async (_url, init) => {
      const range = new Headers(init?.headers).get('range');
      if (!range) return new Response(null, { status: 200, headers: { 'Content-Length': '100' } });
      const [a, b] = range.replace('bytes=', '').split('-').map(Number);
      return new Response(new Uint8Array(b - a), { status: 206, headers: { 'Content-Range': `bytes ${a}-${b}/100` } });
    };
    const src = await UrlSource.open('http://example.invalid/m.gguf', { fetch: short });
    expect(src.size).toBe(100);
    expect(await codeOf(src.read(10, 20))).toBe('bad-response');
  });
});

describe('BlobSource and FileSource', () => {
  let dir: string;
  let path: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'chunklm-gguf-'));
    path = join(dir, 'model.gguf');
    writeFileSync(path, model);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('agree with each other and with the bytes', async () => {
    const file = await FileSource.open(path);
    const blob = new BlobSource(new File([model], 'model.gguf'));
    try {
      expect(file.size).toBe(model.length);
      expect(blob.size).toBe(model.length);
      expect(blob.name).toBe('model.gguf');
      expect(file.name).toBe('model.gguf');
      for (const [off, len] of [
        [0, 64],
        [1000, 3 << 20],
        [model.length - 7, 7],
        [5, 0],
      ]) {
        const a = await file.read(off, len);
        const b = await blob.read(off, len);
        expect(a.length).toBe(len);
        expect(Buffer.compare(a, b)).toBe(0);
        expect(Buffer.compare(a, model.subarray(off, off + len))).toBe(0);
      }
      const fa = await parseGGUF(file);
      const fb = await parseGGUF(blob);
      expect(fa.tensors).toEqual(fb.tensors);
      expect(fa.metadata).toEqual(fb.metadata);
      expect(await codeOf(file.read(model.length - 1, 2))).toBe('truncated');
      expect(await codeOf(blob.read(-1, 2))).toBe('bad-read');
    } finally {
      await file.close();
    }
    expect(await codeOf(file.read(0, 4))).toBe('closed');
    expect(await codeOf(FileSource.open(join(dir, 'nope.gguf')))).toBe('open-failed');
  });
});
