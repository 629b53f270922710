// The forward program of each family of architectures (config.ts says which family runs which).
import type { Family } from '../config.ts';
import { gemma3Family } from './gemma3.ts';
import { llamaFamily } from './llama.ts';
import { phi3Family } from './phi3.ts';
import type { FamilyProgram } from './types.ts';

export const FAMILIES: Record<Family, FamilyProgram> = {
  llama: llamaFamily,
  gemma3: gemma3Family,
  phi3: phi3Family,
};

export type { CpuWeights, FamilyProgram, GpuWeights, LoadedWeights } from './types.ts';
