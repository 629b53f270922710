// The `chunklm` command line, spawned the way a user runs it (node bin/chunklm.mjs ...):
// argument errors, exit statuses, tokenizer vectors, and a real generation on stories260K.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { missingShared, projectRoot, sharedFile } from '../helpers/shared.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `env` replaces the environment; `onOutput` sees the child (to signal it) and its output so far. */
function cli(args: string[], timeoutMs = 60_000, opts: { env?: NodeJS.ProcessEnv; onOutput?: (child: ChildProcess, run: Run) => void } = {}): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [resolve(projectRoot, 'bin/chunklm.mjs'), ...args], {
      cwd: projectRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      ...(opts.env ? { env: opts.env } : {}),
    });
    const run: Run = { code: null, stdout: '', stderr: '' };
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      run.stdout += d;
      opts.onOutput?.(child, run);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      run.stderr += d;
      opts.onOutput?.(child, run);
    });
    child.on('error', fail);
    child.on('close', (code) => done({ ...run, code }));
  });
}

describe('chunklm CLI arguments', () => {
  it('rejects an unknown flag with exit status 2 and says which', async () => {
    const r = await cli(['generate', '--model', 'm.gguf', '--prompt', 'hi', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Unknown option '--bogus'");
    expect(r.stdout).toBe('');
  });

  it('rejects a missing value, a missing flag, a bad number and an unknown command with status 2', async () => {
    const runs = await Promise.all([
      cli(['tokenize', '--model']),
      cli(['generate', '--model', 'm.gguf']),
      cli(['generate', '--model', 'm.gguf', '--prompt', 'x', '--max-tokens', '1.5']),
      cli(['tokenize', '--model', 'm.gguf', '--text', 'a', '--file', 'b']),
      cli(['train']),
    ]);
    expect(runs.map((r) => r.code)).toEqual([2, 2, 2, 2, 2]);
    expect(runs[0].stderr).toMatch(/--model.*argument missing/);
    expect(runs[1].stderr).toContain('--prompt is required');
    expect(runs[2].stderr).toContain("--max-tokens must be a non-negative integer, got '1.5'");
    expect(runs[3].stderr).toContain('exactly one of --text');
    expect(runs[4].stderr).toContain("unknown command 'train'");
  });

  it('reports a runtime error as "error: <name>: <message>" with status 1', async () => {
    const r = await cli(['tokenize', '--model', '/nonexistent/model.gguf', '--text', 'hi']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: GGUFError: cannot open \/nonexistent\/model\.gguf \(ENOENT\)/);
  });

  it('prints usage with --help and exits 0', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('chunklm generate --model FILE --prompt TEXT');
  });
});

const vocab = sharedFile('vocab/ggml-vocab-llama-spm.gguf');

describe.skipIf(!vocab)(`chunklm tokenize (${vocab ? 'llama-spm vocab' : missingShared('vocab/ggml-vocab-llama-spm.gguf')})`, () => {
  const inputs = vocab ? readFileSync(`${vocab}.inp`, 'utf8').split('\n__ggml_vocab_test__\n') : [];
  const expected = vocab ? readFileSync(`${vocab}.out`, 'utf8').split('\n') : [];
  const ids = (line: string): number[] => line.trim().split(/\s+/).filter(Boolean).map(Number);

  it('--json gives the ids of the first test vector', async () => {
    const r = await cli(['tokenize', '--model', vocab as string, '--text', inputs[0], '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ tokens: ids(expected[0]) });
  });

  it('--add-bos prepends BOS; --file reads the text; plain output is space-separated ids', async () => {
    const r = await cli(['tokenize', '--model', vocab as string, '--file', `${vocab}.inp`, '--add-bos']);
    expect(r.code).toBe(0);
    const got = ids(r.stdout);
    expect(got[0]).toBe(1);
    expect(got.length).toBeGreaterThan(100);
  });
});

const stories = sharedFile('models/stories260K.gguf');

describe.skipIf(!stories)(`chunklm generate (${stories ? 'stories260K on Dawn' : missingShared('models/stories260K.gguf')})`, () => {
  it('--json prints one object, and the streamed text of the same greedy run matches it', async () => {
    const args = ['generate', '--model', stories as string, '--prompt', 'Once upon a time', '--max-tokens', '12', '--temperature', '0'];
    // Both at once: most of each run is Dawn starting and compiling pipelines on the CPU.
    const [j, plain] = await Promise.all([cli([...args, '--json'], 120_000), cli(args, 120_000)]);
    expect(j.stderr).toBe('');
    expect(j.code).toBe(0);
    const lines = j.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0]) as Record<string, unknown>;
    expect(Object.keys(out).sort()).toEqual(
      ['decodeTokPerS', 'finishReason', 'prefillTokPerS', 'promptTokens', 'text', 'tokens', 'ttftMs'].sort(),
    );
    const promptTokens = out.promptTokens as number[];
    const tokens = out.tokens as number[];
    expect(promptTokens[0]).toBe(1); // stories260K adds BOS
    expect(promptTokens.length).toBeGreaterThan(2);
    expect(['length', 'eos']).toContain(out.finishReason);
    if (out.finishReason === 'length') expect(tokens).toHaveLength(12);
    expect((out.text as string).length).toBeGreaterThan(0);
    expect(out.ttftMs as number).toBeGreaterThan(0);

    expect(plain.code).toBe(0);
    expect(plain.stdout).toBe(`${out.text as string}\n`);
    expect(plain.stderr).toMatch(/prompt tokens, \d+ generated \((length|eos)\); TTFT [\d.]+ ms/);
  });
});

describe.skipIf(!stories)(`chunklm generate, as a new user runs it (${stories ? 'stories260K on Dawn' : missingShared('models/stories260K.gguf')})`, () => {
  /**
   * The user's environment as a fresh shell has it: no Vulkan driver chosen (the test runner picks
   * SwiftShader for its own GPU tests), no XDG_RUNTIME_DIR, and a temp folder of the test's own
   * so that whatever a run leaves there is seen.
   */
  function userEnv(extra: NodeJS.ProcessEnv = {}): { env: NodeJS.ProcessEnv; tmp: string; leftovers: () => string[] } {
    const tmp = mkdtempSync(join(tmpdir(), 'chunklm-cli-tmp-'));
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, ...extra };
    for (const key of ['XDG_RUNTIME_DIR', 'VK_ICD_FILENAMES', 'VK_DRIVER_FILES']) if (!(key in extra)) delete env[key];
    return { env, tmp, leftovers: () => readdirSync(tmp).filter((f) => f.startsWith('chunklm-')) };
  }

  it('--prompt "" generates from BOS alone, as llama.cpp does', async () => {
    const r = await cli(['generate', '--model', stories as string, '--prompt', '', '--max-tokens', '6', '--json'], 120_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { promptTokens: number[]; tokens: number[]; text: string; finishReason: string };
    expect(out.promptTokens).toEqual([1]);
    if (out.finishReason === 'length') expect(out.tokens).toHaveLength(6);
    expect(out.text.length).toBeGreaterThan(0);
  });

  it("stderr holds only chunklm's own lines (no Dawn or driver warnings), and no chunklm-xdg-* folder is left", async () => {
    const { env, tmp, leftovers } = userEnv();
    try {
      const r = await cli(['generate', '--model', stories as string, '--prompt', 'Once upon a time', '--max-tokens', '4'], 120_000, { env });
      expect(r.code).toBe(0);
      const foreign = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('[chunklm] '));
      expect(foreign).toEqual([]);
      expect(leftovers()).toEqual([]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('a run that fails to find an adapter (a Vulkan driver file that does not exist) leaves no folder either', async () => {
    const { env, tmp, leftovers } = userEnv({ VK_ICD_FILENAMES: join(tmpdir(), 'chunklm-no-such-driver.json') });
    try {
      const r = await cli(['generate', '--model', stories as string, '--prompt', 'Hi', '--max-tokens', '2'], 120_000, { env });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('error: GPUError: no WebGPU adapter found');
      expect(leftovers()).toEqual([]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('Ctrl-C in the middle of a generation ends the run and leaves no folder', async () => {
    // An explicit driver, so the private XDG_RUNTIME_DIR is made (a run without one skips it).
    const { env, tmp, leftovers } = userEnv({ VK_ICD_FILENAMES: process.env.VK_ICD_FILENAMES ?? '/usr/lib/chromium/vk_swiftshader_icd.json' });
    try {
      let signalled = false;
      const r = await cli(['generate', '--model', stories as string, '--prompt', 'Once upon a time', '--max-tokens', '2000'], 120_000, {
        env,
        onOutput: (child, run) => {
          // The first generated text: the model is loaded and decoding.
          if (!signalled && run.stdout.length > 0) {
            signalled = true;
            child.kill('SIGINT');
          }
        },
      });
      expect(signalled).toBe(true);
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/generated \(aborted\)/);
      expect(leftovers()).toEqual([]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
