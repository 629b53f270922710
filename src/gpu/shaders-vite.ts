// The browser build's shader registry: Vite inlines every shaders/*.wgsl file as text.
import { shaderSourcesFromGlob, type ShaderSources } from './shaders.ts';

export const viteShaderSources: ShaderSources = shaderSourcesFromGlob(
  import.meta.glob('../../shaders/*.wgsl', { query: '?raw', import: 'default', eager: true }),
);
