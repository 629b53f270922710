// The demo page's one component. It talks only to ChunklmClient (never to the GPU or storage):
// load a model from a URL (a Hugging Face resolve/main link: downloaded once, then read from the
// browser's model cache) or local files, then stream generations with their metrics.
import { LitElement, css, html, nothing, type PropertyValues } from 'lit';
import { ChunklmClient, type GenerationStream } from '../client/client.ts';
import type { GenerateOptions, GenerationResult, LoadProgress, ModelInfo } from '../engine/types.ts';
import { ChunklmError, InvalidRequestError } from '../errors.ts';
import { formatBytes, formatLoadProgress } from '../format.ts';
import type { CachedModelFile } from '../hub/model-cache.ts';

type Phase = 'idle' | 'loading' | 'ready' | 'generating' | 'done' | 'error';

/**
 * Loads a GGUF model into the chunklm Worker and streams text from it.
 *
 * Controls carry stable ids for tests and scripts: `#model-url`, `#model-file`, `#load`,
 * `#progress`, `#status`, `#prompt`, `#max-tokens`, `#temperature`, `#top-k`, `#top-p`, `#seed`,
 * `#generate`, `#stop`, `#output`, `#metrics`, `#error`, `#warnings`, `#cached-models` (each entry a
 * `li[data-url]` with a Remove button). `#status` carries `data-state`
 * (idle, loading, ready, generating, done, error) and, after a generation, `data-finish-reason`.
 *
 * @fires chunklm-loaded - A model finished loading; `detail` is its ModelInfo.
 * @fires chunklm-generated - A generation ended (stopped ones too); `detail` is the GenerationResult.
 * @fires chunklm-error - A load or generation failed; `detail` is the Error (a ChunklmError subclass).
 * @csspart output - The streamed text.
 * @csspart metrics - The metrics line under the output.
 */
export class ChunklmDemo extends LitElement {
  static override properties = {
    modelUrl: { type: String, attribute: 'model-url' },
    client: { attribute: false },
    phase: { state: true },
    progress: { state: true },
    model: { state: true },
    files: { state: true },
    cached: { state: true },
    output: { state: true },
    tokenCount: { state: true },
    result: { state: true },
    error: { state: true },
  };

  /** URL of the model the Load button fetches when no local file is chosen. */
  declare modelUrl: string;
  /** Client to use; one is created (and disposed with the element) when none is given. */
  declare client: ChunklmClient | undefined;
  declare private phase: Phase;
  declare private progress: LoadProgress | undefined;
  declare private model: ModelInfo | undefined;
  /** Local files chosen: one model, or every part of a split one. */
  declare private files: File[];
  /** The model cache's files, once listed. */
  declare private cached: CachedModelFile[] | undefined;
  declare private output: string;
  declare private tokenCount: number;
  declare private result: GenerationResult | undefined;
  declare private error: Error | undefined;

  private ownClient: Promise<ChunklmClient> | undefined;
  private running: AbortController | undefined;

  constructor() {
    super();
    this.modelUrl = '/models/stories260K.gguf';
    this.client = undefined;
    this.phase = 'idle';
    this.files = [];
    this.output = '';
    this.tokenCount = 0;
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.running?.abort();
    const own = this.ownClient;
    this.ownClient = undefined;
    void own?.then((c) => c.dispose(), () => undefined);
  }

  private get busy(): boolean {
    return this.phase === 'loading' || this.phase === 'generating';
  }

  /** The client this element talks to: the one handed in, or one it starts (once) and owns. */
  async getClient(): Promise<ChunklmClient> {
    if (this.client) return this.client;
    this.ownClient ??= ChunklmClient.create();
    try {
      return await this.ownClient;
    } catch (err) {
      this.ownClient = undefined; // let the next click try again
      throw err;
    }
  }

  private async load(): Promise<void> {
    if (this.busy) return;
    const ctrl = new AbortController();
    this.running = ctrl;
    this.error = undefined;
    this.result = undefined;
    this.model = undefined;
    this.progress = undefined;
    this.phase = 'loading';
    try {
      const client = await this.getClient();
      const source = this.files.length > 0 ? this.files : this.modelUrl.trim();
      this.model = await client.load(source, { signal: ctrl.signal, onProgress: (p) => (this.progress = p) });
      this.phase = 'ready';
      this.emit('chunklm-loaded', this.model);
    } catch (err) {
      this.fail(err);
    } finally {
      if (this.running === ctrl) this.running = undefined;
    }
    await this.refreshCached();
  }

  private async refreshCached(): Promise<void> {
    try {
      this.cached = await (await this.getClient()).models.list();
    } catch {
      // A cache that cannot be listed (no Cache Storage here) shows as empty; loads still work.
      this.cached = [];
    }
  }

  private async removeCached(url: string): Promise<void> {
    try {
      await (await this.getClient()).models.remove(url);
    } catch (err) {
      this.showError(err);
    }
    await this.refreshCached();
  }

  private async generate(): Promise<void> {
    if (this.busy || !this.model) return;
    this.error = undefined;
    let opts: GenerateOptions;
    try {
      opts = this.readGenerateOptions();
    } catch (err) {
      this.showError(err);
      return;
    }
    const ctrl = new AbortController();
    this.running = ctrl;
    this.output = '';
    this.tokenCount = 0;
    this.result = undefined;
    this.phase = 'generating';
    let stream: GenerationStream;
    try {
      const client = await this.getClient();
      stream = client.generate(this.field('prompt').value, { ...opts, signal: ctrl.signal });
      for await (const ev of stream) {
        this.output += ev.text;
        if (ev.tokenId >= 0) this.tokenCount++;
      }
      this.result = await stream.result;
      this.phase = 'done';
      this.emit('chunklm-generated', this.result);
    } catch (err) {
      this.fail(err);
    } finally {
      if (this.running === ctrl) this.running = undefined;
    }
  }

  private stop(): void {
    this.running?.abort();
  }

  /** Reads and checks the sampling fields; an empty field means the engine's default. */
  private readGenerateOptions(): GenerateOptions {
    const num = (id: string, label: string, ok: (n: number) => boolean, what: string): number | undefined => {
      const raw = this.field(id).value.trim();
      if (raw === '') return undefined;
      const n = Number(raw);
      if (!ok(n)) throw new InvalidRequestError('bad-option', `${label} must be ${what}, got '${raw}'`, { field: id });
      return n;
    };
    const isCount = (n: number): boolean => Number.isInteger(n) && n >= 0;
    return {
      maxTokens: num('max-tokens', 'max tokens', isCount, 'a non-negative integer'),
      temperature: num('temperature', 'temperature', (n) => Number.isFinite(n) && n >= 0, 'a number ≥ 0'),
      topK: num('top-k', 'top-k', isCount, 'a non-negative integer'),
      topP: num('top-p', 'top-p', (n) => n > 0 && n <= 1, 'a number in (0, 1]'),
      seed: num('seed', 'seed', (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32, 'an integer in [0, 2^32)'),
    };
  }

  private field(id: string): HTMLInputElement | HTMLTextAreaElement {
    const el = this.renderRoot.querySelector<HTMLInputElement | HTMLTextAreaElement>(`#${id}`);
    if (!el) throw new InvalidRequestError('missing-field', `the demo has no #${id} field`);
    return el;
  }

  private fail(err: unknown): void {
    // A failed load leaves no model (loading replaces the old one); a failed generation keeps it.
    if (this.phase === 'loading') this.model = undefined;
    this.phase = 'error';
    this.showError(err);
  }

  private showError(err: unknown): void {
    this.error = err instanceof Error ? err : new Error(String(err));
    this.emit('chunklm-error', this.error);
  }

  private emit(type: string, detail: unknown): void {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  private onSubmit(e: Event): void {
    e.preventDefault();
    void this.load();
  }

  private onFileChange(e: Event): void {
    this.files = [...((e.target as HTMLInputElement).files ?? [])];
  }

  private onUrlInput(e: Event): void {
    this.modelUrl = (e.target as HTMLInputElement).value;
    this.clearFile();
  }

  private clearFile(): void {
    this.files = [];
    const input = this.renderRoot.querySelector<HTMLInputElement>('#model-file');
    if (input) input.value = '';
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    // A client handed in later replaces the one this element made.
    if (changed.has('client') && this.client && this.ownClient) {
      const own = this.ownClient;
      this.ownClient = undefined;
      void own.then((c) => c.dispose(), () => undefined);
    }
  }

  private statusText(): string {
    switch (this.phase) {
      case 'idle':
        return 'No model loaded.';
      case 'loading': {
        const p = this.progress;
        const what = this.files.length > 0 ? this.files.map((f) => f.name).join(', ') : this.modelUrl;
        return p ? `Loading ${what}: ${formatLoadProgress(p)}` : `Opening ${what}…`;
      }
      case 'ready':
        return this.model ? `Ready: ${describeModel(this.model)}${describeFiles(this.model)}` : 'Ready.';
      case 'generating':
        return `Generating… ${this.tokenCount} tokens`;
      case 'done': {
        const r = this.result;
        if (!r) return 'Generation failed.';
        return `${r.finishReason === 'aborted' ? 'Stopped' : 'Done'}: ${r.tokens.length} tokens (finish reason: ${r.finishReason})`;
      }
      case 'error':
        return 'Failed; see the error below.';
    }
  }

  override render() {
    const p = this.progress;
    const canGenerate = !!this.model && !this.busy;
    return html`
      <form class="row" @submit=${this.onSubmit}>
        <label for="model-url">Model URL</label>
        <input id="model-url" data-testid="model-url" type="text" .value=${this.modelUrl} @input=${this.onUrlInput} ?disabled=${this.busy} />
        <label class="file">
          or a local file
          <input id="model-file" data-testid="model-file" type="file" accept=".gguf" multiple @change=${this.onFileChange} ?disabled=${this.busy} />
        </label>
        <button id="load" data-testid="load" type="submit" ?disabled=${this.busy}>Load</button>
      </form>
      <progress
        id="progress"
        data-testid="progress"
        max=${p?.totalBytes || 1}
        .value=${p ? p.loadedBytes : this.model ? 1 : 0}
        ?hidden=${this.phase !== 'loading'}
      ></progress>
      <p id="status" data-testid="status" data-state=${this.phase} data-finish-reason=${this.result?.finishReason ?? nothing} role="status">
        ${this.statusText()}
      </p>
      ${this.model?.warnings?.length
        ? html`<ul id="warnings" data-testid="warnings">
            ${this.model.warnings.map((w) => html`<li>${w}</li>`)}
          </ul>`
        : nothing}
      <details id="cached-models" data-testid="cached-models" @toggle=${(e: Event) => (e.target as HTMLDetailsElement).open && void this.refreshCached()}>
        <summary>Models kept in this browser${this.cached ? ` (${this.cached.length})` : ''}</summary>
        <ul>
          ${(this.cached ?? []).map(
            (f) =>
              html`<li data-url=${f.url}>
                ${f.url} · ${formatBytes(f.bytes)} · ${new Date(f.cachedAt).toLocaleString()}
                <button @click=${() => void this.removeCached(f.url)} ?disabled=${this.busy}>Remove</button>
              </li>`,
          )}
        </ul>
      </details>

      <label for="prompt">Prompt</label>
      <textarea id="prompt" data-testid="prompt" rows="3">Once upon a time</textarea>
      <div class="row sampling">
        <label>max tokens <input id="max-tokens" data-testid="max-tokens" type="number" min="0" value="128" /></label>
        <label>temperature <input id="temperature" data-testid="temperature" type="number" min="0" step="0.1" value="0.8" /></label>
        <label>top-k <input id="top-k" data-testid="top-k" type="number" min="0" value="40" /></label>
        <label>top-p <input id="top-p" data-testid="top-p" type="number" min="0" max="1" step="0.05" value="0.95" /></label>
        <label>seed <input id="seed" data-testid="seed" type="number" min="0" placeholder="random" /></label>
      </div>
      <div class="row">
        <button id="generate" data-testid="generate" @click=${() => void this.generate()} ?disabled=${!canGenerate}>Generate</button>
        <button id="stop" data-testid="stop" @click=${this.stop} ?disabled=${!this.busy}>Stop</button>
      </div>

      <pre id="output" data-testid="output" part="output">${this.output}</pre>
      <p id="metrics" data-testid="metrics" part="metrics">${this.result ? formatMetrics(this.result) : ''}</p>
      ${this.error
        ? html`<p id="error" data-testid="error" role="alert" data-error-name=${this.error.name} data-error-code=${errorCode(this.error)}>
            <strong>${this.error.name}</strong>: ${this.error.message}
          </p>`
        : nothing}
    `;
  }

  static override styles = css`
    :host {
      display: block;
      max-width: 52rem;
      font: 15px/1.4 system-ui, sans-serif;
    }
    .row {
      display: flex;
      flex-wrap: wrap;
      gap: 0.5rem;
      align-items: center;
      margin: 0.5rem 0;
    }
    #model-url {
      flex: 1 1 18rem;
    }
    .file {
      font-size: 0.85em;
    }
    progress {
      width: 100%;
    }
    textarea {
      display: block;
      width: 100%;
      box-sizing: border-box;
    }
    .sampling input {
      width: 5rem;
    }
    #output {
      white-space: pre-wrap;
      min-height: 6rem;
      padding: 0.5rem;
      background: #f4f4f4;
      border-radius: 4px;
    }
    #metrics {
      color: #555;
      font-size: 0.85em;
    }
    #error {
      color: #a40000;
    }
    #warnings {
      color: #7a5200;
      font-size: 0.85em;
    }
    #cached-models {
      font-size: 0.85em;
      overflow-wrap: anywhere;
    }
  `;
}

function errorCode(err: Error): string {
  return err instanceof ChunklmError ? err.code : 'internal';
}

function describeModel(m: ModelInfo): string {
  return `${m.name} (${m.architecture}, ${m.nLayers} layers, dim ${m.dim}, ${m.weightType}, ${formatBytes(m.weightBytes)}; GPU memory peak ${formatBytes(m.gpuMemory.peakBytes)}) on ${m.adapter}`;
}

/** " (from the browser's model cache)", " (downloaded, now cached)" or "" for a local file. */
function describeFiles(m: ModelInfo): string {
  const from = new Set(m.files?.map((f) => f.source));
  if (from.size === 0) return '';
  if (from.size === 1 && from.has('cache')) return " (from the browser's model cache)";
  if (from.has('network')) return ' (read over the network, not cached)';
  return ' (downloaded, now cached)';
}

function formatMetrics(r: GenerationResult): string {
  return (
    `TTFT ${r.ttftMs.toFixed(1)} ms · prefill ${r.prefillTokPerS.toFixed(1)} tok/s · decode ${r.decodeTokPerS.toFixed(1)} tok/s · ` +
    `${r.promptTokens.length} prompt + ${r.tokens.length} generated tokens`
  );
}

customElements.define('chunklm-demo', ChunklmDemo);

declare global {
  interface HTMLElementTagNameMap {
    'chunklm-demo': ChunklmDemo;
  }
}
