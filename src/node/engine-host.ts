// The one place that knows how the Node host builds an engine: a Dawn device (SwiftShader when
// there is no GPU driver) and the WGSL files read from shaders/.
import { Engine } from '../engine/engine.ts';
import { acquireNodeDevice } from './gpu.ts';
import { fsShaderSources } from './shaders-fs.ts';

export interface NodeEngine {
  engine: Engine;
  adapterInfo: string;
  isSwiftShader: boolean;
}

export async function openNodeEngine(): Promise<NodeEngine> {
  const { device, adapterInfo, features, isSwiftShader } = await acquireNodeDevice();
  return { engine: new Engine(device, { shaders: fsShaderSources(), features, adapterInfo }), adapterInfo, isSwiftShader };
}
