// Types of scripts/setup.mjs, for the TypeScript files that import it (e2e setup).
export declare const projectRoot: string;
export declare const sharedRoot: string;
export declare const demoModelName: string;
export declare const chromiumPath: string;
export declare function run(cmd: string, args: string[], opts?: import('node:child_process').SpawnSyncOptions): number;
export declare function ensureNodeModules(): boolean;
export declare function missingSystemPackages(): string[];
export declare function ensureSystemPackages(): string | undefined;
export declare function prepareDemoModel(): string | undefined;
