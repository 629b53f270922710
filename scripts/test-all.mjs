// `npm test`: every check the project has, in one command that also installs what is missing.
//   1. dependencies: `npm ci` when node_modules is absent; Chromium and the Vulkan loader
//      through apt-get when missing (as root), which WebGPU on SwiftShader needs;
//   2. the type checks (`tsc --noEmit` of the project and of the Chrome extension example), one
//      test each;
//   3. the unit and GPU tests (vitest, test/**/*.test.ts);
//   4. the browser tests (vitest driving Chromium through playwright-core, e2e/*.e2e.ts).
// Counts come from a small vitest reporter (scripts/vitest-count-reporter.mjs) that also counts
// tests kept from running by a failing hook, and files that fail to import, as failures.
// Skipped tests are listed, never counted as passed.
// The last line is always `tests: N passed, N failed`; the exit status is 1 if anything failed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureNodeModules, ensureSystemPackages, projectRoot } from './setup.mjs';

const resultsDir = join(projectRoot, '.cache', 'test-results');
const bin = (name) => join(projectRoot, 'node_modules', '.bin', name);

/** One line per stage for the summary, and the totals. */
const stages = [];
const skipped = [];
const failures = [];
let passed = 0;
let failed = 0;

function banner(title) {
  process.stdout.write(`\n━━ ${title} ${'━'.repeat(Math.max(0, 72 - title.length))}\n`);
}

function record(name, counts, note = '') {
  passed += counts.passed;
  failed += counts.failed;
  const skip = counts.skipped ? `, ${counts.skipped} skipped` : '';
  stages.push(`${name}: ${counts.passed} passed, ${counts.failed} failed${skip}${note ? ` (${note})` : ''}`);
}

function finish() {
  banner('summary');
  for (const line of stages) process.stdout.write(`  ${line}\n`);
  if (failures.length > 0) {
    process.stdout.write(`\nfailed:\n`);
    for (const f of failures) process.stdout.write(`  - ${f}\n`);
  }
  if (skipped.length > 0) {
    process.stdout.write(`\nskipped: ${skipped.length} tests (not counted as passed)\n`);
    for (const s of skipped) process.stdout.write(`  - ${s}\n`);
  }
  process.stdout.write(`\ntests: ${passed} passed, ${failed} failed\n`);
  process.exit(failed > 0 ? 1 : 0);
}

/**
 * Runs vitest with its readable reporter, a JSON report (kept in .cache/test-results/ for
 * inspection) and scripts/vitest-count-reporter.mjs, whose counts are the ones used.
 */
function vitest(name, args) {
  const counts = join(resultsDir, `${name}-counts.json`);
  rmSync(counts, { force: true });
  const r = spawnSync(
    bin('vitest'),
    [
      'run',
      ...args,
      '--reporter=default',
      '--reporter=json',
      `--outputFile.json=${join(resultsDir, `${name}.json`)}`,
      `--reporter=${join(projectRoot, 'scripts', 'vitest-count-reporter.mjs')}`,
    ],
    {
      stdio: 'inherit',
      cwd: projectRoot,
      env: { ...process.env, CHUNKLM_TEST_COUNTS: counts, FORCE_COLOR: process.env.FORCE_COLOR ?? '1' },
    },
  );
  if (!existsSync(counts)) {
    return { passed: 0, failed: 1, skipped: 0, note: `vitest ended without a report (exit status ${r.status ?? r.signal})` };
  }
  const report = JSON.parse(readFileSync(counts, 'utf8'));
  skipped.push(...report.skipped);
  failures.push(...report.failures);
  const result = { passed: report.passed, failed: report.failed, skipped: report.skipped.length, note: '' };
  if (r.status !== 0 && result.failed === 0) {
    result.failed = 1;
    result.note = `vitest exited with status ${r.status ?? r.signal}`;
  }
  return result;
}

mkdirSync(resultsDir, { recursive: true });

banner('dependencies');
if (!ensureNodeModules()) {
  record('dependencies', { passed: 0, failed: 1 }, 'npm ci failed');
  failures.push('dependencies: npm ci failed (see its output above)');
  finish();
}
const systemProblem = ensureSystemPackages();
process.stdout.write(systemProblem ? `${systemProblem}\n` : 'npm packages, Chromium and the Vulkan loader are installed\n');

banner('type check (tsc --noEmit)');
const typeChecks = { typecheck: { passed: 0, failed: 0 } };
for (const project of ['.', 'examples/chrome-extension']) {
  const tsc = spawnSync(bin('tsc'), ['--noEmit', '-p', join(projectRoot, project)], { stdio: 'inherit', cwd: projectRoot });
  if (tsc.status === 0) {
    typeChecks.typecheck.passed++;
    process.stdout.write(`${project}: no type errors\n`);
  } else {
    typeChecks.typecheck.failed++;
    failures.push(`typecheck: tsc --noEmit -p ${project} reported errors (see above)`);
  }
}
record('typecheck', typeChecks.typecheck);

banner('unit and GPU tests (vitest)');
const unit = vitest('unit', []);
record('unit', unit, unit.note);

banner('browser tests (Chromium, WebGPU on SwiftShader)');
if (systemProblem) {
  // Never a silent pass: without a browser the suite counts as failed.
  process.stdout.write(`cannot run the browser tests: ${systemProblem}\n`);
  record('e2e', { passed: 0, failed: 1 });
  failures.push(`e2e: not run: ${systemProblem}`);
} else {
  const e2e = vitest('e2e', ['--config', join(projectRoot, 'e2e', 'vitest.config.ts')]);
  record('e2e', e2e, e2e.note);
}

finish();
