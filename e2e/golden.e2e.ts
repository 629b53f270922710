// The built demo (dist, served under a sub-path by a static server) in Chromium: stories260K,
// loaded through the page's own client by the relative URL the page uses, generates greedily
// exactly the token ids of test/fixtures/stories260K-golden.json (the CPU reference's).
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import golden from '../test/fixtures/stories260K-golden.json' with { type: 'json' };
import { missingShared, sharedFile } from '../test/helpers/shared.ts';
import { launchChromium, openPage } from './browser.ts';

const distURL = inject('distURL');
const model = sharedFile('models/stories260K.gguf');

describe.skipIf(!model)(`the built demo at a sub-path, stories260K (${model ? 'WebGPU on the default adapter' : missingShared('models/stories260K.gguf')})`, () => {
  let browser: Browser;
  let page: Page;
  let problems: string[];

  beforeAll(async () => {
    browser = await launchChromium();
    ({ page, problems } = await openPage(browser, distURL));
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('loads the model by the relative URL models/stories260K.gguf', async () => {
    const info = await page.evaluate(async () => (await window.chunklmReady!).load('models/stories260K.gguf'));
    expect(info.architecture).toBe('llama');
    expect(info.files?.map((f) => f.url)).toEqual([new URL('models/stories260K.gguf', distURL).href]);
  });

  it('greedy from BOS gives the golden ids', async () => {
    const { promptTokens, maxTokens, tokens } = golden.fromBos;
    const r = await page.evaluate(
      async ({ promptTokens, maxTokens }) => (await window.chunklmReady!).generate({ tokens: promptTokens }, { maxTokens, temperature: 0 }).result,
      { promptTokens, maxTokens },
    );
    expect(r.tokens).toEqual(tokens);
    expect(r.finishReason).toBe('length');
  });

  it("greedy from 'Once upon a time' gives the golden prompt and output ids", async () => {
    const { text, promptTokens, maxTokens, tokens, finishReason, output } = golden.prompt;
    const r = await page.evaluate(
      async ({ text, maxTokens }) => (await window.chunklmReady!).generate(text, { maxTokens, temperature: 0 }).result,
      { text, maxTokens },
    );
    expect(r.promptTokens).toEqual(promptTokens);
    expect(r.tokens).toEqual(tokens);
    expect(r.finishReason).toBe(finishReason);
    expect(r.text).toBe(output);
    expect(problems).toEqual([]);
  });
});
