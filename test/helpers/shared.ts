// Access to the data beside the project root (../shared): real weights and tokenizer vectors.
// Tests that need it call `sharedFile` and skip with a clear reason when it is absent.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const sharedRoot = process.env.CHUNKLM_SHARED ?? resolve(projectRoot, '../shared');

/** Absolute path of a file under ../shared, or undefined when it is not there. */
export function sharedFile(rel: string): string | undefined {
  const p = resolve(sharedRoot, rel);
  return existsSync(p) ? p : undefined;
}

/** Reason string for `describe.skipIf` when shared data is missing. */
export function missingShared(rel: string): string {
  return `needs ${resolve(sharedRoot, rel)} (the shared test data beside the project root); it is absent, so this suite is skipped`;
}
