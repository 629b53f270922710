// The TTFT chart's axis (src/ui/chart-scale.ts): round maxima, ticks at round steps with no float
// noise, one unit per axis in the labels, and the source a bar is named after.
import { describe, expect, it } from 'vitest';
import { CHART_SOURCES, axisTickLabels, axisTicks, formatTtft, mainSource, niceMax } from '../../src/ui/chart-scale.ts';

describe('niceMax', () => {
  it.each([
    [0.3, 0.5],
    [1, 1],
    [7, 10],
    [101, 200],
    [420, 500],
    [900, 1000],
    [1000, 1000],
    [1001, 2000],
    [3800, 5000],
    [5001, 10_000],
    [12_000, 20_000],
  ])('niceMax(%d) = %d', (v, top) => expect(niceMax(v)).toBeCloseTo(top, 12));

  it('1 for nothing to show', () => {
    for (const v of [0, -5, Number.NaN]) expect(niceMax(v)).toBe(1);
  });
});

describe('axisTicks', () => {
  it('a 5 s axis: every second, never 1.25 s or 3.75 s', () => {
    expect(axisTicks(5000)).toEqual([0, 1000, 2000, 3000, 4000, 5000]);
  });

  it('1, 2, 5 × 10^k: steps of 0.2, 0.5, 1 × 10^k (5, 4, 5 intervals)', () => {
    expect(axisTicks(1000)).toEqual([0, 200, 400, 600, 800, 1000]);
    expect(axisTicks(2000)).toEqual([0, 500, 1000, 1500, 2000]);
    expect(axisTicks(200)).toEqual([0, 50, 100, 150, 200]);
    expect(axisTicks(10)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(axisTicks(20_000)).toEqual([0, 5000, 10_000, 15_000, 20_000]);
  });

  it('fractional axes carry no float noise (0.6, not 0.6000000000000001)', () => {
    expect(axisTicks(1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(axisTicks(0.5)).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5]);
  });

  it('every niceMax gives ticks that end at it, at one step', () => {
    for (let v = 0.37; v < 1e6; v *= 1.7) {
      const top = niceMax(v);
      const t = axisTicks(top);
      expect(t[0]).toBe(0);
      expect(t.at(-1)).toBeCloseTo(top, 9);
      expect(t.length === 5 || t.length === 6).toBe(true);
      const step = t[1];
      for (let i = 1; i < t.length; i++) expect(t[i] - t[i - 1]).toBeCloseTo(step, 9);
    }
  });

  it('another maximum: round steps up to it', () => {
    expect(axisTicks(3000)).toEqual([0, 1000, 2000, 3000]);
    expect(axisTicks(0)).toEqual([0]);
  });
});

describe('axisTickLabels', () => {
  it('seconds once the axis reaches 1 s, no trailing zeros, no "1.0 s"', () => {
    expect(axisTickLabels(axisTicks(5000))).toEqual(['0', '1 s', '2 s', '3 s', '4 s', '5 s']);
    expect(axisTickLabels(axisTicks(2000))).toEqual(['0', '0.5 s', '1 s', '1.5 s', '2 s']);
    expect(axisTickLabels(axisTicks(1000))).toEqual(['0', '0.2 s', '0.4 s', '0.6 s', '0.8 s', '1 s']);
  });

  it('milliseconds below 1 s, with decimals only where the step has them', () => {
    expect(axisTickLabels(axisTicks(500))).toEqual(['0', '100 ms', '200 ms', '300 ms', '400 ms', '500 ms']);
    expect(axisTickLabels([0, 250, 500])).toEqual(['0', '250 ms', '500 ms']);
    expect(axisTickLabels(axisTicks(1))).toEqual(['0', '0.2 ms', '0.4 ms', '0.6 ms', '0.8 ms', '1 ms']);
  });

  it('each label of an axis in one unit', () => {
    for (const top of [0.5, 2, 50, 200, 1000, 2000, 5000, 50_000]) {
      const units = new Set(axisTickLabels(axisTicks(top)).slice(1).map((l) => l.split(' ')[1]));
      expect(units.size).toBe(1);
    }
  });
});

describe('formatTtft', () => {
  it('ms below a second, one decimal below 10 s, whole seconds above', () => {
    expect(formatTtft(0)).toBe('0');
    expect(formatTtft(849.6)).toBe('850 ms');
    expect(formatTtft(3800)).toBe('3.8 s');
    expect(formatTtft(12_345)).toBe('12 s');
  });
});

describe('mainSource', () => {
  const rec = (computed: number, store: number, memory: number, gpu: number) => ({ sources: { computed, store, memory, gpu } });
  it('the source of most chunks', () => {
    expect(mainSource(rec(1, 0, 0, 3))).toBe('gpu');
    expect(mainSource(rec(0, 5, 2, 1))).toBe('store');
    expect(mainSource(rec(4, 1, 1, 1))).toBe('computed');
  });
  it('computed with no chunks, and the first in chart order on a tie', () => {
    expect(mainSource(rec(0, 0, 0, 0))).toBe('computed');
    expect(mainSource(rec(0, 2, 2, 0))).toBe('store');
    expect(mainSource(rec(2, 0, 0, 2))).toBe('computed');
    expect(CHART_SOURCES).toEqual(['computed', 'store', 'memory', 'gpu']);
  });
});
