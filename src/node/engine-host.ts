// The one place that knows how the Node host builds an engine: a Dawn device (SwiftShader when
// there is no GPU driver) and the WGSL files read from shaders/.
import { totalmem } from 'node:os';
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
  // Dawn does not report a GPU's memory either: the system's is the most a model can plausibly take
  // (all of it with SwiftShader, which runs on the CPU; at most it with a discrete GPU).
  const deviceMemory = rest.deviceMemory ?? { bytes: totalmem(), source: `os.totalmem(), the system memory` };
  const engine = new Engine(device, { ...rest, deviceMemory, shaders: fsShaderSources(), features, adapterInfo, ...(store ? { store: new FolderStore(store) } : {}) });
  return { engine, adapterInfo, isSwiftShader };
}
