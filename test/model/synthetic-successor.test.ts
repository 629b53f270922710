// The synthetic models' successorLead option: greedy decoding with clear margins (the runtime
// comparisons against llama.cpp rely on it), refused where it cannot work.
import { describe, expect, it } from 'vitest';
import { GGMLType } from '../../src/gguf/quant.ts';
import { MemorySource } from '../../src/gguf/source.ts';
import { CpuModel } from '../../src/model/cpu-reference.ts';
import { makeSyntheticModel, type SyntheticSpec } from '../../src/model/synthetic.ts';

const spec = (extra: Partial<SyntheticSpec> = {}): SyntheticSpec => ({
  architecture: 'llama',
  nLayers: 1,
  dim: 128,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 32,
  ffnDim: 256,
  vocabSize: 320,
  contextLength: 128,
  weightType: GGMLType.F32,
  seed: 5,
  ...extra,
});

/** The top-1 margin at each of `n` greedy steps, in standard deviations of that step's logits. */
async function greedyMargins(bytes: Uint8Array, n: number): Promise<number[]> {
  const cpu = await CpuModel.load(new MemorySource(bytes));
  const margins: number[] = [];
  let logits = cpu.forward([1, 280, 281, 282]);
  for (let i = 0; i < n; i++) {
    const sorted = [...logits].sort((a, b) => b - a);
    const mean = sorted.reduce((s, v) => s + v, 0) / sorted.length;
    const std = Math.sqrt(sorted.reduce((s, v) => s + (v - mean) ** 2, 0) / sorted.length);
    margins.push((sorted[0] - sorted[1]) / std);
    logits = cpu.forward([logits.indexOf(sorted[0])]);
  }
  return margins;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe('synthetic models: successorLead', () => {
  it("widens the median greedy margin to over twice a random head's", async () => {
    const plain = await greedyMargins(makeSyntheticModel(spec()), 16);
    const led = await greedyMargins(makeSyntheticModel(spec({ successorLead: 4 })), 16);
    expect(median(led)).toBeGreaterThan(2 * median(plain));
    console.log(`median greedy margin: ${median(plain).toFixed(2)} std without successorLead, ${median(led).toFixed(2)} with 4`);
    expect(median(led)).toBeGreaterThan(0.5);
  });

  it('is refused with a tied head or a lead that is not positive', () => {
    expect(() => makeSyntheticModel(spec({ successorLead: 4, tiedOutput: true }))).toThrow(/successorLead needs an untied output head/);
    expect(() => makeSyntheticModel(spec({ successorLead: 0 }))).toThrow(/positive lead/);
  });
});
