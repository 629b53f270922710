// Shader registry: WGSL sources by file name (without `.wgsl`), with a tiny placeholder step
// (`{{NAME}}` replaced by a value) for the few variants `override` constants cannot express,
// such as `enable subgroups;` or the element type of a buffer.
import { GPUError } from '../errors.ts';

/** WGSL text of every file in shaders/, keyed by base name (e.g. 'matvec'). */
export type ShaderSources = Readonly<Record<string, string>>;

export type ShaderDefines = Readonly<Record<string, string | number>>;

const placeholder = /\{\{([A-Z0-9_]+)\}\}/g;

export function expandShader(sources: ShaderSources, name: string, defines: ShaderDefines = {}): string {
  const text = sources[name];
  if (text === undefined) {
    throw new GPUError('missing-shader', `shader '${name}.wgsl' is not in the shader registry (have: ${Object.keys(sources).join(', ')})`);
  }
  return text.replace(placeholder, (_, key: string) => {
    const v = defines[key];
    if (v === undefined) throw new GPUError('missing-shader-define', `shader '${name}.wgsl' needs the define {{${key}}}`);
    return String(v);
  });
}
