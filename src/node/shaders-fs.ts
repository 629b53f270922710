// The Node build's shader registry: reads shaders/*.wgsl from the package, unchanged.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ShaderSources } from '../gpu/shaders.ts';

export const shadersDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../shaders');

let cached: ShaderSources | undefined;

export function fsShaderSources(): ShaderSources {
  if (!cached) {
    const out: Record<string, string> = {};
    for (const f of readdirSync(shadersDir)) {
      if (f.endsWith('.wgsl')) out[f.slice(0, -5)] = readFileSync(join(shadersDir, f), 'utf8');
    }
    cached = out;
  }
  return cached;
}
