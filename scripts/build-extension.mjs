// `npm run build:extension`: installs what is missing, then builds the Chrome extension of
// examples/chrome-extension/ into dist-extension/ (load it unpacked at chrome://extensions).
// `buildExtension` is also what e2e/extension.e2e.ts builds with. Option: --out-dir DIR.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { generatedPath, renderShaderModule } from './gen-shaders.mjs';
import { ensureNodeModules, projectRoot } from './setup.mjs';

/**
 * Builds the extension into `outDir` (emptied first) and returns how long it took, in ms. Needs
 * node_modules. Two Vite builds of examples/chrome-extension/vite.config.ts: the side panel and
 * the service worker, then (`mode: 'page-text'`) the script injected into tabs, which runs as a
 * classic script there: the build fails if it came out importing anything.
 */
export async function buildExtension(outDir = resolve(projectRoot, 'dist-extension'), { logLevel = 'info' } = {}) {
  const { build } = await import('vite');
  const start = performance.now();
  const configFile = resolve(projectRoot, 'examples/chrome-extension/vite.config.ts');
  await build({ configFile, logLevel, clearScreen: false, build: { outDir, emptyOutDir: true } });
  // The injected script is built alone and only page-text.js is kept (see the config).
  const scratch = mkdtempSync(join(tmpdir(), 'chunklm-page-text-'));
  try {
    await build({ configFile, mode: 'page-text', logLevel, clearScreen: false, build: { outDir: scratch, emptyOutDir: true } });
    const pageText = readFileSync(join(scratch, 'page-text.js'), 'utf8');
    if (/(^|[;}\n])\s*(import\s*[\w{*'"`(.]|export\s*[\w{*])/.test(pageText)) {
      throw new Error('page-text.js imports or exports something; it is injected into tabs as one classic script and must be self-contained');
    }
    writeFileSync(join(outDir, 'page-text.js'), pageText);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return performance.now() - start;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { values } = parseArgs({ options: { 'out-dir': { type: 'string' } }, strict: true });
  if (!ensureNodeModules()) {
    process.stderr.write('npm ci failed; see its output above\n');
    process.exit(1);
  }
  // The Worker's kernels come from the generated shader module: brought up to date with shaders/
  // first, as `npm run build` does in its prebuild step.
  const shaders = renderShaderModule();
  if (readFileSync(generatedPath, 'utf8') !== shaders) {
    writeFileSync(generatedPath, shaders);
    process.stdout.write(`wrote ${generatedPath} (shaders/ had changed)\n`);
  }
  const outDir = resolve(values['out-dir'] ?? resolve(projectRoot, 'dist-extension'));
  const ms = await buildExtension(outDir);
  process.stdout.write(
    `\nbuilt the extension into ${outDir} in ${(ms / 1000).toFixed(1)} s; load it at chrome://extensions (Developer mode, Load unpacked).\n`,
  );
}
