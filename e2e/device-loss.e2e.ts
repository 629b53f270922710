// A GPU device lost in the middle of an answer (simulateDeviceLoss destroys the Worker's
// GPUDevice as a driver reset would): that answer fails with GPUError 'device-lost', and the next
// question is answered after the Worker loads the model again by itself, from stored chunks.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { missingShared, sharedFile } from '../test/helpers/shared.ts';
import { launchChromium, openPage } from './browser.ts';
import { addDocuments, ask, describeChunks, explain, listDocuments, loadModel } from './profile.ts';

const baseURL = inject('baseURL');
const model = sharedFile('models/stories260K.gguf');

const DOCS = [
  { id: 'garden', text: 'Lily had a small garden behind the house. She grew red flowers and tall green beans. Every morning she gave them water from a blue can.' },
  { id: 'ball', text: 'Tom had a big red ball. He liked to kick it in the park with his dog Max. One day the ball rolled into the pond and Max jumped in after it.' },
];
const QUESTION = { documents: 'all' as const, question: 'Once upon a time, Lily and Tom' };

/** How the interrupted answer ended, as the page saw it. */
interface Outcome {
  /** Tokens that had streamed in when it ended. */
  tokens: number;
  /** Tokens streamed when the device was destroyed (-1: it ended first). */
  lostAfter: number;
  finishReason?: string;
  error?: { name: string; code: unknown; message: string };
}

describe.skipIf(!model)(`device loss mid-answer (${model ? 'stories260K' : missingShared('models/stories260K.gguf')})`, () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it("fails the streaming answer with GPUError 'device-lost'; the next one reloads the model and reads the chunks from the store", async () => {
    const { page, problems } = await openPage(browser, baseURL);
    await loadModel(page);
    await addDocuments(page, DOCS);
    const before = await ask(page, QUESTION, { maxTokens: 8, temperature: 0 });
    expect(before.tokens.length, `answer before the loss${explain(problems)}`).toBeGreaterThan(0);

    const outcome = await page.evaluate(async (question) => {
      const client = await window.chunklmReady!;
      const stream = client.generate(question, { maxTokens: 400, temperature: 0 });
      const out: Outcome = { tokens: 0, lostAfter: -1 };
      try {
        for await (const _ of stream) {
          out.tokens++;
          if (out.tokens === 3) {
            out.lostAfter = out.tokens;
            await client.simulateDeviceLoss();
          }
        }
        out.finishReason = (await stream.result).finishReason;
      } catch (err) {
        const e = err as { name?: unknown; code?: unknown; message?: unknown };
        out.error = { name: String(e.name), code: e.code, message: String(e.message) };
      }
      return out;
    }, QUESTION);
    const what = `interrupted answer: ${JSON.stringify(outcome)}${explain(problems)}`;
    expect(outcome.lostAfter, `the device was destroyed while the answer streamed; ${what}`).toBe(3);
    // Soft: the recovery below is checked (and reported) even when the failure is misreported.
    expect.soft(outcome.error?.name, what).toBe('GPUError');
    expect.soft(outcome.error?.code, what).toBe('device-lost');
    expect.soft(outcome.tokens, `no token after the loss was reported; ${what}`).toBeLessThan(400);

    // The next question: the Worker acquires a new device and loads the model again itself.
    const after = await ask(page, QUESTION, { maxTokens: 8, temperature: 0 });
    const afterWhat = `answer after the loss: ${describeChunks(after)}${explain(problems)}`;
    expect(after.chunks?.length, afterWhat).toBe(before.chunks?.length);
    expect(after.chunks?.every((c) => c.source === 'store'), afterWhat).toBe(true);
    expect(after.tokens, `${afterWhat}; before the loss '${before.text}', after '${after.text}'`).toEqual(before.tokens);
    expect((await listDocuments(page)).map((d) => d.id).sort(), afterWhat).toEqual(DOCS.map((d) => d.id).sort());
  }, 300_000);
});
