// Vite serves and bundles the demo (index.html → src/ui/main.ts) and the engine's Worker.
// `npm run build` (scripts/build.mjs) writes dist/: relative URLs throughout (base './'), so the
// folder works from any static host at any path, with a service worker that keeps the app shell
// for offline use. Models are never part of it: the app's own model cache holds them.
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';
import { shadersDir, writeShaderModule } from './scripts/gen-shaders.mjs';
import { VitePWA } from 'vite-plugin-pwa';

const root = fileURLToPath(new URL('.', import.meta.url));

/** Model files: too big to precache, fetched with Range requests, cached by the app itself. */
const MODEL_FILES = /(^|\/)models\/|\.(gguf|kvpack)(\?|$)/;

/**
 * Keeps src/gpu/shader-sources.generated.ts in step with shaders/*.wgsl while Vite runs: at the
 * start of a build or of the dev server, and whenever a kernel changes under `npm run dev`.
 */
function shaderModule(): Plugin {
  return {
    name: 'chunklm-shader-module',
    buildStart() {
      writeShaderModule();
    },
    configureServer(server) {
      server.watcher.add(shadersDir);
      server.watcher.on('change', (file) => {
        if (file.endsWith('.wgsl')) writeShaderModule();
      });
    },
  };
}

export default defineConfig({
  root,
  // Relative asset URLs: dist/ works unchanged at https://host/ or https://host/any/sub/path/.
  base: './',
  // 'mpa': an unknown path is a 404, not index.html, so a wrong model URL fails as HTTP 404
  // instead of being parsed as a GGUF file.
  appType: 'mpa',
  server: {
    port: 5173,
    strictPort: false,
    fs: { allow: [root] },
  },
  worker: { format: 'es' },
  optimizeDeps: {
    // Scan the Worker too, so that its dependencies are pre-bundled at startup rather than
    // discovered on first use (which makes Vite reload the page).
    entries: ['index.html', 'src/worker/worker.ts'],
  },
  build: { target: 'es2022' },
  plugins: [
    shaderModule(),
    VitePWA({
      strategies: 'generateSW',
      // Workbox's production build, also when NODE_ENV says otherwise (vitest sets 'test').
      mode: 'production',
      // globPatterns below already takes the icon.
      includeManifestIcons: false,
      registerType: 'autoUpdate',
      // A <script src="./registerSW.js"> added to the built index.html registers ./sw.js with
      // scope './': the page's own folder, wherever that is. No code in src/ui/ is involved.
      injectRegister: 'script',
      // Off under `npm run dev`: the dev server and the tests against it see no service worker.
      devOptions: { enabled: false },
      manifest: {
        name: 'chunklm',
        short_name: 'chunklm',
        description: 'GGUF language models on WebGPU, in your browser',
        start_url: './',
        scope: './',
        display: 'standalone',
        background_color: '#ffffff',
        theme_color: '#4f46e5',
        icons: [{ src: 'icon.svg', sizes: 'any', type: 'image/svg+xml', purpose: 'any' }],
      },
      workbox: {
        // The app shell: HTML, JS (page, Worker, WGSL inlined in the Worker), CSS, wasm, icons;
        // the plugin adds the manifest itself.
        globPatterns: ['**/*.{html,js,mjs,css,wasm,svg}'],
        globIgnores: ['models/**', '**/*.gguf', '**/*.kvpack'],
        // The Worker chunk carries every shader; pdf.js's worker is about 1 MB.
        maximumFileSizeToCacheInBytes: 32 * 1024 * 1024,
        navigateFallback: 'index.html',
        // A model URL opened as a page goes to the network, never to index.html. Model fetches
        // (Range requests from the Worker) match no route at all, so the service worker leaves
        // them to the network and the app's Cache Storage 'chunklm-models'.
        navigateFallbackDenylist: [MODEL_FILES],
        // No runtimeCaching: nothing outside the precache list is stored by the service worker.
        cleanupOutdatedCaches: true,
        // A new build's service worker waits until every tab of the old one is closed: an open
        // tab keeps the files it started with (pdf.js loads on first use), and the next visit
        // runs the new build. The first install claims the page at once, so the visit that
        // installed it already works offline after a reload.
        skipWaiting: false,
        clientsClaim: true,
      },
    }),
  ],
});
