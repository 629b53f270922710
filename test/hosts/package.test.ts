// chunklm as a package, outside Vite: a host's page script and its Worker, importing `chunklm`
// and `chunklm/worker` by name (a node_modules symlink to the project), bundle with esbuild; the
// Worker bundle carries the kernels as text; the entry imports in plain Node; the declarations
// type-check a consumer. Builds lib/ first (npm run build:lib, without regenerating shaders).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, type BuildOptions } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLib } from '../../scripts/build-lib.mjs';
import { projectRoot } from '../helpers/shared.ts';

const HOST_TS = `
import { ChunklmClient, PROTOCOL_VERSION, WorkerError, type GenerationResult } from 'chunklm';

// esbuild leaves new URL(...) alone: the Worker is its own entry point, built next to this file.
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const client = await ChunklmClient.create({ worker });
const result: GenerationResult = await client.generate('Once upon a time', { maxTokens: 4, temperature: 0 }).result;
console.log(PROTOCOL_VERSION, result.tokens, WorkerError.name);
`;
const WORKER_TS = `import 'chunklm/worker';\n`;

/** Function names declared in each shaders/*.wgsl file (its kernels and helpers). */
function wgslFunctions(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of readdirSync(join(projectRoot, 'shaders')).filter((n) => n.endsWith('.wgsl'))) {
    const text = readFileSync(join(projectRoot, 'shaders', f), 'utf8');
    out.set(f.slice(0, -5), [...text.matchAll(/^fn (\w+)\(/gm)].map((m) => m[1]));
  }
  return out;
}

describe('chunklm as a package, bundled by esbuild and imported by Node', () => {
  let dir: string;
  let out: string;
  const common = (): BuildOptions => ({
    absWorkingDir: dir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: true,
    logLevel: 'silent',
  });

  beforeAll(() => {
    buildLib({ generate: false });
    dir = mkdtempSync(join(tmpdir(), 'chunklm-host-'));
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(projectRoot, join(dir, 'node_modules', 'chunklm'), 'dir');
    writeFileSync(join(dir, 'host.ts'), HOST_TS);
    writeFileSync(join(dir, 'worker.ts'), WORKER_TS);
    out = join(dir, 'out');
  }, 120_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('bundles a host page and its Worker from the built package, with no import.meta.glob and the kernels in the Worker', async () => {
    const r = await build({ ...common(), entryPoints: { host: 'host.ts', worker: 'worker.ts' }, outdir: out, metafile: true });
    expect(r.errors).toEqual([]);
    const inputs = Object.keys(r.metafile.inputs);
    // Resolved by package name to the built JavaScript, not to the TypeScript sources.
    expect(inputs.some((p) => /(^|\/)lib\/worker\/worker\.js$/.test(p))).toBe(true);
    expect(inputs.some((p) => /(^|\/)src\//.test(p))).toBe(false);

    const host = readFileSync(join(out, 'host.js'), 'utf8');
    const worker = readFileSync(join(out, 'worker.js'), 'utf8');
    for (const code of [host, worker]) expect(code).not.toContain('import.meta.glob');
    for (const [name, fns] of wgslFunctions()) {
      expect(worker, `${name}.wgsl in the Worker bundle`).toMatch(new RegExp(`\\b${name}["']?\\s*:`));
      for (const fn of fns) expect(worker, `fn ${fn} of ${name}.wgsl in the Worker bundle`).toContain(`fn ${fn}(`);
    }
    // The page's bundle carries the client alone: the kernels stay in the Worker's.
    expect(host).not.toContain('fn tanh_clamped(');
    expect(host).toContain('handshake');
  });

  it("bundles the Worker from the TypeScript sources too (esbuild's conditions: ['source'])", async () => {
    const r = await build({ ...common(), entryPoints: { worker: 'worker.ts' }, outdir: join(dir, 'out-source'), conditions: ['source'], metafile: true });
    expect(r.errors).toEqual([]);
    expect(Object.keys(r.metafile.inputs).some((p) => p.endsWith('src/gpu/shader-sources.generated.ts'))).toBe(true);
    expect(readFileSync(join(dir, 'out-source', 'worker.js'), 'utf8')).toContain('fn tanh_clamped(');
  });

  it('imports in plain Node (no Vite, no tsx), by package name', () => {
    const script = `
      const m = await import('chunklm');
      const api = await import('chunklm/api');
      console.log(JSON.stringify({
        client: typeof m.ChunklmClient.create, engine: typeof m.Engine, protocol: m.PROTOCOL_VERSION,
        sameClient: api.ChunklmClient === m.ChunklmClient, errors: new m.GGUFError('x', 'y') instanceof m.ChunklmError,
        shaders: Object.keys(m.shaderSources).sort(), worker: import.meta.resolve('chunklm/worker'),
      }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const got = JSON.parse(r.stdout);
    expect(got).toMatchObject({ client: 'function', engine: 'function', protocol: 4, sameClient: true, errors: true });
    expect(got.shaders).toEqual([...wgslFunctions().keys()].sort());
    expect(got.worker).toMatch(/\/lib\/worker\/worker\.js$/);
  });

  it("ships declarations a consumer's tsc checks (strict, no allowImportingTsExtensions)", () => {
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler', strict: true, noEmit: true, lib: ['ES2023', 'DOM'], types: [] },
        files: ['host.ts', 'wrong.ts'],
      }),
    );
    // A type error in the consumer must be found: the types are real, not `any`.
    writeFileSync(join(dir, 'wrong.ts'), `import type { GenerationResult } from 'chunklm';\nexport const wrong = (r: GenerationResult): string => r.tokens;\n`);
    const r = spawnSync(process.execPath, [join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { cwd: dir, encoding: 'utf8' });
    const errors = r.stdout.split('\n').filter((l) => l.includes('error TS'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^wrong\.ts\(2,.*'number\[\]' is not assignable to type 'string'/);
  });
});
