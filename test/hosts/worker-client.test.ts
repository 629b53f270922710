// The Worker API and the main-thread client over a real Comlink MessageChannel, with a scripted
// engine standing in for the GPU one: streaming order, cancellation, progress and typed errors.
import { expose, wrap, type Remote } from 'comlink';
import { afterEach, describe, expect, it } from 'vitest';
import { ChunklmClient } from '../../src/client/client.ts';
import type { GenerateInput, GenerateOptions, GenerationResult, LoadOptions, ModelInfo, TokenEvent } from '../../src/engine/types.ts';
import {
  AbortedError,
  ChunklmError,
  GGUFError,
  InvalidRequestError,
  KVCacheError,
  TokenizerError,
  WorkerError,
} from '../../src/errors.ts';
import type { ByteSource } from '../../src/gguf/source.ts';
import { MemorySource } from '../../src/gguf/source.ts';
import { ChunklmWorkerService, type EngineLike } from '../../src/worker/api.ts';
import { installErrorTransfer } from '../../src/worker/comlink-errors.ts';

installErrorTransfer();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const fakeInfo: ModelInfo = {
  name: 'scripted',
  architecture: 'llama',
  nLayers: 1,
  dim: 8,
  nHeads: 1,
  nKvHeads: 1,
  headDim: 8,
  vocabSize: 100,
  contextLength: 64,
  weightType: 'F32',
  weightBytes: 1024,
  hasChatTemplate: false,
  adapter: 'none',
  features: { shaderF16: false, subgroups: false },
  kvDtype: 'f16',
  kvBudgetTokens: 512,
  gpuMemory: { weightBytes: 0, kvBytes: 0, activationBytes: 0, peakBytes: 0 },
};

/** Emits token ids 10, 11, 12, ... (text "a", "b", ...) one every `stepMs`, honouring the signal like the real engine. */
class ScriptedEngine implements EngineLike {
  stepMs = 2;
  loads = 0;
  private model = false;

  async load(source: ByteSource, opts: LoadOptions): Promise<ModelInfo> {
    this.loads++;
    const chunk = 256;
    for (let off = 0; off < source.size; off += chunk) {
      if (opts.signal?.aborted) throw new AbortedError();
      await source.read(off, Math.min(chunk, source.size - off), opts.signal);
      opts.onProgress?.({ phase: 'weights', loadedBytes: Math.min(off + chunk, source.size), totalBytes: source.size });
      await sleep(1);
    }
    this.model = true;
    return { ...fakeInfo, weightBytes: source.size };
  }

  tokenize(text: string, opts: { addBos?: boolean } = {}): number[] {
    this.require();
    return [...(opts.addBos ? [1] : []), ...[...text].map((c) => c.charCodeAt(0))];
  }

  detokenize(ids: number[]): string {
    this.require();
    return String.fromCharCode(...ids);
  }

  async *generate(input: GenerateInput, opts: GenerateOptions): AsyncGenerator<TokenEvent, GenerationResult, void> {
    this.require();
    if (input === 'fail') throw new TokenizerError('bad-text', 'cannot encode this prompt', { position: 3 });
    if (input === 'kv') throw new KVCacheError('kv-cache-full', 'no free KV pages', { pages: 0 });
    const max = opts.maxTokens ?? 8;
    const tokens: number[] = [];
    let text = '';
    let finishReason: GenerationResult['finishReason'] = 'length';
    while (tokens.length < max) {
      if (opts.signal?.aborted) {
        finishReason = 'aborted';
        break;
      }
      await sleep(this.stepMs);
      const id = 10 + tokens.length;
      const piece = String.fromCharCode(97 + (tokens.length % 26));
      tokens.push(id);
      text += piece;
      yield { tokenId: id, text: piece };
    }
    return { promptTokens: [1, 2], tokens, text, finishReason, ttftMs: 1, prefillTokPerS: 2, decodeTokPerS: 3 };
  }

  unload(): void {
    this.model = false;
  }

  private require(): void {
    if (!this.model) throw new InvalidRequestError('no-model', 'no model is loaded; call load() first');
  }
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function connect(engine = new ScriptedEngine(), modelBytes = 2048): Promise<{ client: ChunklmClient; engine: ScriptedEngine }> {
  const { port1, port2 } = new MessageChannel();
  const service = new ChunklmWorkerService({
    openEngine: async () => engine,
    openSource: async (spec) => new MemorySource(new Uint8Array(modelBytes), 'url' in spec ? spec.url : 'blob'),
  });
  expose(service, port2);
  const client = await ChunklmClient.create({ worker: port1 });
  cleanups.push(() => {
    client.dispose();
    port1.close();
    port2.close();
  });
  return { client, engine };
}

describe('errors across a Comlink MessageChannel', () => {
  function thrower(): { remote: Remote<Record<string, () => void>> } {
    const { port1, port2 } = new MessageChannel();
    expose(
      {
        gguf: () => {
          throw new GGUFError('bad-magic', 'not a GGUF file', { offset: 0, path: '/x.gguf' });
        },
        aborted: () => {
          throw new AbortedError();
        },
        kv: () => {
          throw new KVCacheError('kv-cache-full', 'no free pages', { pages: 0, fatal: true, hint: null });
        },
        type: () => {
          throw new TypeError('x is not a function');
        },
        domAbort: () => {
          throw new DOMException('The operation was aborted.', 'AbortError');
        },
        text: () => {
          throw 'plain string';
        },
      },
      port2,
    );
    cleanups.push(() => {
      port1.close();
      port2.close();
    });
    return { remote: wrap<Record<string, () => void>>(port1) };
  }

  it('rebuilds ChunklmError subclasses with name, code, message and fields', async () => {
    const { remote } = thrower();
    const err = await remote.gguf().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GGUFError);
    expect(err).toBeInstanceOf(ChunklmError);
    expect(err).toMatchObject({ name: 'GGUFError', code: 'bad-magic', message: 'not a GGUF file', fields: { offset: 0, path: '/x.gguf' } });
    const kv = await remote.kv().catch((e: unknown) => e);
    expect(kv).toBeInstanceOf(KVCacheError);
    expect(kv).toMatchObject({ code: 'kv-cache-full', fields: { pages: 0, fatal: true, hint: null } });
  });

  it('keeps AbortedError, and maps a DOM AbortError onto it', async () => {
    const { remote } = thrower();
    const a = await remote.aborted().catch((e: unknown) => e);
    expect(a).toBeInstanceOf(AbortedError);
    expect((a as AbortedError).code).toBe('aborted');
    const d = await remote.domAbort().catch((e: unknown) => e);
    expect(d).toBeInstanceOf(AbortedError);
  });

  it('keeps the name of built-in errors and wraps thrown non-errors', async () => {
    const { remote } = thrower();
    const t = await remote.type().catch((e: unknown) => e);
    expect(t).toBeInstanceOf(Error);
    expect(t).toMatchObject({ name: 'TypeError', message: 'x is not a function' });
    const s = await remote.text().catch((e: unknown) => e);
    expect(s).toBeInstanceOf(Error);
    expect((s as Error).message).toBe('plain string');
  });
});

describe('ChunklmClient over the Worker API', () => {
  it('loads with byte progress and reports the model', async () => {
    const { client } = await connect(new ScriptedEngine(), 4096);
    const progress: number[] = [];
    const info = await client.load('http://example.test/m.gguf', { onProgress: (p) => progress.push(p.loadedBytes) });
    expect(info.name).toBe('scripted');
    expect(info.weightBytes).toBe(4096);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)).toBe(4096);
    for (let i = 1; i < progress.length; i++) expect(progress[i]).toBeGreaterThanOrEqual(progress[i - 1]);
  });

  it('refuses calls before a model is loaded with a typed error', async () => {
    const { client } = await connect();
    await expect(client.tokenize('hi')).rejects.toMatchObject({ name: 'InvalidRequestError', code: 'no-model' });
    const stream = client.generate('hi');
    await expect(stream.result).rejects.toBeInstanceOf(InvalidRequestError);
  });

  it('streams every token before the result resolves, in order', async () => {
    const { client } = await connect();
    await client.load('http://example.test/m.gguf');
    expect(await client.tokenize('ab', { addBos: true })).toEqual([1, 97, 98]);
    expect(await client.detokenize([104, 105])).toBe('hi');
    const stream = client.generate('Once', { maxTokens: 20 });
    const seen: TokenEvent[] = [];
    for await (const ev of stream) seen.push(ev);
    const result = await stream.result;
    expect(result.finishReason).toBe('length');
    expect(seen.map((e) => e.tokenId)).toEqual(result.tokens);
    expect(seen.map((e) => e.text).join('')).toBe(result.text);
    expect(result.tokens).toHaveLength(20);
  });

  it('aborting the signal stops the Worker-side generation with finishReason aborted', async () => {
    const { client, engine } = await connect();
    engine.stepMs = 5;
    await client.load('http://example.test/m.gguf');
    const ctrl = new AbortController();
    const stream = client.generate('Once', { maxTokens: 10_000, signal: ctrl.signal });
    let n = 0;
    for await (const _ of stream) {
      if (++n === 5) ctrl.abort();
    }
    const result = await stream.result;
    expect(result.finishReason).toBe('aborted');
    expect(result.tokens.length).toBeGreaterThanOrEqual(5);
    expect(result.tokens.length).toBeLessThan(50);
    expect(n).toBe(result.tokens.length);
    // The engine is free again.
    const again = await client.generate('x', { maxTokens: 3 }).result;
    expect(again).toMatchObject({ finishReason: 'length', text: 'abc' });
  });

  it('an already aborted signal ends at once; leaving the loop early cancels', async () => {
    const { client } = await connect();
    await client.load('http://example.test/m.gguf');
    const done = AbortSignal.abort();
    const r0 = await client.generate('x', { maxTokens: 1000, signal: done }).result;
    expect(r0.finishReason).toBe('aborted');
    expect(r0.tokens.length).toBe(0);
    const stream = client.generate('x', { maxTokens: 10_000 });
    for await (const ev of stream) {
      if (ev.tokenId >= 12) break;
    }
    const r1 = await stream.result;
    expect(r1.finishReason).toBe('aborted');
    expect(r1.tokens.length).toBeLessThan(100);
  });

  it('generation errors reach the iterator and the result with their type', async () => {
    const { client } = await connect();
    await client.load('http://example.test/m.gguf');
    const stream = client.generate('fail');
    const iterErr = await (async () => {
      for await (const _ of stream) {
        /* no tokens expected */
      }
    })().catch((e: unknown) => e);
    expect(iterErr).toBeInstanceOf(TokenizerError);
    expect(iterErr).toMatchObject({ code: 'bad-text', fields: { position: 3 } });
    await expect(client.generate('kv').result).rejects.toMatchObject({ name: 'KVCacheError', code: 'kv-cache-full' });
  });

  it('a second generation waits for the first instead of failing', async () => {
    const { client } = await connect();
    await client.load('http://example.test/m.gguf');
    const [a, b] = await Promise.all([client.generate('a', { maxTokens: 4 }).result, client.generate('b', { maxTokens: 6 }).result]);
    expect(a.tokens).toHaveLength(4);
    expect(b.tokens).toHaveLength(6);
  });

  it('cancelling a load rejects with AbortedError', async () => {
    const { client } = await connect(new ScriptedEngine(), 1 << 16);
    const ctrl = new AbortController();
    const pending = client.load('http://example.test/big.gguf', { signal: ctrl.signal });
    setTimeout(() => ctrl.abort(), 10);
    await expect(pending).rejects.toBeInstanceOf(AbortedError);
    await expect(client.tokenize('x')).rejects.toMatchObject({ code: 'no-model' });
  });

  it('rejects pending and later calls with WorkerError after dispose', async () => {
    const { client, engine } = await connect();
    engine.stepMs = 20;
    await client.load('http://example.test/m.gguf');
    const stream = client.generate('x', { maxTokens: 1000 });
    client.dispose();
    await expect(stream.result).rejects.toBeInstanceOf(WorkerError);
    await expect(client.tokenize('x')).rejects.toMatchObject({ name: 'WorkerError', code: 'disposed' });
  });
});

describe('the Worker after a lost GPU device', () => {
  it('fails the running answer with the engine’s error, then reopens an engine and loads the last model again for the next request', async () => {
    const engines: ScriptedEngine[] = [];
    let lose: (() => void) | undefined;
    const { port1, port2 } = new MessageChannel();
    const service = new ChunklmWorkerService({
      openEngine: async (onLost) => {
        lose = onLost;
        const e = new ScriptedEngine();
        engines.push(e);
        return e;
      },
      openSource: async (spec) => new MemorySource(new Uint8Array(1024), 'url' in spec ? spec.url : 'blob'),
    });
    expose(service, port2);
    const client = await ChunklmClient.create({ worker: port1 });
    cleanups.push(() => {
      client.dispose();
      port1.close();
      port2.close();
    });
    await client.load('http://localhost/m.gguf');
    expect(engines.length).toBe(1);
    // The device goes away: the host reports it, and the next generate needs no load() from the page.
    lose!();
    const stream = client.generate('x', { maxTokens: 3 });
    let text = '';
    for await (const ev of stream) text += ev.text;
    expect(text).toBe('abc');
    expect(engines.length).toBe(2);
    expect(engines[1].loads).toBe(1);
    // Without a model ever loaded there is nothing to replay: the request is refused as before.
    await client.unload();
    lose!();
    await expect(client.generate('x').result).rejects.toMatchObject({ name: 'InvalidRequestError', code: 'no-model' });
  });

  it('documents calls on an engine without documents are refused with a typed error', async () => {
    const { client } = await connect();
    await client.load('http://localhost/m.gguf');
    await expect(client.documents.list()).rejects.toMatchObject({ name: 'InvalidRequestError', code: 'no-documents' });
  });
});
