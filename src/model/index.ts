// Public surface of the model layer: config from GGUF metadata, the tensor-name table, the CPU
// reference forward pass and its chunk linking, and synthetic models.
export { configFromGGUF, describeConfig, SUPPORTED_ARCHITECTURES, type Architecture, type Family, type ModelConfig } from './config.ts';
export { resolveTensors, type ResolvedTensors } from './tensors.ts';
export { CpuModel, cpuGenerate, greedy, ropeTable, rotateHead } from './cpu-reference.ts';
export { attnlinkIndices, cpuBlendDeviation, cpuComputeChunk, cpuPrefillLinked, type CpuChunkKV, type CpuLinkPlan } from './cpu-link.ts';
export { makeSyntheticModel, SYNTHETIC_PRESETS, type SyntheticPreset, type SyntheticSpec } from './synthetic.ts';
