// chunklm as a package, outside Vite: a host's page script and its Worker, importing `chunklm`
// and `chunklm/worker` by name (a node_modules symlink to the project), bundle with esbuild; the
// Worker bundle carries the kernels as text; Vite builds the same host's two Worker patterns; the
// entry imports in plain Node; the declarations type-check a consumer. Builds lib/ first (npm run build:lib, without regenerating shaders).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLib } from '../../scripts/build-lib.mjs';
import { bundleHost, makeHostDir, wgslFunctions } from '../helpers/esbuild-host.ts';
import { projectRoot } from '../helpers/shared.ts';

describe('chunklm as a package, bundled by esbuild and Vite and imported by Node', () => {
  let dir: string;

  beforeAll(() => {
    buildLib({ generate: false });
    dir = makeHostDir();
  }, 120_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('bundles a host page and its Worker from the built package, with no import.meta.glob and the kernels in the Worker', async () => {
    const out = join(dir, 'out');
    const inputs = Object.keys((await bundleHost(dir, out)).inputs);
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

  it("bundles with Vite too: the client's default Worker and an explicit 'chunklm/worker?worker' become one Worker chunk with the kernels", async () => {
    const { build } = await import('vite');
    const site = join(dir, 'vite');
    mkdirSync(site);
    writeFileSync(join(site, 'index.html'), '<script type="module" src="./main.ts"></script>\n');
    writeFileSync(
      join(site, 'main.ts'),
      "import { ChunklmClient } from 'chunklm';\nimport ChunklmWorker from 'chunklm/worker?worker';\n" +
        'export const explicit = ChunklmClient.create({ worker: new ChunklmWorker() });\nexport const byDefault = ChunklmClient.create();\n',
    );
    await build({ root: site, configFile: false, logLevel: 'silent', worker: { format: 'es' }, build: { outDir: join(site, 'dist') } });
    const assets = readdirSync(join(site, 'dist', 'assets'));
    const workers = assets.filter((f) => readFileSync(join(site, 'dist', 'assets', f), 'utf8').includes('fn tanh_clamped('));
    expect(workers).toHaveLength(1);
    const page = assets.filter((f) => f.startsWith('index')).map((f) => readFileSync(join(site, 'dist', 'assets', f), 'utf8')).join('');
    expect(page.split(workers[0]).length - 1).toBe(2);
    expect(page).not.toContain('fn tanh_clamped(');
  }, 120_000);

  it("bundles the Worker from the TypeScript sources too (esbuild's conditions: ['source'])", async () => {
    const meta = await bundleHost(dir, join(dir, 'out-source'), { conditions: ['source'] });
    expect(Object.keys(meta.inputs).some((p) => p.endsWith('src/gpu/shader-sources.generated.ts'))).toBe(true);
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
    // --pretty false: `npm test` sets FORCE_COLOR, which would colour 'error' apart from 'TS…'.
    const r = spawnSync(process.execPath, [join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir, '--pretty', 'false'], { cwd: dir, encoding: 'utf8' });
    const errors = r.stdout.split('\n').filter((l) => l.includes('error TS'));
    expect(errors, `tsc exited ${r.status} (signal ${r.signal}, error ${r.error?.message}); stdout: ${r.stdout}; stderr: ${r.stderr}`).toHaveLength(1);
    expect(errors[0]).toMatch(/^wrong\.ts\(2,.*'number\[\]' is not assignable to type 'string'/);
  });
});
