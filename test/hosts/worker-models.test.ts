// URL loads through the Worker API and the client over a real Comlink MessageChannel, against a
// local server, with an engine that reads every byte of the model it is given: the model cache
// behind client.models (list, remove of every part of a split model), a load from the cache after a
// download, the fit check refusing before the download (its typed error crossing the boundary),
// cancellation, and download progress.
import { expose } from 'comlink';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ChunklmClient } from '../../src/client/client.ts';
import type { ModelBytes } from '../../src/engine/engine.ts';
import type { GenerateInput, GenerateOptions, GenerationResult, LoadOptions, LoadProgress, ModelInfo, TokenEvent } from '../../src/engine/types.ts';
import { GPUError } from '../../src/errors.ts';
import { MemorySource, isOpenedGGUF, openGGUF, parseGGUF, splitGGUFBytes, type GGUFFile } from '../../src/gguf/index.ts';
import { MemoryModelCache } from '../../src/hub/model-cache.ts';
import { makeSyntheticModel, SYNTHETIC_PRESETS } from '../../src/model/synthetic.ts';
import { ChunklmWorkerService, type EngineLike } from '../../src/worker/api.ts';
import { installErrorTransfer } from '../../src/worker/comlink-errors.ts';
import { FileServer } from '../helpers/file-server.ts';

installErrorTransfer();

const model = makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-gqa4-h64'], seed: 31 });

/** Reads the whole model it is given and reports its tensor count; refuses at checkFit when told to. */
class ReadingEngine implements EngineLike {
  refuse = false;
  loads = 0;
  readBytes = 0;
  checked: number[] = [];

  checkFit(file: GGUFFile, _opts: LoadOptions): void {
    this.checked.push(file.tensors.length);
    if (this.refuse) throw new GPUError('does-not-fit', 'this model needs more memory than the test allows', { overBytes: 1234 });
  }

  async load(bytes: ModelBytes, opts: LoadOptions): Promise<ModelInfo> {
    this.loads++;
    const { file, source } = isOpenedGGUF(bytes) ? bytes : await openGGUF(bytes as Parameters<typeof openGGUF>[0]);
    for (const t of file.tensors) {
      const b = await source.read(t.offset, t.byteLength, opts.signal);
      this.readBytes += b.byteLength;
    }
    return {
      name: 'reading',
      architecture: 'llama',
      nLayers: 2,
      dim: 256,
      nHeads: 8,
      nKvHeads: 2,
      headDim: 64,
      vocabSize: 384,
      contextLength: 64,
      weightType: 'Q4_0',
      weightBytes: file.tensors.reduce((s, t) => s + t.byteLength, 0),
      hasChatTemplate: false,
      adapter: 'none',
      features: { shaderF16: false, subgroups: false },
      kvDtype: 'f16',
      kvBudgetTokens: 128,
      gpuMemory: { weightBytes: 0, kvBytes: 0, activationBytes: 0, peakBytes: 0 },
    };
  }

  tokenize(): number[] {
    return [];
  }

  detokenize(): string {
    return '';
  }

  async *generate(_input: GenerateInput, _opts: GenerateOptions): AsyncGenerator<TokenEvent, GenerationResult, void> {
    return { promptTokens: [], tokens: [], text: '', finishReason: 'length', ttftMs: 0, prefillTokPerS: 0, decodeTokPerS: 0 };
  }

  unload(): void {}
}

let server: FileServer;
let partUrls: string[];
const cleanups: (() => void)[] = [];
beforeAll(async () => {
  server = await FileServer.start();
  const parts = await splitGGUFBytes(model, 3);
  partUrls = parts.map((p, i) => server.put(`/org/repo/resolve/main/tiny-0000${i + 1}-of-00003.gguf`, p, `e${i}`));
});
afterAll(async () => {
  await server.close();
});
afterEach(() => {
  server.faults = {};
  for (const c of cleanups.splice(0)) c();
});

async function connect(engine: ReadingEngine, cache = new MemoryModelCache()): Promise<ChunklmClient> {
  const { port1, port2 } = new MessageChannel();
  expose(new ChunklmWorkerService({ openEngine: async () => engine, modelCache: cache, retry: { retries: 2, initialDelayMs: 1 } }), port2);
  const client = await ChunklmClient.create({ worker: port1 });
  cleanups.push(() => {
    client.dispose();
    port1.close();
    port2.close();
  });
  return client;
}

describe('URL loads through the Worker', () => {
  it('download into the cache, load from it, list, and remove every part of a split model', async () => {
    const engine = new ReadingEngine();
    const client = await connect(engine);
    const progress: LoadProgress[] = [];
    const first = await client.load(partUrls[2], { onProgress: (p) => progress.push(p) });
    expect(first.files?.map((f) => [f.url, f.source])).toEqual(partUrls.map((u) => [u, 'download']));
    expect(engine.readBytes).toBe(first.weightBytes);
    const tensors = (await parseGGUF(new MemorySource(model))).tensors.length;
    expect(engine.checked, 'the fit was checked once, on the merged index of the three parts').toEqual([tensors]);
    const downloads = progress.filter((p) => p.phase === 'download');
    const total = first.files!.reduce((s, f) => s + f.bytes, 0);
    expect(downloads.length).toBeGreaterThan(0);
    expect(downloads.at(-1)).toMatchObject({ loadedBytes: total, totalBytes: total });

    const gets = server.gets('/org/repo/').length;
    const second = await client.load(partUrls[0]);
    expect(second.files?.map((f) => f.source)).toEqual(['cache', 'cache', 'cache']);
    expect(server.gets('/org/repo/').length).toBe(gets);

    const listed = await client.models.list();
    expect(listed.map((e) => [e.url, e.etag])).toEqual(partUrls.map((u, i) => [u, `"e${i}"`]));
    expect(await client.models.remove(partUrls[1])).toBe(true);
    expect(await client.models.list()).toEqual([]);
    expect(await client.models.remove(partUrls[1])).toBe(false);
  });

  it('a load that does not fit is refused before the download, with its typed error', async () => {
    const engine = new ReadingEngine();
    engine.refuse = true;
    const client = await connect(engine);
    const gets = server.gets('/org/repo/').length;
    const err = await client.load(partUrls[0]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GPUError);
    expect(err).toMatchObject({ code: 'does-not-fit', fields: { overBytes: 1234 } });
    expect(engine.loads).toBe(0);
    expect(await client.models.list()).toEqual([]);
    // Only the three headers were read: one range from byte 0 of each part.
    const asked = server.gets('/org/repo/').slice(gets);
    expect(asked.map((r) => r.path).sort()).toEqual(partUrls.map((u) => new URL(u).pathname).sort());
    expect(asked.every((r) => r.range?.startsWith('bytes=0-'))).toBe(true);
  });

  it('a cancelled download fails with AbortedError and leaves the cache empty', async () => {
    const engine = new ReadingEngine();
    const cache = new MemoryModelCache();
    const client = await connect(engine, cache);
    server.faults = { slow: { chunkBytes: 8192, delayMs: 5 } };
    const ctrl = new AbortController();
    const err = await client
      .load(partUrls[0], {
        signal: ctrl.signal,
        onProgress: (p) => {
          if (p.phase === 'download' && p.loadedBytes > 50_000) ctrl.abort();
        },
      })
      .catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortedError');
    expect(await client.models.list()).toEqual([]);
    expect(engine.loads).toBe(0);
  });
});
