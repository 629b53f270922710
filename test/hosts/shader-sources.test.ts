// The committed shader module (src/gpu/shader-sources.generated.ts, what the Worker and the
// package bundle) must say exactly what shaders/*.wgsl say: a kernel edited without
// regenerating would run in Node tests (which read shaders/ from disk) and not in the browser.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generatedPath, renderShaderModule } from '../../scripts/gen-shaders.mjs';
import { shaderSources } from '../../src/gpu/shader-sources.generated.ts';
import { fsShaderSources } from '../../src/node/shaders-fs.ts';

describe('src/gpu/shader-sources.generated.ts', () => {
  it('is up to date with shaders/ (else run `npm run gen:shaders` and commit the result)', () => {
    const committed = readFileSync(generatedPath, 'utf8');
    expect(committed === renderShaderModule(), 'src/gpu/shader-sources.generated.ts is out of date with shaders/: run `npm run gen:shaders` and commit it').toBe(true);
  });

  it('holds the same kernels, byte for byte, as the Node host reads from disk', () => {
    expect(shaderSources).toEqual(fsShaderSources());
    expect(Object.keys(shaderSources).length).toBeGreaterThan(10);
  });
});
