// Types of scripts/build-lib.mjs, for the TypeScript files that import it (the package test).
export declare const libDir: string;
export declare function buildLib(opts?: { generate?: boolean }): number;
