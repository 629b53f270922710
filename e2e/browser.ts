// Chromium for the browser tests: the system build (never a downloaded one), headless, with
// WebGPU enabled (SwiftShader on machines without a GPU).
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { chromiumPath } from '../scripts/setup.mjs';

export const chromiumArgs = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
}

/**
 * A page, returned once its client is ready (`window.chunklmReady`), whose console errors and
 * crashes are collected, to explain a failing test. A Browser gives each page a fresh context (its
 * own storage); a BrowserContext shares its storage (a persistent profile, or two tabs of one
 * origin).
 */
export async function openPage(owner: Browser | BrowserContext, url: string): Promise<{ page: Page; problems: string[] }> {
  const page = await owner.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('crash', () => problems.push('page crashed'));
  await page.goto(url);
  // The page's entry sets window.chunklmReady, whatever its root element is called; it resolves
  // once the Worker answers.
  await page.waitForFunction(() => window.chunklmReady !== undefined);
  await page.evaluate(async () => void (await window.chunklmReady));
  return { page, problems };
}

/** Polls `probe` until it returns a value that is not undefined; fails after `timeoutMs` with `what`. */
export async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 60_000, everyMs = 25): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
