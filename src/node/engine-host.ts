// The one place that knows how the Node host builds an engine: a Dawn device (SwiftShader when
// there is no GPU driver) and the WGSL files read from shaders/.
import { Engine } from '../engine/engine.ts';
import { acquireNodeDevice } from './gpu.ts';
import { fsShaderSources } from './shaders-fs.ts';
import { FolderChunkStore } from './chunk-store-fs.ts';

export interface NodeEngine {
  engine: Engine;
  adapterInfo: string;
  isSwiftShader: boolean;
}

export async function openNodeEngine(opts: { cacheDir?: string } = {}): Promise<NodeEngine> {
  const { device, adapterInfo, features, isSwiftShader } = await acquireNodeDevice();
  const chunkStore = opts.cacheDir ? new FolderChunkStore(opts.cacheDir) : undefined;
  return { engine: new Engine(device, { shaders: fsShaderSources(), features, adapterInfo, chunkStore }), adapterInfo, isSwiftShader };
}
