#!/usr/bin/env node
// Runs the TypeScript CLI (src/node/cli.ts) through tsx, so `npx chunklm` works from the
// repository without a build step. Exits explicitly: a live Dawn instance would otherwise keep
// the process running after the command is done.
import { register } from 'tsx/esm/api';

register();

function drain(stream) {
  return new Promise((resolve) => stream.write('', resolve));
}

let code;
try {
  const { main } = await import('../src/node/cli.ts');
  code = await main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`error: ${err?.name ?? 'Error'}: ${err?.message ?? String(err)}\n`);
  code = 1;
}
await Promise.all([drain(process.stdout), drain(process.stderr)]);
process.exit(code);
