// What the model panel says about a load, without the panel: load errors turned into a title, a
// message, advice and a Retry flag; the status sentences of each load phase; the names and
// origins of sources. No Lit and no DOM here, so Node tests import it (test/ui/load-errors.test.ts).
import { ChunklmError, formatBytes, formatLoadProgress, type LoadProgress, type ModelInfo } from '../api.ts';
import { absoluteUrl, presetForUrl } from './presets.ts';

/** A failure as the panel shows it: what happened, what to do, and whether Retry may help. */
export interface ModelPanelError {
  /** The error's code (ChunklmError.code), or 'internal'; the box's `data-code`. */
  code: string;
  title: string;
  message: string;
  advice: string[];
  /** The error's own text, under "Technical details". */
  detail: string;
  /** Loading the same source again may work (a network failure, a GPU reset). */
  retry: boolean;
}

/** Codes of GGUFErrors raised by the HTTP layer (src/gguf/http.ts): the download, not the file, failed. */
export const NETWORK_CODES = new Set(['fetch-failed', 'http-error', 'bad-response', 'source-changed', 'range-unsupported']);
/** Codes of the fit check (src/model/footprint.ts, src/engine/engine.ts) and of allocations past a device limit. */
export const TOO_LARGE_CODES = new Set(['model-too-large', 'does-not-fit', 'buffer-too-large', 'kv-pool-too-large']);
export const SPLIT_CODES = new Set(['bad-split', 'split-incomplete', 'split-mismatch']);

export const WEBGPU_ADVICE = [
  'Use Chrome or Edge 113 or newer on a desktop computer (Windows, macOS or ChromeOS).',
  'Turn on hardware acceleration (Settings → System → “Use graphics acceleration when available”) and restart the browser.',
  'On Linux, open chrome://flags, enable #enable-unsafe-webgpu, and restart the browser.',
];

/** Turns whatever a load (or a cache call) threw into the message the panel shows. */
export function describeLoadError(err: unknown, opts: { kvDtype?: 'f16' | 'f32' } = {}): ModelPanelError {
  const e = err instanceof Error ? err : new Error(String(err));
  const rawCode = err instanceof ChunklmError ? err.code : (err as { code?: unknown } | null)?.code;
  const code = typeof rawCode === 'string' && rawCode ? rawCode : 'internal';
  const fields = err instanceof ChunklmError ? err.fields : {};
  const base = { code, advice: [] as string[], detail: `${e.name}: ${e.message}`, retry: false };

  if (code === 'no-webgpu') {
    return {
      ...base,
      title: 'This browser has no WebGPU',
      message: 'chunklm runs models on your GPU through WebGPU, which this browser does not offer.',
      advice: WEBGPU_ADVICE,
    };
  }
  if (code === 'no-adapter' || code === 'device-request-failed') {
    return {
      ...base,
      title: 'WebGPU found no usable GPU',
      message: 'This browser has WebGPU, but it gave the page no GPU to run on (the GPU or its driver may be blocklisted, or hardware acceleration is off).',
      advice: [...WEBGPU_ADVICE, 'chrome://gpu shows whether WebGPU is hardware accelerated; updating the GPU driver can help.'],
    };
  }
  if (TOO_LARGE_CODES.has(code)) {
    const need = numberField(fields, 'needBytes', 'need', 'poolBytes', 'size');
    const limit = numberField(fields, 'limitBytes', 'availableBytes', 'limit', 'max');
    const over = numberField(fields, 'overBytes') ?? (need !== undefined && limit !== undefined ? need - limit : undefined);
    const perBuffer = code !== 'does-not-fit';
    let message: string;
    if (need !== undefined && limit !== undefined) {
      const by = over !== undefined && over > 0 ? `: ${formatBytes(over)} too much` : '';
      message = perBuffer
        ? `One of its GPU buffers needs ${formatBytes(need)}, but this device allows at most ${formatBytes(limit)} per buffer${by}.`
        : `It needs ${formatBytes(need)} of GPU memory, but this device can hold about ${formatBytes(limit)}${by}.`;
    } else {
      message = 'It needs more GPU memory than this device offers.';
    }
    const advice = ['Choose a smaller model (fewer parameters), or a smaller quantization of it (Q4 rather than Q8 or F16).'];
    if ((code === 'kv-pool-too-large' || code === 'does-not-fit') && opts.kvDtype === 'f32') {
      advice.push('Set the KV precision to f16 in the settings: it halves the memory of the KV cache.');
    }
    return { ...base, title: 'This model is too large for this device', message, advice };
  }
  if (NETWORK_CODES.has(code)) return describeNetworkError(code, fields, base);
  if (e.name === 'GGUFError' && SPLIT_CODES.has(code)) {
    return {
      ...base,
      title: 'The parts of this split model do not fit together',
      message: e.message,
      advice: ['Choose every part of the same model (…-00001-of-0000N.gguf to …-0000N-of-0000N.gguf), together.'],
    };
  }
  if (e.name === 'GGUFError') {
    const message =
      code === 'bad-magic'
        ? 'It does not start with the GGUF signature: it may be another format (safetensors, PyTorch) or a web page.'
        : code === 'truncated'
          ? 'The file ends too early: it is incomplete or damaged.'
          : 'Its GGUF header could not be read: the file is damaged, or uses a GGUF variant chunklm does not read.';
    return {
      ...base,
      title: 'This file is not a GGUF model',
      message,
      advice: ['Choose a .gguf file (llama.cpp’s format). On the Hugging Face Hub, use the file’s download link (…/resolve/main/….gguf).'],
    };
  }
  if (e.name === 'UnsupportedModelError') {
    return { ...base, title: 'chunklm cannot run this model', message: e.message, advice: ['Choose one of the models listed above, or another GGUF of an architecture chunklm supports.'] };
  }
  if (e.name === 'TokenizerError') {
    return { ...base, title: 'This model’s tokenizer is not supported', message: e.message };
  }
  if (e.name === 'WorkerError') {
    return { ...base, title: 'The engine stopped', message: 'The background worker that runs models failed.', advice: ['Reload the page to start it again.'] };
  }
  if (code === 'device-lost') {
    return {
      ...base,
      title: 'The GPU was reset',
      message: 'The browser reset the GPU while the model loaded (a driver crash, or another tab used too much GPU memory).',
      retry: true,
    };
  }
  if (code === 'empty-url' || code === 'bad-url') {
    return {
      ...base,
      title: code === 'empty-url' ? 'Choose a model' : 'This is not a valid URL',
      message: code === 'empty-url' ? 'Pick a model in the list, enter a GGUF URL, or open a local file.' : e.message,
    };
  }
  if (code === 'read-failed') {
    return { ...base, title: 'The file could not be read', message: e.message, advice: ['Choose the file again: it may have been moved or changed since it was chosen.'] };
  }
  if (code === 'busy') {
    return { ...base, title: 'The engine is busy', message: 'An answer is still being written.', advice: ['Wait for it to finish (or stop it), then load the model again.'], retry: true };
  }
  if (e.name === 'StorageError') {
    return {
      ...base,
      title: 'This browser’s storage refused the model',
      message: e.message,
      advice: code === 'quota-exceeded' ? ['Remove models you no longer need from “Saved in this browser” below, then try again.'] : [],
      retry: code === 'quota-exceeded',
    };
  }
  return { ...base, title: 'The model could not be loaded', message: e.message };
}

/** The download failed (src/gguf/http.ts's codes): what the server said, and whether Retry may help. */
export function describeNetworkError(code: string, fields: Record<string, unknown>, base: Omit<ModelPanelError, 'title' | 'message'>): ModelPanelError {
  const title = 'The download failed';
  // Within one load, src/gguf/http.ts resumes a dropped connection from the byte it reached; the
  // model cache keeps only complete files, so a new attempt downloads an unfinished file again.
  const again = 'Retry downloads the model again (files already saved in this browser are not downloaded twice).';
  switch (code) {
    case 'http-error': {
      const status = typeof fields.status === 'number' ? fields.status : undefined;
      if (status === 404) {
        return {
          ...base,
          title,
          message: 'The server has no file at this URL (HTTP 404).',
          advice: ['Check the link. A file on the Hugging Face Hub is downloaded from https://huggingface.co/<repo>/resolve/main/<file>.gguf.'],
        };
      }
      if (status === 401 || status === 403) {
        return {
          ...base,
          title,
          message: `The server refused access (HTTP ${status}).`,
          advice: ['Gated Hub repositories need a login this page does not have: use an ungated copy of the model, or download it and open it as a local file.'],
        };
      }
      return { ...base, title, message: `The server answered HTTP ${status ?? 'error'}.`, advice: [again], retry: status === undefined || status >= 500 || status === 408 || status === 429 };
    }
    case 'range-unsupported':
      return {
        ...base,
        title: 'This server cannot serve the model to the browser',
        message: 'It ignores HTTP range requests, which loading a model needs.',
        advice: ['Download the file and open it as a local file, or use a host that supports ranges (the Hugging Face Hub does).'],
      };
    case 'source-changed':
      return { ...base, title, message: 'The file changed on the server while it was downloading.', advice: [again], retry: true };
    case 'bad-response':
      return { ...base, title, message: 'The server did not send the bytes that were asked for.', advice: [again], retry: true };
    default:
      return {
        ...base,
        title,
        message: 'The network failed, or the server could not be reached (or did not let this page read the file: CORS). Dropped connections were already resumed a few times.',
        advice: ['Check the connection. ' + again],
        retry: true,
      };
  }
}

/** The first of `keys` that holds a finite number in an error's fields. */
export function numberField(fields: Record<string, unknown>, ...keys: string[]): number | undefined {
  for (const k of keys) {
    const v = fields[k];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return undefined;
}

/** A cancelled load, whichever side of the Worker boundary raised it. */
export function isAbort(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown } | null;
  return e?.name === 'AbortedError' || e?.name === 'AbortError' || (err instanceof ChunklmError && err.code === 'aborted');
}

/** A Hub page link (`…/blob/main/x.gguf`) shows HTML; the file itself is at `…/resolve/main/x.gguf`. */
export function hubFileUrl(url: string): string {
  return url.replace(/^(https:\/\/huggingface\.co\/[^/?#]+\/[^/?#]+)\/blob\//, '$1/resolve/');
}

/** The last path segment of a URL ("qwen2.5-0.5b-instruct-q4_k_m.gguf"), or the URL. */
export function fileNameOf(url: string): string {
  try {
    const name = new URL(url, 'http://x/').pathname.split('/').pop();
    return name ? decodeURIComponent(name) : url;
  } catch {
    return url;
  }
}

/** The host a URL downloads from, or undefined for the page's own origin (or a URL that does not parse). */
export function hostOf(url: string, pageUrl: string | undefined = typeof location !== 'undefined' ? location.href : undefined): string | undefined {
  try {
    const u = new URL(absoluteUrl(url, pageUrl));
    return pageUrl !== undefined && u.origin === new URL(pageUrl).origin ? undefined : u.host;
  } catch {
    return undefined;
  }
}

/** What the visitor reads for a source: a preset's name, a file name, or several. */
export function describeSource(source: string | readonly { name: string }[]): string {
  if (typeof source !== 'string') return source.length === 1 ? source[0].name : `${source[0]?.name ?? 'files'} and ${source.length - 1} more parts`;
  return presetForUrl(source)?.name ?? fileNameOf(source);
}

/** Where the loaded model's bytes came from, in words. */
export function describeOrigin(m: ModelInfo, source: string | readonly { name: string }[] | undefined, pageUrl?: string): string {
  if (!m.files?.length) return typeof source === 'string' ? 'Loaded from a URL' : 'A local file (nothing was downloaded)';
  const host = typeof source === 'string' ? hostOf(source, pageUrl) : undefined;
  const from = host ? ` from ${host}` : '';
  const kinds = new Set(m.files.map((f) => f.source));
  if (kinds.size === 1 && kinds.has('cache')) return 'This browser’s saved copy (no download)';
  if (kinds.has('network')) return `Read over the network${from} (not saved in this browser)`;
  return `Downloaded${from}, now saved in this browser`;
}

/** What the panel announces when a load enters `phase` ("Downloading Qwen2.5 0.5B Instruct"). */
export function loadPhaseSentence(phase: LoadProgress['phase'], label: string): string {
  switch (phase) {
    case 'header':
      return `Reading the header of ${label}`;
    case 'download':
      return `Downloading ${label}`;
    case 'weights':
      return `Uploading ${label} to the GPU`;
    case 'compile':
      return `Preparing the GPU programs for ${label}`;
    case 'ready':
      return `Loaded ${label}`;
  }
}

/** The detailed status line of a load: the phase's sentence, then bytes, speed and time left. */
export function loadProgressLine(p: LoadProgress, label: string): string {
  // formatLoadProgress opens with the phase's name; the sentence says it in words instead.
  const text = formatLoadProgress(p);
  const rest = text.startsWith(p.phase) ? text.slice(p.phase.length).trimStart() : text;
  return `${loadPhaseSentence(p.phase, label)}: ${rest}`;
}
