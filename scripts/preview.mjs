// `npm run preview`: serves the built demo (dist/) with `vite preview`, building it first when
// dist/ is missing or older than the sources. Options: --host (listen on all addresses), --port N.
// dist/ itself needs no server of ours: any static host serves it, at any path.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildDemo } from './build.mjs';
import { ensureNodeModules, prepareDemoModel, projectRoot } from './setup.mjs';

const { values } = parseArgs({
  options: { host: { type: 'boolean' }, port: { type: 'string' } },
  strict: true,
});

const distDir = resolve(projectRoot, 'dist');

/** Newest modification time under `path` (a file or a folder), skipping public/models/. */
function newestMtime(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = 0;
  for (const name of readdirSync(path)) {
    const child = join(path, name);
    if (child === join(projectRoot, 'public', 'models')) continue;
    newest = Math.max(newest, newestMtime(child));
  }
  return newest;
}

if (!ensureNodeModules()) {
  process.stderr.write('npm ci failed; see its output above\n');
  process.exit(1);
}
const sources = ['index.html', 'src', 'shaders', 'public', 'vite.config.ts', 'package-lock.json'].map((p) => join(projectRoot, p));
const built = existsSync(join(distDir, 'index.html')) ? statSync(join(distDir, 'index.html')).mtimeMs : 0;
if (built < Math.max(...sources.map(newestMtime))) {
  process.stdout.write(built ? 'dist/ is older than the sources: building it again\n' : 'no dist/ yet: building it\n');
  prepareDemoModel();
  const ms = await buildDemo(distDir, { logLevel: 'warn' });
  process.stdout.write(`built dist/ in ${(ms / 1000).toFixed(1)} s\n`);
}

const { preview } = await import('vite');
const server = await preview({
  configFile: join(projectRoot, 'vite.config.ts'),
  build: { outDir: distDir },
  preview: {
    ...(values.host ? { host: true } : {}),
    ...(values.port ? { port: Number(values.port) } : {}),
  },
});
server.printUrls();
const url = server.resolvedUrls?.local[0];
if (url) process.stdout.write(`\nchunklm demo (built): open ${url} in a browser with WebGPU (Chrome or Edge).\n`);
