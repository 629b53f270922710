// The demo's settings in localStorage ('chunklm.settings'), read field by field so that a bad or
// old entry falls back to the default. No Lit and no DOM: the storage is a parameter, for tests.
import { LINK_METHODS, type LinkMethod } from '../api.ts';
import { DEFAULT_SETTINGS, type DemoSettings } from './events.ts';

export const SETTINGS_STORAGE_KEY = 'chunklm.settings';

/** The saved settings; each missing, mistyped or out-of-range field is the default's. */
export function loadSettings(storage: Pick<Storage, 'getItem'> | undefined = globalThis.localStorage): DemoSettings {
  let saved: Partial<Record<keyof DemoSettings, unknown>> = {};
  try {
    const parsed: unknown = JSON.parse(storage?.getItem(SETTINGS_STORAGE_KEY) ?? '{}');
    // JSON that is not an object ("null", "3", "[]") is no settings at all.
    saved = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed : {};
  } catch {
    saved = {};
  }
  const num = (v: unknown, ok: (n: number) => boolean, d: number): number => (typeof v === 'number' && ok(v) ? v : d);
  const int = (lo: number, hi: number) => (n: number) => Number.isInteger(n) && n >= lo && n <= hi;
  const d = DEFAULT_SETTINGS;
  return {
    method: LINK_METHODS.includes(saved.method as LinkMethod) ? (saved.method as LinkMethod) : d.method,
    k: num(saved.k, int(0, 512), d.k),
    ratio: num(saved.ratio, (n) => n >= 0 && n <= 1, d.ratio),
    chunkTokens: num(saved.chunkTokens, int(16, 4096), d.chunkTokens),
    kvDtype: saved.kvDtype === 'f32' ? 'f32' : 'f16',
    maxTokens: num(saved.maxTokens, int(1, 4096), d.maxTokens),
    temperature: num(saved.temperature, (n) => n >= 0 && n <= 5, d.temperature),
    topK: num(saved.topK, int(0, 1000), d.topK),
    topP: num(saved.topP, (n) => n > 0 && n <= 1, d.topP),
    seed: typeof saved.seed === 'number' && int(0, 2 ** 32 - 1)(saved.seed) ? saved.seed : undefined,
  };
}

/** Keeps the settings for the next visit; where storage refuses (private mode, full), they last for this one. */
export function saveSettings(s: DemoSettings, storage: Pick<Storage, 'setItem'> | undefined = globalThis.localStorage): void {
  try {
    storage?.setItem(SETTINGS_STORAGE_KEY, JSON.stringify(s));
  } catch {
    // The settings stay in memory.
  }
}
