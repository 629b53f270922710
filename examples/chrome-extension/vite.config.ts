// Builds the Chrome extension into dist-extension/ (`npm run build:extension`, which runs
// scripts/build-extension.mjs), in two builds into the same folder: the side panel page (which
// starts the engine's Worker, bundled as its own ES module chunk with the WGSL kernels inside, as
// in the demo) with the service worker; then the script injected into tabs, alone. The service worker and
// the injected script keep fixed names, which the manifest and the panel use. public/ holds
// manifest.json. Relative URLs (base './'), as extension pages want.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin, type UserConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));
const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The demo's colours (light and dark custom properties) live in a <style> in the project's
 * index.html; the side panel takes that same block instead of a copy of it.
 */
function demoPalette(): Plugin {
  return {
    name: 'chunklm-demo-palette',
    transformIndexHtml(html) {
      const index = readFileSync(`${projectRoot}/index.html`, 'utf8');
      const style = /<style>[\s\S]*?<\/style>/.exec(index)?.[0];
      if (!style) throw new Error('index.html has no <style> block with the demo colours');
      return html.replace(/<!-- chunklm:palette[^>]*-->/, style);
    },
  };
}

/**
 * ingest.ts (whose htmlToDocument page-text.ts uses) loads pdf.js lazily with its worker as a `?url`
 * asset. That loader is unreachable from page-text.ts, but Vite emits `?url` assets when it
 * transforms the import, before tree-shaking: without this, 1.2 MB of pdf.js worker would ship
 * unused. The extension reads no PDF.
 */
function noPdfWorker(): Plugin {
  const id = '\0chunklm-no-pdf-worker';
  return {
    name: 'chunklm-no-pdf-worker',
    enforce: 'pre',
    resolveId: (source) => (/pdf\.worker[^?]*\?url$/.test(source) ? id : undefined),
    load: (source) => (source === id ? 'export default "";' : undefined),
  };
}

const outDir = `${projectRoot}/dist-extension`;

/** The side panel (with the engine's Worker) and the service worker. */
const panelConfig: UserConfig = {
  root,
  base: './',
  publicDir: 'public',
  appType: 'mpa',
  worker: { format: 'es' },
  plugins: [demoPalette(), noPdfWorker()],
  build: {
    target: 'es2022',
    outDir,
    emptyOutDir: true,
    // Extension pages load from the package: no need to split a few hundred KB for download speed.
    chunkSizeWarningLimit: 4096,
    rollupOptions: {
      input: {
        sidepanel: `${root}/sidepanel.html`,
        // A module service worker may import shared chunks statically (not with import()).
        'service-worker': `${root}/src/service-worker.ts`,
      },
      output: {
        entryFileNames: (chunk) => (chunk.name === 'service-worker' ? '[name].js' : 'assets/[name]-[hash].js'),
      },
    },
  },
};

/**
 * The script injected into tabs, built alone as one classic script (IIFE): a script injected with
 * `files` cannot import, so it must share no chunk with the panel, which a multi-entry build would
 * make of any module both use (errors, the API module). Built into a folder of its own, from which
 * scripts/build-extension.mjs takes page-text.js alone: Vite also emits what the modules it
 * transforms refer to (the client's Worker), though tree-shaking leaves them out of the script.
 */
const pageTextConfig: UserConfig = {
  root,
  base: './',
  publicDir: false,
  plugins: [noPdfWorker()],
  build: {
    target: 'es2022',
    outDir: `${projectRoot}/.cache/extension-page-text`,
    emptyOutDir: true,
    rollupOptions: {
      input: { 'page-text': `${root}/src/page-text.ts` },
      output: { format: 'iife', entryFileNames: '[name].js' },
    },
  },
};

/** `vite build -c examples/chrome-extension/vite.config.ts` builds the panel; `--mode page-text` the injected script. */
export default defineConfig(({ mode }) => (mode === 'page-text' ? pageTextConfig : panelConfig));
