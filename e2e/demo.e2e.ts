// The demo page in Chromium: the engine runs in the Worker on WebGPU (SwiftShader here), the
// page only talks to ChunklmClient. Checks streaming, Stop, recovery, file loading and errors.
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { missingShared, sharedFile } from '../test/helpers/shared.ts';
import { launchChromium, openPage, until } from './browser.ts';

const baseURL = inject('baseURL');
const model = sharedFile('models/stories260K.gguf');

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

/** Starts recording every length #output takes (a MutationObserver inside the page). */
async function recordOutputLengths(output: Locator): Promise<void> {
  await output.evaluate((el) => {
    const w = window as unknown as { outputObserver?: MutationObserver; outputLengths: number[] };
    w.outputObserver?.disconnect();
    w.outputLengths = [];
    w.outputObserver = new MutationObserver(() => w.outputLengths.push(el.textContent?.length ?? 0));
    w.outputObserver.observe(el, { childList: true, characterData: true, subtree: true });
  });
}

async function recordedLengths(page: Page): Promise<number[]> {
  return page.evaluate(() => (window as unknown as { outputLengths: number[] }).outputLengths);
}

async function setField(page: Page, id: string, value: string): Promise<void> {
  await page.locator(`#${id}`).fill(value);
}

/** Waits for the generation to end; returns the finish reason shown on #status. */
async function finishReason(page: Page, timeoutMs = 90_000): Promise<string> {
  const status = page.locator('#status');
  return until(
    async () => {
      const state = await status.getAttribute('data-state');
      if (state === 'error') throw new Error(`generation failed: ${await page.locator('#error').textContent()}`);
      return state === 'done' ? ((await status.getAttribute('data-finish-reason')) ?? undefined) : undefined;
    },
    'the generation to end',
    timeoutMs,
  );
}

async function waitReady(page: Page, problems: string[]): Promise<void> {
  const status = page.locator('#status');
  await until(
    async () => {
      const state = await status.getAttribute('data-state');
      if (state === 'error') throw new Error(`load failed: ${await page.locator('#error').textContent()} ${problems.join('; ')}`);
      return state === 'ready' ? true : undefined;
    },
    'the model to load',
    90_000,
  );
}

describe('demo page errors', () => {
  it('a model URL that does not exist shows a typed error in #error', async () => {
    const { page } = await openPage(browser, baseURL);
    await setField(page, 'model-url', '/models/does-not-exist.gguf');
    await page.locator('#load').click();
    const error = page.locator('#error');
    await error.waitFor({ timeout: 30_000 });
    expect(await error.getAttribute('data-error-name')).toBe('GGUFError');
    expect(await error.getAttribute('data-error-code')).toBe('http-error');
    expect(await error.textContent()).toMatch(/GGUFError\s*:.*does-not-exist\.gguf: HTTP 404/);
    expect(await page.locator('#status').getAttribute('data-state')).toBe('error');
    expect(await page.locator('#generate').isDisabled()).toBe(true);
    await page.close();
  });
});

describe.skipIf(!model)(`stories260K in the Worker (${model ? 'WebGPU on the default adapter' : missingShared('models/stories260K.gguf')})`, () => {
  let page: Page;
  let problems: string[];

  beforeAll(async () => {
    ({ page, problems } = await openPage(browser, baseURL));
    await page.locator('#load').click();
    await waitReady(page, problems);
  });
  afterAll(async () => {
    await page?.close();
  });

  it('loads with a progress report and describes the model', async () => {
    const status = (await page.locator('#status').textContent()) ?? '';
    expect(status).toMatch(/Ready: .*llama.*5 layers, dim 64, F32/);
    expect(await page.locator('#error').count()).toBe(0);
  });

  it('streams tokens into #output, then shows the metrics', async () => {
    await page.locator('#prompt').fill('Once upon a time');
    await setField(page, 'max-tokens', '40');
    await setField(page, 'temperature', '0');
    const output = page.locator('#output');
    await recordOutputLengths(output);
    await page.locator('#generate').click();
    const reason = await finishReason(page);
    expect(['length', 'eos']).toContain(reason);

    const text = (await output.textContent()) ?? '';
    expect(text.trim().length).toBeGreaterThan(0);
    // The text arrived in several steps, each extending the last.
    const lengths = (await recordedLengths(page)).filter((n) => n > 0);
    expect(new Set(lengths).size).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < lengths.length; i++) expect(lengths[i]).toBeGreaterThanOrEqual(lengths[i - 1]);
    expect(lengths.at(-1)).toBe(text.length);

    const metrics = (await page.locator('#metrics').textContent()) ?? '';
    expect(metrics).toMatch(/TTFT [\d.]+ ms · prefill [\d.]+ tok\/s · decode [\d.]+ tok\/s/);
    expect(Number(/TTFT ([\d.]+) ms/.exec(metrics)?.[1])).toBeGreaterThan(0);
  });

  it('Stop ends a long generation with finish reason aborted and the output stops growing', async () => {
    await page.locator('#prompt').fill('Once upon a time');
    await setField(page, 'max-tokens', '1500');
    await setField(page, 'temperature', '1');
    await setField(page, 'seed', '7');
    const output = page.locator('#output');
    await recordOutputLengths(output);
    await page.locator('#generate').click();
    // Midway: once a few tokens have streamed in.
    await until(async () => (((await output.textContent()) ?? '').length >= 12 ? true : undefined), 'the first tokens', 60_000, 5);
    await page.locator('#stop').click();
    expect(await finishReason(page)).toBe('aborted');
    expect(await page.locator('#status').textContent()).toContain('aborted');

    const stoppedAt = (await output.textContent()) ?? '';
    const metrics = (await page.locator('#metrics').textContent()) ?? '';
    const generated = Number(/(\d+) generated tokens/.exec(metrics)?.[1]);
    expect(generated).toBeGreaterThan(0);
    expect(generated).toBeLessThan(1500);
    await page.waitForTimeout(500);
    expect((await output.textContent()) ?? '').toBe(stoppedAt);
    expect(await page.locator('#generate').isEnabled()).toBe(true);
    expect(await page.locator('#stop').isDisabled()).toBe(true);
  });

  it('generates again after a stopped generation', async () => {
    await setField(page, 'max-tokens', '16');
    await setField(page, 'temperature', '0');
    await page.locator('#generate').click();
    expect(['length', 'eos']).toContain(await finishReason(page));
    expect(((await page.locator('#output').textContent()) ?? '').trim().length).toBeGreaterThan(0);
    expect(await page.locator('#error').count()).toBe(0);
  });

  it('loads the model from a local file (Blob) and generates the same greedy text', async () => {
    const greedy = (await page.locator('#output').textContent()) ?? '';
    await page.locator('#model-file').setInputFiles(model as string);
    await page.locator('#load').click();
    await waitReady(page, problems);
    await page.locator('#generate').click();
    expect(['length', 'eos']).toContain(await finishReason(page));
    expect(await page.locator('#output').textContent()).toBe(greedy);
    expect(problems).toEqual([]);
  });
});
