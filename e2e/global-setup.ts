// Serves the demo for the browser tests: puts the model in public/models/ and starts Vite on a
// free port; the tests read its address with inject('baseURL').
import type { TestProject } from 'vitest/node';
import { prepareDemoModel, projectRoot } from '../scripts/setup.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Address of the demo, ending with '/'. */
    baseURL: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  prepareDemoModel();
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
  };
}
