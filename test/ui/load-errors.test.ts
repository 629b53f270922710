// The model panel's words for a failed load (src/ui/load-errors.ts), one family at a time: what the
// title says, whether the message gives the numbers, which advice is offered and whether Retry is.
import { describe, expect, it } from 'vitest';
import type { ModelInfo } from '../../src/engine/types.ts';
import { AbortedError, ChunklmError, GGUFError, GPUError, KVCacheError, StorageError, UnsupportedModelError, WorkerError } from '../../src/errors.ts';
import { formatBytes } from '../../src/format.ts';
import {
  describeLoadError,
  describeOrigin,
  describeSource,
  fileNameOf,
  hostOf,
  hubFileUrl,
  isAbort,
  loadPhaseSentence,
  loadProgressLine,
  numberField,
} from '../../src/ui/load-errors.ts';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

describe('describeLoadError', () => {
  it('no WebGPU: says so and how to get it, no Retry', () => {
    const e = describeLoadError(new ChunklmError('no-webgpu', 'navigator.gpu is missing'));
    expect(e.code).toBe('no-webgpu');
    expect(e.title).toMatch(/no WebGPU/);
    expect(e.advice.some((a) => a.includes('chrome://flags'))).toBe(true);
    expect(e.retry).toBe(false);
    expect(e.detail).toBe('ChunklmError: navigator.gpu is missing');
  });

  it('no adapter: the WebGPU advice plus chrome://gpu', () => {
    const e = describeLoadError(new GPUError('no-adapter', 'requestAdapter() returned null'));
    expect(e.title).toMatch(/no usable GPU/);
    expect(e.advice.at(-1)).toMatch(/chrome:\/\/gpu/);
    expect(e.advice.length).toBeGreaterThan(1);
  });

  it('too large for the device: the total, the limit and by how much', () => {
    const e = describeLoadError(new GPUError('does-not-fit', 'x', { needBytes: 3 * GiB, availableBytes: 2 * GiB }));
    expect(e.title).toBe('This model is too large for this device');
    expect(e.message).toContain(formatBytes(3 * GiB));
    expect(e.message).toContain(formatBytes(2 * GiB));
    expect(e.message).toContain(`${formatBytes(GiB)} too much`);
    expect(e.message).toContain('GPU memory');
    expect(e.retry).toBe(false);
  });

  it('too large for one buffer: per-buffer wording, overBytes preferred to need − limit', () => {
    const e = describeLoadError(new GPUError('model-too-large', 'x', { needBytes: 300 * MiB, limitBytes: 256 * MiB, overBytes: 44 * MiB + 20 }));
    expect(e.message).toMatch(/per buffer/);
    expect(e.message).toContain(`${formatBytes(44 * MiB + 20)} too much`);
  });

  it('KV pool too large: its own field names, and f16 advised only when the KV is f32', () => {
    const err = new KVCacheError('kv-pool-too-large', 'x', { poolBytes: 512 * MiB, max: 128 * MiB, overBytes: 384 * MiB });
    const f32 = describeLoadError(err, { kvDtype: 'f32' });
    expect(f32.message).toContain(formatBytes(512 * MiB));
    expect(f32.message).toContain(`${formatBytes(384 * MiB)} too much`);
    expect(f32.advice.some((a) => a.includes('f16'))).toBe(true);
    const f16 = describeLoadError(err, { kvDtype: 'f16' });
    expect(f16.advice.some((a) => a.includes('f16'))).toBe(false);
  });

  it('too large without numbers: a sentence without any', () => {
    const e = describeLoadError(new GPUError('buffer-too-large', 'x'));
    expect(e.message).toBe('It needs more GPU memory than this device offers.');
  });

  it('not GGUF: bad magic and truncated files have their own message', () => {
    const magic = describeLoadError(new GGUFError('bad-magic', 'not GGUF'));
    expect(magic.title).toBe('This file is not a GGUF model');
    expect(magic.message).toMatch(/signature/);
    const cut = describeLoadError(new GGUFError('truncated', 'ends at 12'));
    expect(cut.message).toMatch(/ends too early/);
    const other = describeLoadError(new GGUFError('bad-version', 'v9'));
    expect(other.message).toMatch(/header could not be read/);
    expect(cut.advice[0]).toMatch(/\.gguf/);
  });

  it('split models: the parts do not fit together, with the error’s own message', () => {
    for (const code of ['bad-split', 'split-incomplete', 'split-mismatch']) {
      const e = describeLoadError(new GGUFError(code, `part 2 of 3 is missing (${code})`));
      expect(e.title).toMatch(/split model/);
      expect(e.message).toBe(`part 2 of 3 is missing (${code})`);
      expect(e.advice[0]).toMatch(/every part/);
    }
  });

  it('HTTP 404: check the link, no Retry', () => {
    const e = describeLoadError(new GGUFError('http-error', 'x: HTTP 404', { url: 'x', status: 404 }));
    expect(e.title).toBe('The download failed');
    expect(e.message).toContain('404');
    expect(e.advice[0]).toMatch(/resolve\/main/);
    expect(e.retry).toBe(false);
  });

  it('HTTP 401 and 403: refused access (gated repositories), no Retry', () => {
    for (const status of [401, 403]) {
      const e = describeLoadError(new GGUFError('http-error', 'x', { status }));
      expect(e.message).toBe(`The server refused access (HTTP ${status}).`);
      expect(e.advice[0]).toMatch(/Gated/);
      expect(e.retry).toBe(false);
    }
  });

  it('HTTP 5xx, 408, 429 offer Retry; other 4xx do not', () => {
    expect(describeLoadError(new GGUFError('http-error', 'x', { status: 503 })).retry).toBe(true);
    expect(describeLoadError(new GGUFError('http-error', 'x', { status: 408 })).retry).toBe(true);
    expect(describeLoadError(new GGUFError('http-error', 'x', { status: 429 })).retry).toBe(true);
    const gone = describeLoadError(new GGUFError('http-error', 'x', { status: 410 }));
    expect(gone.retry).toBe(false);
    expect(gone.message).toBe('The server answered HTTP 410.');
    expect(describeLoadError(new GGUFError('http-error', 'x')).retry).toBe(true);
  });

  it('fetch failed, bad response, source changed: Retry; range unsupported: no Retry', () => {
    const failed = describeLoadError(new GGUFError('fetch-failed', 'TypeError: Failed to fetch'));
    expect(failed.retry).toBe(true);
    expect(failed.message).toMatch(/CORS/);
    expect(describeLoadError(new GGUFError('bad-response', 'x')).retry).toBe(true);
    expect(describeLoadError(new GGUFError('source-changed', 'x')).retry).toBe(true);
    const ranges = describeLoadError(new GGUFError('range-unsupported', 'x'));
    expect(ranges.retry).toBe(false);
    expect(ranges.message).toMatch(/range requests/);
  });

  it('other families: unsupported model, worker, device lost, busy, storage quota', () => {
    expect(describeLoadError(new UnsupportedModelError('unknown-architecture', 'mamba')).title).toBe('chunklm cannot run this model');
    expect(describeLoadError(new WorkerError('worker-crashed', 'x')).advice[0]).toMatch(/Reload/);
    expect(describeLoadError(new GPUError('device-lost', 'x')).retry).toBe(true);
    expect(describeLoadError(new ChunklmError('busy', 'x')).retry).toBe(true);
    const quota = describeLoadError(new StorageError('quota-exceeded', 'full'));
    expect(quota.retry).toBe(true);
    expect(quota.advice[0]).toMatch(/Remove models/);
    expect(describeLoadError(new StorageError('blocked', 'x')).retry).toBe(false);
  });

  it('unknown errors: code internal, the message as is; non-errors become errors', () => {
    const e = describeLoadError(new TypeError('x is undefined'));
    expect(e.code).toBe('internal');
    expect(e.title).toBe('The model could not be loaded');
    expect(e.message).toBe('x is undefined');
    expect(e.detail).toBe('TypeError: x is undefined');
    expect(e.retry).toBe(false);
    const s = describeLoadError('boom');
    expect(s.message).toBe('boom');
    expect(describeLoadError(null).code).toBe('internal');
  });
});

describe('isAbort', () => {
  it('knows the engine’s AbortedError, the DOM’s AbortError and the aborted code', () => {
    expect(isAbort(new AbortedError())).toBe(true);
    expect(isAbort(new DOMException('stop', 'AbortError'))).toBe(true);
    expect(isAbort(new ChunklmError('aborted', 'x'))).toBe(true);
    expect(isAbort(new GGUFError('fetch-failed', 'x'))).toBe(false);
    expect(isAbort(null)).toBe(false);
    expect(isAbort('AbortError')).toBe(false);
  });
});

describe('numberField', () => {
  it('takes the first finite number among the keys', () => {
    expect(numberField({ a: 'x', b: Number.NaN, c: 3, d: 4 }, 'a', 'b', 'c', 'd')).toBe(3);
    expect(numberField({ a: 'x' }, 'a', 'z')).toBeUndefined();
  });
});

describe('sources and origins', () => {
  it('hubFileUrl turns a Hub page link into the file link, and leaves others', () => {
    expect(hubFileUrl('https://huggingface.co/Qwen/Q-GGUF/blob/main/q.gguf')).toBe('https://huggingface.co/Qwen/Q-GGUF/resolve/main/q.gguf');
    expect(hubFileUrl('https://example.org/a/b/blob/main/q.gguf')).toBe('https://example.org/a/b/blob/main/q.gguf');
  });

  it('fileNameOf: the decoded last segment, or the URL', () => {
    expect(fileNameOf('https://h.org/x/My%20Model.gguf?download=1')).toBe('My Model.gguf');
    expect(fileNameOf('models/stories260K.gguf')).toBe('stories260K.gguf');
    expect(fileNameOf('https://h.org/')).toBe('https://h.org/');
  });

  it('hostOf: undefined for the page’s own origin', () => {
    expect(hostOf('models/a.gguf', 'https://demo.org/app/')).toBeUndefined();
    expect(hostOf('https://huggingface.co/x/y/resolve/main/a.gguf', 'https://demo.org/app/')).toBe('huggingface.co');
  });

  it('describeSource: a preset’s name, a file name, or several parts', () => {
    expect(describeSource('https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf')).toBe('Qwen2.5 0.5B Instruct');
    expect(describeSource('https://h.org/m/other.gguf')).toBe('other.gguf');
    expect(describeSource([{ name: 'a.gguf' }])).toBe('a.gguf');
    expect(describeSource([{ name: 'm-00001-of-00003.gguf' }, { name: 'b' }, { name: 'c' }])).toBe('m-00001-of-00003.gguf and 2 more parts');
  });

  it('describeOrigin: cache, network or download, with the host', () => {
    const info = (sources: ('cache' | 'network' | 'download')[]): ModelInfo =>
      ({ files: sources.map((source) => ({ url: 'u', bytes: 1, source })) }) as unknown as ModelInfo;
    const url = 'https://h.org/m.gguf';
    const page = 'https://demo.org/';
    expect(describeOrigin(info(['cache']), url, page)).toBe('This browser’s saved copy (no download)');
    expect(describeOrigin(info(['cache', 'network']), url, page)).toBe('Read over the network from h.org (not saved in this browser)');
    expect(describeOrigin(info(['download']), url, page)).toBe('Downloaded from h.org, now saved in this browser');
    expect(describeOrigin(info([]), [{ name: 'a.gguf' }], page)).toBe('A local file (nothing was downloaded)');
  });
});

describe('load phases', () => {
  it('a sentence per phase, and the detailed line after it', () => {
    expect(loadPhaseSentence('download', 'Qwen')).toBe('Downloading Qwen');
    expect(loadPhaseSentence('weights', 'Qwen')).toBe('Uploading Qwen to the GPU');
    const line = loadProgressLine({ phase: 'download', loadedBytes: 10 * MiB, totalBytes: 100 * MiB, bytesPerSecond: 5 * MiB }, 'Qwen');
    expect(line).toBe('Downloading Qwen: 10.0 MiB of 100.0 MiB (10%), 5.0 MiB/s');
  });
});
