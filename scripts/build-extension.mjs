// `npm run build:extension`: installs what is missing, then builds the Chrome extension of
// examples/chrome-extension/ into dist-extension/ (load it unpacked at chrome://extensions).
// `buildExtension` is also what e2e/extension.e2e.ts builds with. Option: --out-dir DIR.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { generatedPath, renderShaderModule } from './gen-shaders.mjs';
import { ensureNodeModules, projectRoot } from './setup.mjs';

/** Files the manifest or the side panel name by path: each must be one classic-or-module script with no import of a shared chunk. */
const STANDALONE_SCRIPTS = ['service-worker.js', 'page-text.js'];

/**
 * Builds the extension into `outDir` (emptied first) and returns how long it took, in ms. Needs
 * node_modules. Fails when the service worker or the injected script came out importing another
 * chunk: page-text.js runs as a classic script in the tab, where `import` is a syntax error.
 */
export async function buildExtension(outDir = resolve(projectRoot, 'dist-extension'), { logLevel = 'info' } = {}) {
  const { build } = await import('vite');
  const start = performance.now();
  await build({
    configFile: resolve(projectRoot, 'examples/chrome-extension/vite.config.ts'),
    logLevel,
    clearScreen: false,
    build: { outDir, emptyOutDir: true },
  });
  for (const name of STANDALONE_SCRIPTS) {
    const code = readFileSync(join(outDir, name), 'utf8');
    if (/(^|[;}\n])\s*(import\s*[\w{*'"`]|export\s*[\w{*])/.test(code)) {
      throw new Error(`${name} imports or exports something; the extension needs it as one self-contained script`);
    }
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
