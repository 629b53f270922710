// Types of scripts/build-extension.mjs, for the TypeScript files that import it (e2e).
/** Builds the Chrome extension into `outDir` (default dist-extension/, emptied first); resolves to the time it took in ms. */
export declare function buildExtension(outDir?: string, opts?: { logLevel?: 'info' | 'warn' | 'error' | 'silent' }): Promise<number>;
