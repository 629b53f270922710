// The one place that knows how the Node host builds an engine: a Dawn device (SwiftShader when
// there is no GPU driver) and the WGSL files read from shaders/.
import { Engine, type EngineOptions } from '../engine/engine.ts';
import { FolderStore } from './folder-store.ts';
import { acquireNodeDevice } from './gpu.ts';
import { fsShaderSources } from './shaders-fs.ts';

export interface NodeEngine {
  engine: Engine;
  adapterInfo: string;
  isSwiftShader: boolean;
}

/** `store`: a folder that keeps documents and chunk KV between runs (none: they live in memory). */
export async function openNodeEngine(opts: { store?: string } & Omit<EngineOptions, 'shaders' | 'features' | 'adapterInfo' | 'store'> = {}): Promise<NodeEngine> {
  const { store, ...rest } = opts;
  const { device, adapterInfo, features, isSwiftShader } = await acquireNodeDevice();
  const engine = new Engine(device, { ...rest, shaders: fsShaderSources(), features, adapterInfo, ...(store ? { store: new FolderStore(store) } : {}) });
  return { engine, adapterInfo, isSwiftShader };
}
