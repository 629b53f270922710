// `chunklm docs` / `generate --ask-docs` / `pack`: documents kept in a folder store across
// processes, corrupt chunk files recomputed and overwritten, and the .kvpack file. Each process
// that loads the model starts Dawn (5-10 s on SwiftShader), so the flow below reuses one store.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { missingShared, projectRoot, sharedFile } from '../helpers/shared.ts';

const stories = sharedFile('models/stories260K.gguf');

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [resolve(projectRoot, 'bin/chunklm.mjs'), ...args], { cwd: projectRoot, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the CLI, expects exit status 0, and parses its one line of JSON. */
function cliJson(args: string[]) {
  const r = cli([...args, '--json']);
  expect(r.stderr, r.stderr).not.toContain('error:');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

interface Chunk {
  id: string;
  tokens: number;
  cached: boolean;
  source: string;
  document?: string;
  index: number;
}

const texts: Record<string, string> = {
  lily: 'Lily had a red ball. She liked to throw it high in the sky.\n\nOne day the ball fell in the pond.\n',
  tom: 'Tom was a big dog. He liked to run in the park.\n',
  sue: 'Sue found a little cat under the tree. The cat was sad and hungry.\n',
};

function writeDocs(dir: string): string[] {
  return Object.entries(texts).map(([id, text]) => {
    const path = join(dir, `${id}.txt`);
    writeFileSync(path, text);
    return path;
  });
}

describe('chunklm docs usage errors', () => {
  it('docs without a subcommand and --ask-docs without --store exit 2; a missing store exits 1', () => {
    const a = cli(['docs']);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('docs needs a subcommand: add, list, remove, pin, import or stats');
    const b = cli(['generate', '--model', 'm.gguf', '--prompt', 'x', '--ask-docs', 'a,b']);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('--ask-docs needs --store DIR');
    const c = cli(['docs', 'list', '--store', join(tmpdir(), 'chunklm-no-such-store')]);
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(/^error: InvalidRequestError: there is no store at /);
  });
});

describe.skipIf(!stories)(stories ? 'chunklm docs and --ask-docs on stories260K' : missingShared('models/stories260K.gguf'), () => {
  it('documents persist across processes; corrupt and truncated chunk files are recomputed and overwritten', { timeout: 900_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'chunklm-store-'));
    const store = join(dir, 'store');
    const files = writeDocs(dir);

    const added = cliJson(['docs', 'add', '--model', stories!, '--store', store, ...files]);
    expect(added.documents.map((d: { id: string }) => d.id)).toEqual(['lily', 'tom', 'sue']);
    for (const d of added.documents) expect(d.computedChunks).toBe(d.chunks);

    const listed = cliJson(['docs', 'list', '--store', store]);
    expect(listed.documents.map((d: { id: string }) => d.id)).toEqual(['lily', 'tom', 'sue']);
    for (const d of listed.documents) {
      expect(d.storedChunks).toBe(d.chunks);
      expect(d.bytes).toBeGreaterThan(0);
    }

    // A new process finds every chunk in the store; only BOS and the question are computed.
    const ask = ['generate', '--model', stories!, '--store', store, '--ask-docs', 'all', '--prompt', 'Then Lily and Tom', '--max-tokens', '8'];
    const first = cliJson(ask);
    const chunks: Chunk[] = first.chunks;
    expect(chunks.map((c) => c.document)).toEqual(['lily', 'tom', 'sue']);
    expect(chunks.every((c) => c.source === 'store' && c.cached)).toBe(true);
    const chunkTokens = chunks.reduce((n, c) => n + c.tokens, 0);
    expect(first.computedTokens).toBe(first.promptTokens.length - chunkTokens);
    expect(first.reusedTokens + first.recomputedTokens).toBe(chunkTokens);
    expect(first.droppedChunks).toBe(0);
    expect(first.warnings).toEqual([]);

    // One record with a byte flipped in the middle, another cut in half: cache misses, not errors.
    const lilyFile = join(store, 'chunks', `${chunks[0].id}.clkv`);
    const tomFile = join(store, 'chunks', `${chunks[1].id}.clkv`);
    const bytes = readFileSync(lilyFile);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(lilyFile, bytes);
    const tomSize = statSync(tomFile).size;
    truncateSync(tomFile, tomSize >> 1);
    const repaired = cliJson(ask);
    expect(repaired.tokens).toEqual(first.tokens);
    expect(repaired.text).toBe(first.text);
    expect(repaired.chunks.map((c: Chunk) => c.source)).toEqual(['computed', 'computed', 'store']);
    expect(statSync(tomFile).size).toBe(tomSize);

    const again = cliJson(ask);
    expect(again.chunks.every((c: Chunk) => c.source === 'store')).toBe(true);
    expect(again.tokens).toEqual(first.tokens);

    const stats = cliJson(['docs', 'stats', '--store', store]);
    expect(stats.documents).toBe(3);
    expect(stats.chunks).toBe(chunks.length);
    expect(stats.tokens).toBe(chunkTokens);
    expect(stats.tiers.store.chunks).toBe(chunks.length);

    const removed = cliJson(['docs', 'remove', '--store', store, 'tom']);
    expect(removed.removed).toEqual(['tom']);
    expect(existsSync(join(store, 'documents', 'tom.json'))).toBe(false);
    expect(existsSync(tomFile)).toBe(false);
    expect(existsSync(lilyFile)).toBe(true);
    expect(cliJson(['docs', 'list', '--store', store]).documents.map((d: { id: string }) => d.id)).toEqual(['lily', 'sue']);
    const unknownRemove = cli(['docs', 'remove', '--store', store, 'lily', 'tom']);
    expect(unknownRemove.code).toBe(1);
    expect(unknownRemove.stderr).toContain("there is no document 'tom'");
    expect(existsSync(join(store, 'documents', 'lily.json'))).toBe(true);

    // An id the store does not hold is the engine's 'unknown-document' error.
    const unknownAsk = cli(['generate', '--model', stories!, '--store', store, '--ask-docs', 'lily,tom', '--prompt', 'x', '--max-tokens', '1']);
    expect(unknownAsk.code).toBe(1);
    expect(unknownAsk.stderr).toContain("error: InvalidRequestError: there is no document 'tom'");
  });

  it('pack writes a .kvpack: CLKP magic, larger than its chunk records', { timeout: 300_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'chunklm-pack-'));
    const [lily] = writeDocs(dir);
    const out = join(dir, 'lily.kvpack');
    const info = cliJson(['pack', '--model', stories!, '--out', out, '--title', 'Lily', lily]);
    expect(info.id).toBe('lily');
    expect(info.title).toBe('Lily');
    const pack = readFileSync(out);
    expect([...pack.subarray(0, 4)]).toEqual([0x43, 0x4c, 0x4b, 0x50]);
    expect(pack.byteLength).toBe(info.packBytes);
    expect(info.bytes).toBeGreaterThan(0);
    expect(pack.byteLength).toBeGreaterThan(info.bytes);

    // docs import puts it in a fresh store with its chunks: the next answer computes no chunk.
    const store = join(dir, 'store');
    const imported = cliJson(['docs', 'import', '--model', stories!, '--store', store, out]);
    expect(imported.documents[0]).toMatchObject({ id: 'lily', title: 'Lily', currentModel: true });
    expect(imported.documents[0].storedChunks).toBe(imported.documents[0].chunks);
    const r = cliJson(['generate', '--model', stories!, '--store', store, '--ask-docs', 'lily', '--prompt', 'Lily', '--max-tokens', '2']);
    expect(r.chunks.every((c: Chunk) => c.source === 'store')).toBe(true);
    // docs pin needs no GPU.
    expect(cliJson(['docs', 'pin', '--store', store, 'lily']).documents[0].pinned).toBe(true);
    expect(cliJson(['docs', 'pin', '--store', store, '--off', 'lily']).documents[0].pinned).toBe(false);
    expect(cli(['docs', 'pin', '--store', store, 'nope']).code).toBe(1);
  });
});
