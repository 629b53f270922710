// Types of scripts/gen-shaders.mjs, for the TypeScript files that import it (its test).
export declare const shadersDir: string;
export declare const generatedPath: string;
export declare function renderShaderModule(dir?: string): string;
/** Rewrites the module when it differs from shaders/; returns whether it wrote. */
export declare function writeShaderModule(): boolean;
