// The demo's saved settings (src/ui/settings-store.ts): defaults, each bad field falling back alone,
// good values kept, unparsable or non-object JSON, and a save that storage refuses.
import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, type DemoSettings } from '../../src/ui/events.ts';
import { SETTINGS_STORAGE_KEY, loadSettings, saveSettings } from '../../src/ui/settings-store.ts';

/** A Storage holding `value` under the settings key. */
function storageWith(value: string | null): Pick<Storage, 'getItem'> {
  return { getItem: (key) => (key === SETTINGS_STORAGE_KEY ? value : null) };
}

const GOOD: DemoSettings = {
  method: 'cacheblend',
  k: 0,
  ratio: 1,
  chunkTokens: 4096,
  kvDtype: 'f32',
  maxTokens: 1,
  temperature: 5,
  topK: 0,
  topP: 1,
  seed: 2 ** 32 - 1,
};

describe('loadSettings', () => {
  it('defaults with nothing saved, and without storage', () => {
    expect(loadSettings(storageWith(null))).toEqual(DEFAULT_SETTINGS);
    expect(loadSettings(undefined)).toEqual(DEFAULT_SETTINGS);
  });

  it('keeps good values, the edges of each range included', () => {
    expect(loadSettings(storageWith(JSON.stringify(GOOD)))).toEqual(GOOD);
  });

  it('defaults for unparsable JSON and for JSON that is not an object', () => {
    for (const raw of ['{not json', 'null', '3', '"attnlink"', '[1,2]']) expect(loadSettings(storageWith(raw))).toEqual(DEFAULT_SETTINGS);
  });

  const bad: [keyof DemoSettings, unknown][] = [
    ['method', 'magic'],
    ['method', 3],
    ['k', -1],
    ['k', 513],
    ['k', 1.5],
    ['ratio', 1.01],
    ['ratio', -0.1],
    ['ratio', '0.5'],
    ['chunkTokens', 15],
    ['chunkTokens', 4097],
    ['kvDtype', 'f64'],
    ['maxTokens', 0],
    ['maxTokens', 100.5],
    ['temperature', 5.5],
    ['temperature', -1],
    ['topK', 1001],
    ['topP', 0],
    ['topP', 1.5],
    ['seed', -1],
    ['seed', 2 ** 32],
    ['seed', 1.5],
    ['seed', '7'],
  ];
  it.each(bad)('a bad %s (%j) falls back to the default, the others kept', (key, value) => {
    const s = loadSettings(storageWith(JSON.stringify({ ...GOOD, [key]: value })));
    const fallback = key === 'seed' ? undefined : DEFAULT_SETTINGS[key];
    expect(s[key]).toEqual(fallback);
    expect({ ...s, [key]: GOOD[key] }).toEqual(GOOD);
  });

  it('null numbers are not zero', () => {
    expect(loadSettings(storageWith('{"k":null,"temperature":null}'))).toEqual(DEFAULT_SETTINGS);
  });
});

describe('saveSettings', () => {
  it('writes what loadSettings reads back', () => {
    const store = new Map<string, string>();
    saveSettings(GOOD, { setItem: (k, v) => void store.set(k, v) });
    expect([...store.keys()]).toEqual([SETTINGS_STORAGE_KEY]);
    expect(loadSettings({ getItem: (k) => store.get(k) ?? null })).toEqual(GOOD);
  });

  it('a storage that refuses (quota, private mode) does not throw', () => {
    const refusing = {
      setItem: () => {
        throw new DOMException('full', 'QuotaExceededError');
      },
    };
    expect(() => saveSettings(GOOD, refusing)).not.toThrow();
    expect(() => saveSettings(GOOD, undefined)).not.toThrow();
  });
});
