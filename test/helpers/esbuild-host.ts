// A host of chunklm bundled by esbuild, as an application outside this repository would build it:
// its page script imports `chunklm` and its Worker `chunklm/worker` by package name (a
// node_modules symlink to the project), the Worker is its own entry point, and the page hands
// that Worker to ChunklmClient.create. Used by test/hosts/package.test.ts and e2e/esbuild-host.e2e.ts.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, type BuildOptions, type Metafile } from 'esbuild';
import { projectRoot } from './shared.ts';

export const HOST_TS = `
import { ChunklmClient, PROTOCOL_VERSION, type GenerationResult } from 'chunklm';

// esbuild leaves new URL(...) alone: the Worker is its own entry point, built next to this file.
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const ready: Promise<ChunklmClient> = ChunklmClient.create({ worker });
async function greedy(client: ChunklmClient, text: string, maxTokens: number): Promise<GenerationResult> {
  return client.generate(text, { maxTokens, temperature: 0 }).result;
}
Object.assign(globalThis, { chunklmReady: ready, chunklmGreedy: greedy, chunklmProtocol: PROTOCOL_VERSION });
`;
export const WORKER_TS = `import 'chunklm/worker';\n`;
export const INDEX_HTML = `<!doctype html>\n<meta charset="utf-8">\n<title>chunklm esbuild host</title>\n<link rel="icon" href="data:,">\n<script type="module" src="./host.js"></script>\n`;

/** A temporary folder with host.ts, worker.ts and node_modules/chunklm -> the project. */
export function makeHostDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'chunklm-host-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(projectRoot, join(dir, 'node_modules', 'chunklm'), 'dir');
  writeFileSync(join(dir, 'host.ts'), HOST_TS);
  writeFileSync(join(dir, 'worker.ts'), WORKER_TS);
  return dir;
}

/** Bundles host.ts and worker.ts of `dir` into `outDir` (host.js, worker.js, index.html). */
export async function bundleHost(dir: string, outDir: string, extra: BuildOptions = {}): Promise<Metafile> {
  const r = await build({
    absWorkingDir: dir,
    entryPoints: { host: 'host.ts', worker: 'worker.ts' },
    outdir: outDir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    metafile: true,
    logLevel: 'silent',
    ...extra,
  });
  if (r.errors.length > 0) throw new Error(`esbuild: ${r.errors.map((e) => e.text).join('; ')}`);
  if (!r.metafile) throw new Error('esbuild returned no metafile');
  writeFileSync(join(outDir, 'index.html'), INDEX_HTML);
  return r.metafile;
}

/** Function names declared in each shaders/*.wgsl file (its kernels and helpers), by base name. */
export function wgslFunctions(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of readdirSync(join(projectRoot, 'shaders')).filter((n) => n.endsWith('.wgsl'))) {
    const text = readFileSync(join(projectRoot, 'shaders', f), 'utf8');
    out.set(f.slice(0, -5), [...text.matchAll(/^fn (\w+)\(/gm)].map((m) => m[1]));
  }
  return out;
}
