// `chunklm generate --model <url>`: the model is downloaded into the folder given by
// --model-cache, the second run reads it from there without asking the server for its bytes, and a
// split model loads from a URL or from local part files alike.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitGGUFBytes } from '../../src/gguf/split.ts';
import { makeSyntheticModel, SYNTHETIC_PRESETS } from '../../src/model/synthetic.ts';
import { FileServer } from '../helpers/file-server.ts';
import { missingShared, projectRoot, sharedFile } from '../helpers/shared.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], timeoutMs = 240_000): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [resolve(projectRoot, 'bin/chunklm.mjs'), ...args], {
      cwd: projectRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

const stories = sharedFile('models/stories260K.gguf');
let server: FileServer;
let dir: string;
beforeAll(async () => {
  server = await FileServer.start();
  dir = mkdtempSync(join(tmpdir(), 'chunklm-cli-hub-'));
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!stories)(stories ? 'chunklm generate --model <url>' : missingShared('models/stories260K.gguf'), () => {
  it('downloads into --model-cache, then runs from it with no request for the weights', async () => {
    const path = '/karpathy/tinyllamas/resolve/main/stories260K.gguf';
    const url = server.put(path, new Uint8Array(readFileSync(stories!)), 'stories-1');
    const cache = join(dir, 'models');
    const args = ['generate', '--model', url, '--model-cache', cache, '--prompt', 'Once upon a time', '--max-tokens', '8'];
    const first = await cli(args);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.startsWith(', there was a little girl')).toBe(true);
    expect(first.stderr).toContain(`[chunklm] downloading ${url}`);
    expect(first.stderr).toContain(`${url}: downloaded into the model cache ${cache}`);
    expect(readdirSync(cache).sort()).toHaveLength(2); // the file and its entry

    const gets = server.gets(path).length;
    const second = await cli(args);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    expect(second.stderr).toContain(`${url}: from the model cache ${cache}`);
    expect(second.stderr).not.toContain('downloading');
    expect(server.gets(path).length, 'GET requests of the second run').toBe(gets);
  }, 600_000);
});

describe('split models in the CLI', () => {
  it('load from a URL naming any part and from local part files, with the same answer', async () => {
    const model = makeSyntheticModel({ ...SYNTHETIC_PRESETS['tiny-gqa4-h64'], seed: 11 });
    const parts = await splitGGUFBytes(model, 3);
    const names = parts.map((_, i) => `tiny-0000${i + 1}-of-00003.gguf`);
    names.forEach((n, i) => {
      server.put(`/org/split/resolve/main/${n}`, parts[i], `s${i}`);
      writeFileSync(join(dir, n), parts[i]);
    });
    const common = ['--prompt', 'the', '--max-tokens', '6', '--json'];
    const remote = await cli(['generate', '--model', server.url(`/org/split/resolve/main/${names[1]}`), '--model-cache', join(dir, 'split-cache'), ...common]);
    expect(remote.code, remote.stderr).toBe(0);
    const local = await cli(['generate', '--model', join(dir, names[0]), ...common]);
    expect(local.code, local.stderr).toBe(0);
    const a = JSON.parse(remote.stdout) as { tokens: number[] };
    const b = JSON.parse(local.stdout) as { tokens: number[] };
    expect(a.tokens).toHaveLength(6);
    expect(a.tokens).toEqual(b.tokens);
    expect(server.gets('/org/split/').map((r) => r.path.split('/').pop())).toEqual(expect.arrayContaining(names));
  }, 600_000);
});
