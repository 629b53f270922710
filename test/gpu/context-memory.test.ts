import { describe, expect, it } from 'vitest';
import { testContext } from '../helpers/gpu.ts';

const STORAGE = 0x80 | 0x8;

describe('GpuContext memory accounting', () => {
  it('counts live bytes (padded to 16) and the peak; destroy gives bytes back once', async () => {
    const ctx = await testContext('plain');
    const base = ctx.memory().liveBytes;
    ctx.resetPeak();
    const a = ctx.createBuffer('a', 1000, STORAGE); // padded to 1008
    const b = ctx.createBuffer('b', 4, STORAGE); // padded to 16
    expect(ctx.memory()).toEqual({ liveBytes: base + 1024, peakBytes: base + 1024 });
    a.destroy();
    a.destroy(); // twice: counted once
    expect(ctx.memory()).toEqual({ liveBytes: base + 16, peakBytes: base + 1024 });
    ctx.resetPeak();
    expect(ctx.memory().peakBytes).toBe(base + 16);
    b.destroy();
    expect(ctx.memory().liveBytes).toBe(base);
  });
});
