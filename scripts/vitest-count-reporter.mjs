// A vitest reporter that only counts, for scripts/test-all.mjs: it writes
// { passed, failed, skipped: string[], failures: string[] } to $CHUNKLM_TEST_COUNTS.
// Vitest's own JSON report shows a test whose suite's beforeAll failed as merely "skipped" and
// a file that failed to import as no tests at all; both are failures here.
import { writeFileSync } from 'node:fs';

/** The first line of the first error of a test's enclosing suites or module, if any failed outside tests. */
function ancestorError(test) {
  for (let node = test.parent; node; node = node.type === 'module' ? undefined : node.parent) {
    const [err] = node.errors();
    if (err) return firstLine(err.message);
  }
  return undefined;
}

function firstLine(text) {
  return (
    String(text ?? '')
      .split('\n')
      .find((l) => l.trim().length > 0)
      ?.trim() ?? ''
  );
}

export default class CountReporter {
  onTestRunEnd(testModules, unhandledErrors, reason) {
    const out = { passed: 0, failed: 0, skipped: [], failures: [], reason };
    for (const mod of testModules) {
      const file = mod.relativeModuleId;
      let failedHere = 0;
      for (const test of mod.children.allTests()) {
        const name = `${file} › ${test.fullName.replaceAll(' > ', ' › ')}`;
        const result = test.result();
        if (result.state === 'passed') {
          out.passed++;
        } else if (result.state === 'failed') {
          failedHere++;
          out.failures.push(`${name}: ${firstLine(result.errors[0]?.message)}`);
        } else if (result.state === 'skipped') {
          const hookError = test.options.mode === 'run' ? ancestorError(test) : undefined;
          if (hookError !== undefined) {
            failedHere++;
            out.failures.push(`${name}: did not run, its suite failed: ${hookError}`);
          } else {
            out.skipped.push(result.note ? `${name} (${result.note})` : name);
          }
        } else {
          failedHere++;
          out.failures.push(`${name}: did not finish`);
        }
      }
      // A file that failed without any failing test (an import error, a failing hook of an empty suite).
      const fileError = mod.errors()[0] ?? [...mod.children.allSuites()].flatMap((s) => s.errors())[0];
      if (failedHere === 0 && (fileError || mod.state() === 'failed')) {
        failedHere = 1;
        out.failures.push(`${file}: failed outside any test: ${firstLine(fileError?.message ?? 'see the output above')}`);
      }
      out.failed += failedHere;
    }
    for (const err of unhandledErrors) {
      out.failed++;
      out.failures.push(`unhandled error: ${firstLine(err.message)}`);
    }
    const path = process.env.CHUNKLM_TEST_COUNTS;
    if (path) writeFileSync(path, JSON.stringify(out, null, 2));
  }
}
