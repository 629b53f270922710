// `chunklm generate --doc`: documents split into chunks, linked in front of the prompt.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { missingShared, projectRoot, sharedFile } from '../helpers/shared.ts';

const stories = sharedFile('models/stories260K.gguf');

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [resolve(projectRoot, 'bin/chunklm.mjs'), ...args], { cwd: projectRoot, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('chunklm CLI --doc usage errors', () => {
  it('--method without --doc, an unknown method and a bad k exit with status 2', () => {
    const a = cli(['generate', '--model', 'm.gguf', '--prompt', 'x', '--method', 'naive']);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('--method applies only to documents requests (--doc or --ask-docs)');
    const b = cli(['generate', '--model', 'm.gguf', '--prompt', 'x', '--doc', 'd.txt', '--method', 'magic']);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain("--method must be one of full, prefix, naive, attnlink, cacheblend, got 'magic'");
    const c = cli(['generate', '--model', 'm.gguf', '--prompt', 'x', '--doc', 'd.txt', '--method', 'cacheblend', '--ratio', '1.5']);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain("--ratio must be a number in [0, 1], got '1.5'");
    const d = cli(['generate', '--model', 'm.gguf', '--prompt', 'x', '--doc', 'd.txt', '--method', 'naive', '--k', '3']);
    expect(d.code).toBe(2);
    expect(d.stderr).toContain('--k applies to --method attnlink, not naive');
    const e = cli(['bench', 'nope']);
    expect(e.code).toBe(2);
    expect(e.stderr).toContain("bench needs one of pic, engine, got 'nope'");
  });
});

describe.skipIf(!stories)(stories ? 'chunklm generate --doc on stories260K' : missingShared('models/stories260K.gguf'), () => {
  // Five processes that each start Dawn: minutes on a busy machine.
  it('--json reports chunks and token accounting; attnlink with k beyond the chunk length equals full', { timeout: 600_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'chunklm-docs-'));
    writeFileSync(join(dir, 'a.txt'), 'Lily had a red ball. She liked to throw it high in the sky.\n\nOne day the ball fell in the pond.\n');
    writeFileSync(join(dir, 'b.txt'), 'Tom was a big dog. He liked to run in the park.\n');
    const base = ['generate', '--model', stories!, '--doc', join(dir, 'a.txt'), '--doc', join(dir, 'b.txt'), '--prompt', 'Then Lily and Tom', '--max-tokens', '8', '--json'];
    const full = cli([...base, '--method', 'full']);
    expect(full.stderr).toBe('');
    expect(full.code).toBe(0);
    const f = JSON.parse(full.stdout);
    expect(f.computedTokens).toBe(f.promptTokens.length);
    const linked = JSON.parse(cli([...base, '--method', 'attnlink', '--k', '1000']).stdout);
    expect(linked.tokens).toEqual(f.tokens);
    expect(linked.chunks.length).toBeGreaterThanOrEqual(2);
    for (const c of linked.chunks) expect(c.id).toMatch(/^[0-9a-f]{64}$/);
    expect(linked.reusedTokens + linked.recomputedTokens + linked.computedTokens).toBe(linked.promptTokens.length);
    // cacheblend with ratio 1 recomputes every chunk token: full's output again.
    const blend = JSON.parse(cli([...base, '--method', 'cacheblend', '--ratio', '1']).stdout);
    expect(blend.tokens).toEqual(f.tokens);
    const chunkTokens = blend.chunks.reduce((n: number, c: { tokens: number }) => n + c.tokens, 0);
    expect(blend.recomputedTokens).toBe(chunkTokens);
    const part = JSON.parse(cli([...base, '--method', 'cacheblend', '--ratio', '0.25']).stdout);
    expect(part.recomputedTokens).toBe(Math.ceil(0.25 * chunkTokens));
    expect(part.reusedTokens + part.recomputedTokens + part.computedTokens).toBe(part.promptTokens.length);
    // prefix in a fresh process has nothing to reuse: it computes everything, exactly like full.
    const prefix = JSON.parse(cli([...base, '--method', 'prefix']).stdout);
    expect(prefix.tokens).toEqual(f.tokens);
    expect(prefix.reusedTokens).toBe(0);
    expect(prefix.computedTokens).toBe(f.promptTokens.length);
  });

  it('--doc with --store adds the file as a document, so the next process reuses its chunks; --cache-dir is the old name of --store', { timeout: 300_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'chunklm-cache-'));
    writeFileSync(join(dir, 'a.txt'), 'Lily had a red ball. She liked to throw it high in the sky.\n\nOne day the ball fell in the pond.\n');
    const args = ['generate', '--model', stories!, '--doc', join(dir, 'a.txt'), '--prompt', 'Then Lily', '--max-tokens', '8', '--k', '2', '--json'];
    const run = cli([...args, '--store', join(dir, 'kv')]);
    expect(run.code).toBe(0);
    const first = JSON.parse(run.stdout);
    // Added (and computed) in this process before the question: linked from the GPU pool or memory.
    expect(first.added.map((d: { id: string }) => d.id)).toEqual(['a']);
    expect(first.added[0].computedChunks).toBe(first.added[0].chunks);
    expect(first.chunks.every((c: { source: string; document: string }) => (c.source === 'gpu' || c.source === 'memory') && c.document === 'a')).toBe(true);
    expect(existsSync(join(dir, 'kv', 'documents', 'a.json'))).toBe(true);
    for (const c of first.chunks) expect(existsSync(join(dir, 'kv', 'chunks', `${c.id}.clkv`))).toBe(true);
    const old = cli([...args, '--cache-dir', join(dir, 'kv')]);
    expect(old.code).toBe(0);
    expect(old.stderr).toContain('--cache-dir is deprecated: use --store DIR');
    const second = JSON.parse(old.stdout);
    expect(second.added[0].computedChunks).toBe(0);
    expect(second.chunks.every((c: { source: string; cached: boolean }) => c.source === 'store' && c.cached)).toBe(true);
    expect(second.reusedTokens).toBe(first.reusedTokens);
    expect(second.reusedTokens).toBeGreaterThan(0);
    expect(second.tokens).toEqual(first.tokens);
  });
});
