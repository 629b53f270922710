// chunklm embedded by a host that bundles it with esbuild, not Vite (test/helpers/esbuild-host.ts:
// `chunklm` and `chunklm/worker` by package name from lib/, the Worker its own entry point),
// served as static files: in Chromium, stories260K loaded through ChunklmClient generates greedily
// exactly the token ids of test/fixtures/stories260K-golden.json.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLib } from '../scripts/build-lib.mjs';
import type { ChunklmClient, GenerationResult } from '../src/api.ts';
import golden from '../test/fixtures/stories260K-golden.json' with { type: 'json' };
import { bundleHost, makeHostDir } from '../test/helpers/esbuild-host.ts';
import { missingShared, projectRoot, sharedFile } from '../test/helpers/shared.ts';
import { launchChromium, openPage } from './browser.ts';
import { startStaticServer, type StaticServer } from './static-server.ts';

declare global {
  // Set by the esbuild host's page script (HOST_TS).
  var chunklmGreedy: ((client: ChunklmClient, text: string, maxTokens: number) => Promise<GenerationResult>) | undefined;
  var chunklmProtocol: number | undefined;
}

/** ../shared's copy, else the one `npm run build` copied into public/models/; either must be the golden file. */
function goldenModel(): string | undefined {
  const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
  const candidates = [sharedFile('models/stories260K.gguf'), join(projectRoot, 'public', 'models', 'stories260K.gguf')];
  return candidates.find((p): p is string => p !== undefined && existsSync(p) && sha(p) === golden.model.sha256);
}

const model = goldenModel();

describe.skipIf(!model)(`an esbuild host of the chunklm package, stories260K (${model ? 'WebGPU on the default adapter' : `${missingShared('models/stories260K.gguf')} (nor is public/models/stories260K.gguf there)`})`, () => {
  let dir: string;
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let problems: string[];

  beforeAll(async () => {
    buildLib({ generate: false });
    dir = makeHostDir();
    const site = join(dir, 'site');
    await bundleHost(dir, site);
    mkdirSync(join(site, 'models'));
    copyFileSync(model!, join(site, 'models', 'stories260K.gguf'));
    server = await startStaticServer(site, '/esbuild-host/');
    browser = await launchChromium();
    ({ page, problems } = await openPage(browser, server.url));
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('connects to its own Worker bundle (the protocol handshake passed)', async () => {
    expect(await page.evaluate(() => globalThis.chunklmProtocol)).toBe(4);
  });

  it("greedy from 'Once upon a time' gives the golden prompt and output ids", async () => {
    const { text, promptTokens, maxTokens, tokens, finishReason, output } = golden.prompt;
    const info = await page.evaluate(async () => (await window.chunklmReady!).load('models/stories260K.gguf'));
    expect(info.architecture).toBe('llama');
    const r = await page.evaluate(
      async ({ text, maxTokens }) => globalThis.chunklmGreedy!(await window.chunklmReady!, text, maxTokens),
      { text, maxTokens },
    );
    expect(r.promptTokens).toEqual(promptTokens);
    expect(r.tokens).toEqual(tokens);
    expect(r.finishReason).toBe(finishReason);
    expect(r.text).toBe(output);
    expect(problems).toEqual([]);
  });
});
