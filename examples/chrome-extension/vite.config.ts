// Builds the Chrome extension into dist-extension/ (`npm run build:extension`, which runs
// scripts/build-extension.mjs). Entries: the side panel page (which starts the engine's Worker,
// bundled as its own ES module chunk with every WGSL shader inlined, as in the demo), the service
// worker and the script injected into tabs, the last two at fixed names the manifest and the
// panel use. public/ holds manifest.json. Relative URLs (base './'), as extension pages want.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));
const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Entries the extension names by path: they are built to the output's root under these names. */
const FIXED_NAMES = new Set(['service-worker', 'page-text']);

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

export default defineConfig({
  root,
  base: './',
  publicDir: 'public',
  appType: 'mpa',
  worker: { format: 'es' },
  plugins: [demoPalette(), noPdfWorker()],
  build: {
    target: 'es2022',
    outDir: `${projectRoot}/dist-extension`,
    emptyOutDir: true,
    // Extension pages load from the package: no need to split a few hundred KB for download speed.
    chunkSizeWarningLimit: 4096,
    rollupOptions: {
      input: {
        sidepanel: `${root}/sidepanel.html`,
        'service-worker': `${root}/src/service-worker.ts`,
        'page-text': `${root}/src/page-text.ts`,
      },
      output: {
        entryFileNames: (chunk) => (FIXED_NAMES.has(chunk.name) ? '[name].js' : 'assets/[name]-[hash].js'),
      },
    },
  },
});
