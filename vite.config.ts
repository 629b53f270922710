// Vite serves and bundles the demo (index.html → src/ui/main.ts) and the engine's Worker.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
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
});
