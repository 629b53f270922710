// The built demo as files (.cache/e2e-dist/, built by the global setup like `npm run build`):
// relative URLs only, so it works at any path, and the Worker chunk carries every WGSL kernel.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../scripts/setup.mjs';

const dist = join(projectRoot, '.cache', 'e2e-dist');
const read = (rel: string) => readFileSync(join(dist, rel), 'utf8');
const scripts = readdirSync(join(dist, 'assets')).filter((f) => /\.m?js$/.test(f)).map((f) => `assets/${f}`);

/** Quoted strings that start with '/' and a letter and are not URLs: a Cache Storage key, an Emscripten home folder. */
const NOT_URLS = new Set(['/chunklm/indexeddb/', '/home/web_user']);

describe('the built demo', () => {
  it('index.html refers to everything by relative URLs', () => {
    const refs = [...read('index.html').matchAll(/\b(?:src|href)="([^"]*)"/g)].map((m) => m[1]);
    expect(refs.length).toBeGreaterThan(2);
    expect(refs.filter((r) => r.startsWith('/') && !r.startsWith('//'))).toEqual([]);
    expect(refs).toContain('./registerSW.js');
  });

  it('no script names a root-relative path', () => {
    for (const file of [...scripts, 'sw.js', 'registerSW.js']) {
      // A whole string literal (or a template literal's head) that is a path with a folder or an
      // extension: '/x/y', '/x.js', `/x/${...}` (not '/g', nor '/Abb' in pdf.js's packed data).
      const paths = [...read(file).matchAll(/(["'`])(\/[A-Za-z][\w.-]*[./][\w./-]*)(?:\1|\$\{)/g)].map((m) => m[2]);
      expect(paths.filter((p) => ![...NOT_URLS].some((n) => p.startsWith(n))), file).toEqual([]);
    }
  });

  it('the Worker chunk holds every WGSL kernel', () => {
    const worker = scripts.filter((f) => /^assets\/worker-[\w-]+\.js$/.test(f));
    expect(worker).toHaveLength(1);
    const code = read(worker[0]);
    const shaders = readdirSync(join(projectRoot, 'shaders')).filter((f) => f.endsWith('.wgsl'));
    expect(shaders.length).toBeGreaterThan(0);
    for (const name of shaders) {
      const wgsl = readFileSync(join(projectRoot, 'shaders', name), 'utf8');
      // Entry points and helpers by name: the inlined text is escaped, so compare identifiers.
      const fns = [...wgsl.matchAll(/\bfn\s+(\w+)\s*\(/g)].map((m) => m[1]);
      expect(fns.length, name).toBeGreaterThan(0);
      for (const fn of fns) expect(code.includes(`fn ${fn}(`), `${name}: fn ${fn}`).toBe(true);
    }
  });

  it('has a web app manifest with relative start_url and scope, and no model in the service worker', () => {
    const manifest = JSON.parse(read('manifest.webmanifest')) as { name: string; start_url: string; scope: string; icons: { src: string }[] };
    expect(manifest).toMatchObject({ name: 'chunklm', start_url: './', scope: './' });
    expect(manifest.icons.map((i) => i.src)).toEqual(['icon.svg']);
    expect(read('sw.js')).not.toMatch(/\.(gguf|kvpack)"/);
  });
});
