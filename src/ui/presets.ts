// The models the model panel offers with one click: small instruction-tuned GGUFs on the Hugging
// Face Hub that fit a browser's WebGPU limits, and the tiny demo model served next to the page.
// Hub `resolve/main` links answer browsers with CORS and byte ranges, so the Worker can check a
// model's header before it downloads the weights. Repository and file names were checked against
// public references; sizes are approximate (the Hub can re-upload a file), for the labels only.

export interface ModelPreset {
  /** Stable id, letters, digits and dashes only (a CSS selector as it is): the panel's radio is `#model-preset-<id>`. */
  id: string;
  name: string;
  /** One line on what the model is good for. */
  description: string;
  /** A `resolve/main` link (or a URL relative to the page, for the local demo model). */
  url: string;
  /** Approximate download size, for the label. */
  sizeBytes: number;
  /** SPDX id or the license's name, when known. */
  license?: string;
}

/** Hub models, smallest first within the recommended order; the first is the default. */
export const MODEL_PRESETS: readonly ModelPreset[] = [
  {
    id: 'qwen25-05b-instruct-q4km',
    name: 'Qwen2.5 0.5B Instruct',
    description: 'Small multilingual chat model: the best balance of size and answers here.',
    url: 'https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf',
    sizeBytes: 491_000_000,
    license: 'Apache-2.0',
  },
  {
    id: 'smollm2-360m-instruct-q8',
    name: 'SmolLM2 360M Instruct',
    description: 'The smallest chat model in the list (English), quick on modest GPUs.',
    url: 'https://huggingface.co/HuggingFaceTB/SmolLM2-360M-Instruct-GGUF/resolve/main/smollm2-360m-instruct-q8_0.gguf',
    sizeBytes: 386_000_000,
    license: 'Apache-2.0',
  },
  {
    id: 'qwen3-06b-q4km',
    name: 'Qwen3 0.6B',
    description: 'Newer Qwen with a thinking mode; slower answers, as it reasons first.',
    url: 'https://huggingface.co/unsloth/Qwen3-0.6B-GGUF/resolve/main/Qwen3-0.6B-Q4_K_M.gguf',
    sizeBytes: 397_000_000,
    license: 'Apache-2.0',
  },
  {
    id: 'llama32-1b-instruct-q4km',
    name: 'Llama 3.2 1B Instruct',
    description: "Meta's 1B chat model: better answers, twice the download and GPU memory.",
    url: 'https://huggingface.co/bartowski/Llama-3.2-1B-Instruct-GGUF/resolve/main/Llama-3.2-1B-Instruct-Q4_K_M.gguf',
    sizeBytes: 808_000_000,
    license: 'Llama 3.2 Community License',
  },
];

/** The Hub model chosen when the local demo model is not served with the page. */
export const DEFAULT_HUB_PRESET: ModelPreset = MODEL_PRESETS[0];

/**
 * The 260K-parameter story model the dev server and the built app serve from public/models. Its URL
 * is relative (no leading slash) because the page may be hosted under a sub-path.
 */
export const LOCAL_DEMO_MODEL: ModelPreset = {
  id: 'stories260k',
  name: 'stories260K (tiny demo model)',
  description: 'Loads in a second and writes short children’s stories; it does not follow instructions.',
  url: 'models/stories260K.gguf',
  sizeBytes: 1_185_376,
};

/** "GGUF" as the first four bytes of a file. */
const GGUF_MAGIC = [0x47, 0x47, 0x55, 0x46];

/**
 * Whether the page serves the local demo model: a HEAD (or, where HEAD is refused, a one-byte range)
 * that answers OK, then the first four bytes, which must be "GGUF" (a single-page-app fallback
 * answers index.html with 200 for any path). Reads at most the first chunk of the body, never the file.
 */
export async function localDemoAvailable(fetchFn: typeof fetch = globalThis.fetch): Promise<boolean> {
  const url = LOCAL_DEMO_MODEL.url;
  try {
    let head: Response | undefined;
    try {
      head = await fetchFn(url, { method: 'HEAD', cache: 'no-store' });
    } catch {
      head = undefined; // some hosts drop HEAD; the range request below decides
    }
    if (head && !head.ok && head.status !== 405 && head.status !== 501) return false;
    if (head?.ok && /text\/html/i.test(head.headers.get('content-type') ?? '')) return false;
    const res = await fetchFn(url, { headers: { Range: 'bytes=0-3' }, cache: 'no-store' });
    if (!res.ok) return false;
    const magic = await firstBytes(res, GGUF_MAGIC.length);
    return magic.length === GGUF_MAGIC.length && GGUF_MAGIC.every((b, i) => magic[i] === b);
  } catch {
    return false;
  }
}

/** The first `n` bytes of a response body; the rest is not downloaded (the stream is cancelled). */
async function firstBytes(res: Response, n: number): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array(await res.arrayBuffer()).subarray(0, n);
  const reader = res.body.getReader();
  const out = new Uint8Array(n);
  let got = 0;
  try {
    while (got < n) {
      const { done, value } = await reader.read();
      if (done) break;
      const take = Math.min(n - got, value.byteLength);
      out.set(value.subarray(0, take), got);
      got += take;
    }
  } finally {
    // A server that ignored the Range header would otherwise send the whole file.
    void reader.cancel().catch(() => undefined);
  }
  return out.subarray(0, got);
}

/** The preset (local demo model included) whose URL is `url`, compared as absolute URLs. */
export function presetForUrl(url: string, base?: string): ModelPreset | undefined {
  const abs = absoluteUrl(url, base);
  return [LOCAL_DEMO_MODEL, ...MODEL_PRESETS].find((p) => absoluteUrl(p.url, base) === abs);
}

/** `url` resolved against `base` (default: the page); unchanged when it cannot be parsed. */
export function absoluteUrl(url: string, base: string | undefined = typeof location !== 'undefined' ? location.href : undefined): string {
  try {
    return base ? new URL(url, base).href : new URL(url).href;
  } catch {
    return url;
  }
}
