// `npm run build:lib`: the package's JavaScript and declarations in lib/ (git-ignored; what
// `exports` in package.json points at). tsc emits one .js and one .d.ts per source file
// (tsconfig.lib.json), so the tree under lib/ mirrors src/ and relative URLs stay true; then two
// fixes tsc does not make:
// - the default Worker's URL in client.js, a string in `new URL('../worker/worker.ts', ...)`
//   rather than an import, is pointed at worker.js;
// - relative `.ts` specifiers in the .d.ts files become `.js`, which every TypeScript resolves.
// Regenerates the shader module first, so lib/ never carries stale kernels.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
export const libDir = join(root, 'lib');

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
}

function* files(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else yield p;
  }
}

/**
 * Builds lib/ from src/ and returns how long it took, in ms. `generate: false` leaves the shader
 * module as committed (the package test, which must not hide a stale one).
 */
export function buildLib({ generate = true } = {}) {
  const start = performance.now();
  if (generate) run(process.execPath, [join(root, 'scripts', 'gen-shaders.mjs')]);
  rmSync(libDir, { recursive: true, force: true });
  run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.lib.json')]);

  const clientJs = join(libDir, 'client', 'client.js');
  const client = readFileSync(clientJs, 'utf8');
  const workerUrl = "new URL('../worker/worker.ts', import.meta.url)";
  if (client.split(workerUrl).length !== 2) throw new Error(`expected one ${workerUrl} in ${clientJs}; update scripts/build-lib.mjs`);
  writeFileSync(clientJs, client.replace(workerUrl, "new URL('../worker/worker.js', import.meta.url)"));

  for (const f of files(libDir)) {
    if (!f.endsWith('.d.ts')) continue;
    const text = readFileSync(f, 'utf8');
    const fixed = text.replace(/((?:from |import\()\s*['"])(\.{1,2}\/[^'"]+)\.ts(['"])/g, '$1$2.js$3');
    if (fixed !== text) writeFileSync(f, fixed);
  }
  return performance.now() - start;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const ms = buildLib();
  process.stdout.write(`built the package into ${libDir} in ${(ms / 1000).toFixed(1)} s\n`);
}
