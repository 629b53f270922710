// `npm run build`: installs what is missing, puts the demo model in public/models/ (Vite copies
// public/ into the build, so the model ends up at dist/models/), and builds the demo into dist/
// with relative URLs: copy the folder to any static host, at any path. Option: --out-dir DIR.
// `buildDemo` is also what the browser tests' global setup builds with (into .cache/e2e-dist/).
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { demoModelName, ensureNodeModules, prepareDemoModel, projectRoot, sharedRoot } from './setup.mjs';

/**
 * Builds the demo into `outDir` (emptied first) and returns how long it took, in ms. Needs
 * node_modules. Of public/models/ (git-ignored; benchmarks leave their files there too) only the
 * demo model stays in the build.
 */
export async function buildDemo(outDir = resolve(projectRoot, 'dist'), { logLevel = 'info' } = {}) {
  const { build } = await import('vite');
  const start = performance.now();
  await build({
    configFile: resolve(projectRoot, 'vite.config.ts'),
    logLevel,
    clearScreen: false,
    // emptyOutDir: Vite only empties a folder inside the project root unless told to.
    build: { outDir, emptyOutDir: true },
  });
  const models = join(outDir, 'models');
  if (existsSync(models)) {
    for (const name of readdirSync(models)) if (name !== demoModelName) rmSync(join(models, name), { recursive: true, force: true });
  }
  return performance.now() - start;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { values } = parseArgs({ options: { 'out-dir': { type: 'string' } }, strict: true });
  if (!ensureNodeModules()) {
    process.stderr.write('npm ci failed; see its output above\n');
    process.exit(1);
  }
  if (!prepareDemoModel()) {
    process.stdout.write(
      `No demo model: the build has none (looked for ${sharedRoot}/models/${demoModelName}); ` +
        `put a GGUF file at <out-dir>/models/${demoModelName}, or load one by URL or from a file in the page.\n`,
    );
  }
  const outDir = resolve(values['out-dir'] ?? resolve(projectRoot, 'dist'));
  const ms = await buildDemo(outDir);
  process.stdout.write(`\nbuilt the demo into ${outDir} in ${(ms / 1000).toFixed(1)} s; serve it with \`npm run preview\` or copy it to any static host.\n`);
}
