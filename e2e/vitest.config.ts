// Browser tests: vitest drives Chromium (playwright-core, the system's /usr/bin/chromium, WebGPU
// on SwiftShader) against the demo served by Vite from the global setup. Run with
// `npx vitest run --config e2e/vitest.config.ts`, or through `npm test`.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: {
    include: ['e2e/**/*.e2e.ts'],
    globalSetup: ['e2e/global-setup.ts'],
    // One browser at a time: SwiftShader is CPU-bound and the machine may have two cores.
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
