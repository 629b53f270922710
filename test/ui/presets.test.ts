// The model presets (src/ui/presets.ts): whether the page serves the local demo model, checked with
// fake fetch functions (a GGUF answered 206 to a range, a single-page-app fallback, a 404, a host
// that refuses HEAD, a network failure), and URLs compared as absolute ones.
import { describe, expect, it } from 'vitest';
import { DEFAULT_HUB_PRESET, LOCAL_DEMO_MODEL, MODEL_PRESETS, absoluteUrl, localDemoAvailable, presetForUrl } from '../../src/ui/presets.ts';

const GGUF = new Uint8Array([0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0]);
const HTML = new TextEncoder().encode('<!doctype html><html><body>app</body></html>');

interface Call {
  url: string;
  method: string;
  range: string | null;
}

/** A fetch that answers HEAD with `head` and GET with `get`, and records the calls. */
function fakeFetch(head: (() => Response) | 'throw', get: () => Response): { fetchFn: typeof fetch; calls: Call[] } {
  const calls: Call[] = [];
  const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const method = init?.method ?? 'GET';
    calls.push({ url: String(input), method, range: new Headers(init?.headers).get('range') });
    if (method === 'HEAD') {
      if (head === 'throw') throw new TypeError('Failed to fetch');
      return head();
    }
    return get();
  }) as typeof fetch;
  return { fetchFn, calls };
}

const ggufHead = () => new Response(null, { status: 200, headers: { 'content-type': 'application/octet-stream', 'content-length': '1185376' } });
const ggufRange = () => new Response(GGUF.slice(0, 4), { status: 206, headers: { 'content-range': 'bytes 0-3/1185376' } });

describe('localDemoAvailable', () => {
  it('true for a GGUF answered 206 to the range, asking for 4 bytes at the relative URL', async () => {
    const { fetchFn, calls } = fakeFetch(ggufHead, ggufRange);
    expect(await localDemoAvailable(fetchFn)).toBe(true);
    expect(calls.map((c) => c.method)).toEqual(['HEAD', 'GET']);
    expect(calls[1].range).toBe('bytes=0-3');
    expect(calls.every((c) => c.url === LOCAL_DEMO_MODEL.url)).toBe(true);
  });

  it('true when the server ignores the range and sends the whole file (only 4 bytes are read)', async () => {
    const { fetchFn } = fakeFetch(ggufHead, () => new Response(GGUF, { status: 200 }));
    expect(await localDemoAvailable(fetchFn)).toBe(true);
  });

  it('false for an HTML fallback page, whether HEAD says text/html or not', async () => {
    const htmlHead = fakeFetch(() => new Response(null, { status: 200, headers: { 'content-type': 'text/html; charset=utf-8' } }), () => new Response(HTML));
    expect(await localDemoAvailable(htmlHead.fetchFn)).toBe(false);
    expect(htmlHead.calls).toHaveLength(1); // decided by the HEAD alone
    const silentHead = fakeFetch(() => new Response(null, { status: 200 }), () => new Response(HTML, { status: 200 }));
    expect(await localDemoAvailable(silentHead.fetchFn)).toBe(false);
    expect(silentHead.calls).toHaveLength(2);
  });

  it('false for a 404, without a second request', async () => {
    const { fetchFn, calls } = fakeFetch(() => new Response(null, { status: 404 }), ggufRange);
    expect(await localDemoAvailable(fetchFn)).toBe(false);
    expect(calls).toHaveLength(1);
  });

  it('HEAD refused (405, 501, or a thrown error): the range request decides', async () => {
    for (const head of [() => new Response(null, { status: 405 }), () => new Response(null, { status: 501 }), 'throw' as const]) {
      expect(await localDemoAvailable(fakeFetch(head, ggufRange).fetchFn)).toBe(true);
      expect(await localDemoAvailable(fakeFetch(head, () => new Response(null, { status: 404 })).fetchFn)).toBe(false);
    }
  });

  it('false when the body is shorter than the signature, or fetch throws', async () => {
    expect(await localDemoAvailable(fakeFetch(ggufHead, () => new Response(GGUF.slice(0, 2), { status: 206 })).fetchFn)).toBe(false);
    const throwing = (async () => {
      throw new TypeError('Failed to fetch');
    }) as typeof fetch;
    expect(await localDemoAvailable(throwing)).toBe(false);
  });
});

describe('presetForUrl and absoluteUrl', () => {
  const page = 'https://demo.org/hosted/app/index.html';

  it('absoluteUrl resolves against the base, and leaves what cannot be parsed', () => {
    expect(absoluteUrl('models/a.gguf', page)).toBe('https://demo.org/hosted/app/models/a.gguf');
    expect(absoluteUrl('https://h.org/a b.gguf', page)).toBe('https://h.org/a%20b.gguf');
    expect(absoluteUrl('not a url', undefined)).toBe('not a url');
  });

  it('the local demo model by its relative or absolute URL, under the page’s folder only', () => {
    expect(presetForUrl('models/stories260K.gguf', page)).toBe(LOCAL_DEMO_MODEL);
    expect(presetForUrl('https://demo.org/hosted/app/models/stories260K.gguf', page)).toBe(LOCAL_DEMO_MODEL);
    expect(presetForUrl('https://demo.org/models/stories260K.gguf', page)).toBeUndefined();
  });

  it('Hub presets by their URL; other URLs have none', () => {
    expect(presetForUrl(DEFAULT_HUB_PRESET.url, page)).toBe(MODEL_PRESETS[0]);
    for (const p of MODEL_PRESETS) expect(presetForUrl(p.url, page)?.id).toBe(p.id);
    expect(presetForUrl('https://huggingface.co/x/y/resolve/main/z.gguf', page)).toBeUndefined();
  });

  it('preset ids are usable in a CSS id selector as they are', () => {
    for (const p of [LOCAL_DEMO_MODEL, ...MODEL_PRESETS]) expect(p.id).toMatch(/^[a-z0-9-]+$/);
    expect(new Set(MODEL_PRESETS.map((p) => p.id)).size).toBe(MODEL_PRESETS.length);
  });
});
