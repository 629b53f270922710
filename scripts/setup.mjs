// Setup steps shared by `npm run dev`, `npm test` and the e2e tests. Only node: built-ins here,
// so the scripts work in a fresh clone before `npm ci` has run.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const sharedRoot = process.env.CHUNKLM_SHARED ?? resolve(projectRoot, '../shared');
export const demoModelName = 'stories260K.gguf';
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

function log(msg) {
  process.stdout.write(`[setup] ${msg}\n`);
}

/** Runs a command with inherited output; returns its exit status. */
export function run(cmd, args, opts = {}) {
  log(`$ ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: projectRoot, ...opts });
  if (r.error) {
    log(`cannot run ${cmd}: ${r.error.message}`);
    return 127;
  }
  return r.status ?? 1;
}

/**
 * Whether `dir`'s node_modules holds what its package-lock.json locks: npm writes
 * node_modules/.package-lock.json at the end of every install, listing what it installed, so a
 * missing file (no install finished) or a locked package it does not list (the lock changed since)
 * means an install is due.
 */
function installedAsLocked(dir) {
  const hidden = join(dir, 'node_modules', '.package-lock.json');
  if (!existsSync(hidden)) return false;
  try {
    const want = JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8')).packages ?? {};
    const have = JSON.parse(readFileSync(hidden, 'utf8')).packages ?? {};
    return Object.entries(want).every(([path, entry]) => path === '' || entry.optional || have[path]?.version === entry.version);
  } catch {
    return false;
  }
}

/**
 * Installs the npm dependencies from package-lock.json when they are not installed as locked, and
 * the test oracles of oracle/ (llama.cpp through node-llama-cpp's prebuilt CPU binary, ggml's
 * quantizers through koffi) with their install scripts off (nothing downloads or compiles) and
 * without the optional GPU builds.
 */
export function ensureNodeModules() {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  if (!installedAsLocked(projectRoot)) {
    log('node_modules is missing or out of date: installing the locked dependencies with npm ci');
    if (run(npm, ['ci', '--no-audit', '--no-fund']) !== 0) return false;
  }
  const oracle = join(projectRoot, 'oracle');
  if (!installedAsLocked(oracle)) {
    log('oracle/node_modules is missing or out of date: installing the test oracles (no install scripts, no GPU builds)');
    // `npm install` from the lock rather than `npm ci`: node-llama-cpp names optional builds for
    // platforms it did not publish at this version, which npm leaves out of the lock and `npm ci`
    // then reports as missing. The lock still fixes every version installed.
    if (run(npm, ['install', '--ignore-scripts', '--omit=optional', '--no-audit', '--no-fund'], { cwd: oracle }) !== 0) return false;
  }
  return true;
}

function hasVulkanLoader() {
  const paths = ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib/aarch64-linux-gnu/libvulkan.so.1', '/usr/lib64/libvulkan.so.1', '/usr/lib/libvulkan.so.1'];
  if (paths.some((p) => existsSync(p))) return true;
  const r = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('libvulkan.so.1');
}

/** What is missing for WebGPU without a GPU: Chromium (its SwiftShader) and the Vulkan loader. */
export function missingSystemPackages() {
  const missing = [];
  if (!existsSync(chromiumPath)) missing.push('chromium');
  if (process.platform === 'linux' && !hasVulkanLoader()) missing.push('libvulkan1');
  return missing;
}

/**
 * Makes sure Chromium and the Vulkan loader are installed (Debian/Ubuntu, as root), which the
 * e2e tests (SwiftShader WebGPU in Chromium) and the Node GPU tests (Dawn on SwiftShader) need.
 * Returns undefined when all is there, or a sentence saying what is missing and how to fix it.
 */
export function ensureSystemPackages() {
  let missing = missingSystemPackages();
  if (missing.length === 0) return undefined;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = existsSync('/usr/bin/apt-get');
  if (isRoot && hasApt) {
    log(`missing ${missing.join(', ')}: installing with apt-get`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    if (run('apt-get', ['update'], { env }) === 0) run('apt-get', ['install', '-y', 'chromium', 'libvulkan1'], { env });
    missing = missingSystemPackages();
    if (missing.length === 0) return undefined;
    return `apt-get could not install ${missing.join(', ')}; see its output above`;
  }
  const how = hasApt ? `run as root: apt-get install -y chromium libvulkan1` : 'install Chromium and the Vulkan loader with your package manager';
  const where = missing.includes('chromium') ? ` (or set CHROMIUM_PATH to a Chromium with WebGPU; looked for ${chromiumPath})` : '';
  return `missing ${missing.join(', ')}: ${how}${where}`;
}

/**
 * Copies ../shared/models/stories260K.gguf to public/models/ (git-ignored) so the demo serves
 * it at /models/stories260K.gguf. Returns the copy's path, or undefined when there is no model.
 */
export function prepareDemoModel() {
  const src = join(sharedRoot, 'models', demoModelName);
  const dest = join(projectRoot, 'public', 'models', demoModelName);
  if (!existsSync(src)) {
    if (existsSync(dest)) return dest;
    return undefined;
  }
  if (!existsSync(dest) || statSync(dest).size !== statSync(src).size || statSync(dest).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(src, dest);
    log(`copied ${src} to ${relative(projectRoot, dest)}`);
  }
  return dest;
}
