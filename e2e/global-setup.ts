// Serves the demo for the browser tests, twice: the sources through Vite's dev server (most tests;
// no service worker there), and the built demo (scripts/build.mjs into .cache/e2e-dist/, never
// dist/, which a developer may be using) from a plain static server under a sub-path, the way
// a static host would serve it, with the demo model beside it at models/. The tests read the
// addresses with inject('baseURL') and inject('distURL').
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { buildDemo } from '../scripts/build.mjs';
import { prepareDemoModel, projectRoot } from '../scripts/setup.mjs';
import { startStaticServer } from './static-server.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Address of the demo on the dev server, ending with '/'. */
    baseURL: string;
    /** Address of the built demo, at a sub-path of a static server, ending with '/'. */
    distURL: string;
  }
}

/** Where the built demo is served: deep enough that a root-relative URL anywhere would 404. */
const DIST_PREFIX = '/hosted/at/a/sub-path/';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  prepareDemoModel();
  const distDir = join(projectRoot, '.cache', 'e2e-dist');
  const ms = await buildDemo(distDir, { logLevel: 'warn' });
  process.stdout.write(`[e2e] built the demo into ${distDir} in ${(ms / 1000).toFixed(1)} s\n`);
  const dist = await startStaticServer(distDir, DIST_PREFIX);
  project.provide('distURL', dist.url);

  const { createServer } = await import('vite');
  const server = await createServer({
    configFile: `${projectRoot}/vite.config.ts`,
    logLevel: 'warn',
    clearScreen: false,
    // Away from the dev server's 5173, in case one is running; the next free port is taken.
    // hmr: false: files edited while the tests run must not reload the pages under test (a
    // reload ends the Worker, and with it the evaluate call that was waiting on it).
    server: { port: 5190, strictPort: false, host: '127.0.0.1', hmr: false },
  });
  await server.listen();
  const url = server.resolvedUrls?.local[0];
  if (!url) throw new Error('the Vite server did not report its address');
  project.provide('baseURL', url);
  return async () => {
    await server.close();
    await dist.close();
  };
}
