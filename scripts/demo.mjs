// `npm run dev`: installs what is missing, puts the demo model in public/models/, and serves the
// demo with Vite. Options: --host (listen on all addresses), --port N.
import { parseArgs } from 'node:util';
import { demoModelName, ensureNodeModules, prepareDemoModel, projectRoot, sharedRoot } from './setup.mjs';

const { values } = parseArgs({
  options: { host: { type: 'boolean' }, port: { type: 'string' } },
  strict: true,
});

if (!ensureNodeModules()) {
  process.stderr.write('npm ci failed; see its output above\n');
  process.exit(1);
}

const model = prepareDemoModel();
if (!model) {
  process.stdout.write(
    `No demo model: put a GGUF file at public/models/${demoModelName} (it is looked for at ` +
      `${sharedRoot}/models/${demoModelName}), or the page offers Qwen2.5-0.5B-Instruct from the Hugging Face Hub, any GGUF URL, or a local file.\n`,
  );
}

const { createServer } = await import('vite');
const server = await createServer({
  configFile: `${projectRoot}/vite.config.ts`,
  server: {
    ...(values.host ? { host: true } : {}),
    ...(values.port ? { port: Number(values.port) } : {}),
  },
});
await server.listen();
server.printUrls();
const url = server.resolvedUrls?.local[0];
if (url) process.stdout.write(`\nchunklm demo: open ${url} in a browser with WebGPU (Chrome or Edge), load a model, add documents, ask.\n`);
