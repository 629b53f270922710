// Types of scripts/build.mjs, for the TypeScript files that import it (e2e setup).
/** Builds the demo into `outDir` (default dist/, emptied first); resolves to the time it took in ms. */
export declare function buildDemo(outDir?: string, opts?: { logLevel?: 'info' | 'warn' | 'error' | 'silent' }): Promise<number>;
