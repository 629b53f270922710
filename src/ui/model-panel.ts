// The model panel: choose a model (a preset, a URL, or local files), load it through the page's
// ChunklmClient with progress and cancel, show what is loaded, and list the models this browser
// keeps. It only talks to the client (never to the GPU or storage) and tells the app through the
// events of events.ts; load errors become a message that says what to do (load-errors.ts).
import { LitElement, css, html, nothing, type PropertyValues, type TemplateResult } from 'lit';
import { type CachedModelFile, type ChunklmClient, ChunklmError, formatBytes, type LoadProgress, type ModelInfo } from '../api.ts';
import { emit } from './events.ts';
import {
  describeLoadError,
  describeOrigin,
  describeSource,
  fileNameOf,
  hubFileUrl,
  isAbort,
  loadPhaseSentence,
  loadProgressLine,
  type ModelPanelError,
} from './load-errors.ts';
import { DEFAULT_HUB_PRESET, LOCAL_DEMO_MODEL, MODEL_PRESETS, absoluteUrl, localDemoAvailable, presetForUrl, type ModelPreset } from './presets.ts';
import { baseStyles } from './theme.ts';

export type ModelPanelState = 'idle' | 'loading' | 'ready' | 'error';

type Choice = { kind: 'preset'; preset: ModelPreset } | { kind: 'url'; url: string } | { kind: 'files'; files: File[] };

/**
 * Chooses and loads the model: presets (the local demo model first when the page serves it,
 * otherwise Qwen2.5 0.5B Instruct), another GGUF URL, or local files (every part of a split model).
 * Nothing is downloaded before the visitor presses Load. While loading, a progress bar and a
 * status line show the phase, bytes, speed and time left, with a Cancel button; once loaded, a card
 * describes the model with Change model and Unload. Models saved in this browser are listed with
 * Remove buttons.
 *
 * Stable ids for tests: `#model-preset-<id>` (radios), `#model-url`, `#model-file`, `#model-load`,
 * `#model-cancel`, `#model-progress`, `#model-status` (`data-state`: idle, loading, ready, error; not live:
 * it changes with every progress report), `#model-status-live` (the polite live region: phases only),
 * `#model-error` (`role="alert"`, `data-code`: the error's code), `#model-retry`, `#model-info` (the
 * loaded model's card), `#model-change`, `#model-unload`, `#cached-models` (each entry a
 * `li[data-url]` with a Remove button).
 *
 * @fires chunklm-model-loaded - A model finished loading; `detail` is its ModelInfo.
 * @fires chunklm-model-unloaded - The visitor unloaded the model, or a load started that replaces it.
 */
export class ModelPanel extends LitElement {
  static override properties = {
    client: { attribute: false },
    kvDtype: { attribute: 'kv-dtype' },
    busy: { type: Boolean },
    localDemo: { type: Boolean, attribute: 'local-demo' },
    state: { state: true },
    progress: { state: true },
    model: { state: true },
    error: { state: true },
    notice: { state: true },
    cancelling: { state: true },
    cached: { state: true },
    demoAvailable: { state: true },
    selected: { state: true },
    url: { state: true },
    files: { state: true },
    choosing: { state: true },
    loadingLabel: { state: true },
  };

  /** The page's client, set by the app; the panel never creates one. */
  declare client: ChunklmClient | undefined;
  /** KV precision passed to the next load. */
  declare kvDtype: 'f16' | 'f32';
  /** Set by the app while an answer streams: loading and unloading wait. */
  declare busy: boolean;
  /**
   * Whether to look for the demo model served beside the page (`models/stories260K.gguf`) and
   * offer it first (default true; hosts that never serve it, like the extension, turn it off).
   */
  declare localDemo: boolean;

  declare private state: ModelPanelState;
  declare private progress: LoadProgress | undefined;
  declare private model: ModelInfo | undefined;
  declare private error: ModelPanelError | undefined;
  /** A line for the idle status (a cancelled load). */
  declare private notice: string | undefined;
  declare private cancelling: boolean;
  /** The model cache's files, once listed. */
  declare private cached: CachedModelFile[] | undefined;
  /** Whether the page serves the local demo model (undefined while it is checked). */
  declare private demoAvailable: boolean | undefined;
  /** A preset id, 'url' or 'files'. */
  declare private selected: string;
  declare private url: string;
  declare private files: File[];
  /** A model is loaded and the visitor asked to choose another. */
  declare private choosing: boolean;
  declare private loadingLabel: string;

  private running: AbortController | undefined;
  private lastSource: string | File[] | undefined;
  /** The visitor picked something: the demo-model check no longer changes the choice. */
  private userChose = false;
  private demoCheck: Promise<void> | undefined;

  constructor() {
    super();
    this.client = undefined;
    this.kvDtype = 'f16';
    this.busy = false;
    this.localDemo = true;
    this.state = 'idle';
    this.cancelling = false;
    this.selected = DEFAULT_HUB_PRESET.id;
    this.url = '';
    this.files = [];
    this.choosing = false;
    this.loadingLabel = '';
  }

  /** The loaded model, or undefined. */
  get info(): ModelInfo | undefined {
    return this.model;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (typeof navigator !== 'undefined' && !('gpu' in navigator) && !this.error && !this.model) {
      // Said before anything is downloaded; Load still asks the engine, which fails fast the same way.
      this.error = describeLoadError(new ChunklmError('no-webgpu', 'navigator.gpu is missing in this page'));
      this.state = 'error';
    }
    if (!this.localDemo) return;
    this.demoCheck ??= localDemoAvailable().then((ok) => {
      this.demoAvailable = ok;
      if (ok && !this.userChose && this.state !== 'loading') this.selected = LOCAL_DEMO_MODEL.id;
    });
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.running?.abort();
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (changed.has('client')) void this.refreshCached();
  }

  private get presets(): readonly ModelPreset[] {
    return this.demoAvailable ? [LOCAL_DEMO_MODEL, ...MODEL_PRESETS] : MODEL_PRESETS;
  }

  private get loading(): boolean {
    return this.state === 'loading';
  }

  /**
   * Loads a model from a URL (relative URLs are resolved against the page) or local files (every
   * part of a split model), replacing the loaded one. Resolves with its ModelInfo, or undefined when
   * the load failed (the panel shows why), was cancelled, or could not start (busy, no client).
   */
  async load(source: string | File[]): Promise<ModelInfo | undefined> {
    if (this.loading || this.busy) return undefined;
    const client = this.client;
    if (typeof source === 'string') source = hubFileUrl(source.trim());
    this.lastSource = source;
    if (!client) {
      this.showError(new ChunklmError('no-client', 'the engine has not started yet; wait a moment and try again'));
      return undefined;
    }
    const ctrl = new AbortController();
    this.running = ctrl;
    const hadModel = this.model !== undefined;
    void this.keepFocus('#model-cancel');
    this.error = undefined;
    this.notice = undefined;
    this.cancelling = false;
    this.model = undefined;
    this.choosing = false;
    this.progress = undefined;
    this.loadingLabel = describeSource(source);
    this.state = 'loading';
    // The engine drops the loaded model as soon as a load starts, whatever its outcome.
    if (hadModel) emit(this, 'chunklm-model-unloaded', undefined);
    try {
      const info = await client.load(source, {
        kvDtype: this.kvDtype,
        signal: ctrl.signal,
        onProgress: (p) => {
          if (this.running === ctrl) this.progress = p;
        },
      });
      // The progress bar ends full (value == max) whatever the last report was.
      const last = this.progress as LoadProgress | undefined;
      const total = last && last.totalBytes > 0 ? last.totalBytes : 1;
      void this.keepFocus('#model-info');
      this.progress = { phase: 'ready', loadedBytes: total, totalBytes: total };
      this.model = info;
      this.state = 'ready';
      emit(this, 'chunklm-model-loaded', info);
      return info;
    } catch (err) {
      if (isAbort(err)) {
        void this.keepFocus('#model-load');
        this.state = 'idle';
        this.notice = hadModel ? 'Loading cancelled. The previous model was unloaded.' : 'Loading cancelled.';
      } else {
        this.showError(err);
      }
      return undefined;
    } finally {
      if (this.running === ctrl) this.running = undefined;
      this.cancelling = false;
      void this.refreshCached();
    }
  }

  /** Cancels the load in progress. */
  private cancel(): void {
    if (!this.running) return;
    this.cancelling = true;
    this.running.abort();
  }

  private async unload(): Promise<void> {
    const client = this.client;
    if (!client || !this.model || this.busy || this.loading) return;
    void this.keepFocus('#model-load');
    try {
      await client.unload();
      this.error = undefined;
      this.state = 'idle';
      this.notice = 'The model was unloaded.';
    } catch (err) {
      this.showError(err);
    } finally {
      // A failed unload means the Worker is gone, and the model with it.
      this.model = undefined;
      this.choosing = false;
      this.progress = undefined;
      emit(this, 'chunklm-model-unloaded', undefined);
    }
  }

  private showError(err: unknown): void {
    const error = describeLoadError(err, { kvDtype: this.kvDtype });
    void this.keepFocus(error.retry ? '#model-retry' : '#model-load');
    this.error = error;
    this.state = 'error';
  }

  private async refreshCached(): Promise<void> {
    const client = this.client;
    if (!client) {
      this.cached = undefined;
      return;
    }
    try {
      const files = await client.models.list();
      if (this.client === client) this.cached = files.sort((a, b) => b.cachedAt - a.cachedAt);
    } catch {
      // A cache that cannot be listed (no Cache Storage here) shows as empty; loads still work.
      if (this.client === client) this.cached = [];
    }
  }

  private async removeCached(url: string): Promise<void> {
    const client = this.client;
    if (!client) return;
    try {
      await client.models.remove(url);
    } catch (err) {
      this.showError(err);
    }
    await this.refreshCached();
  }

  /** Selects a saved model in the chooser (opening it when a model is loaded). */
  private async chooseCached(url: string): Promise<void> {
    const preset = presetForUrl(url);
    this.userChose = true;
    if (preset && this.presets.includes(preset)) {
      this.selected = preset.id;
      this.url = '';
    } else {
      this.selected = 'url';
      this.url = url;
    }
    this.clearFiles();
    if (this.model) this.choosing = true;
    await this.updateComplete;
    this.renderRoot.querySelector<HTMLElement>('#model-load')?.focus();
  }

  private async startChoosing(): Promise<void> {
    this.choosing = true;
    await this.updateComplete;
    this.renderRoot.querySelector<HTMLElement>('input[name="model-preset"]:checked, #model-url')?.focus();
  }

  private async stopChoosing(): Promise<void> {
    this.choosing = false;
    await this.updateComplete;
    this.renderRoot.querySelector<HTMLElement>('#model-change')?.focus();
  }

  /**
   * After the next render, moves focus to `selector` when focus was inside the panel and that render
   * hid or disabled the focused control (so a keyboard user is not dropped to the page's start).
   */
  private async keepFocus(selector: string): Promise<void> {
    const root = this.shadowRoot;
    const had = root?.activeElement as HTMLElement | null | undefined;
    if (!root || !had) return;
    // Callers change state right after this call: one microtask later, updateComplete is that render's.
    await Promise.resolve();
    await this.updateComplete;
    const now = root.activeElement as HTMLElement | null;
    const usable = now === had && had.isConnected && !(had as HTMLButtonElement).disabled && had.closest('[hidden]') === null;
    if (!usable) root.querySelector<HTMLElement>(selector)?.focus();
  }

  private choice(): Choice | undefined {
    if (this.selected === 'files') return this.files.length > 0 ? { kind: 'files', files: this.files } : undefined;
    if (this.selected === 'url') return this.url.trim() ? { kind: 'url', url: this.url.trim() } : undefined;
    const preset = this.presets.find((p) => p.id === this.selected);
    return preset ? { kind: 'preset', preset } : undefined;
  }

  private isCached(url: string): boolean {
    const abs = absoluteUrl(hubFileUrl(url));
    return this.cached?.some((f) => f.url === abs) ?? false;
  }

  private onSubmit(e: Event): void {
    e.preventDefault();
    const c = this.choice();
    if (!c) {
      this.showError(new ChunklmError('empty-url', 'no model chosen'));
      return;
    }
    if (c.kind === 'url') this.url = hubFileUrl(c.url);
    void this.load(c.kind === 'preset' ? c.preset.url : c.kind === 'url' ? c.url : c.files);
  }

  private onPresetChange(id: string): void {
    this.userChose = true;
    this.selected = id;
    this.url = '';
    this.clearFiles();
  }

  private onUrlInput(e: Event): void {
    this.userChose = true;
    this.url = (e.target as HTMLInputElement).value;
    this.clearFiles();
    if (this.url.trim()) this.selected = 'url';
    else if (this.selected === 'url') this.selected = this.defaultPresetId();
  }

  private onFileChange(e: Event): void {
    this.userChose = true;
    this.files = [...((e.target as HTMLInputElement).files ?? [])];
    if (this.files.length > 0) {
      this.selected = 'files';
      this.url = '';
    } else if (this.selected === 'files') {
      this.selected = this.defaultPresetId();
    }
  }

  private clearFiles(): void {
    this.files = [];
    const input = this.renderRoot.querySelector<HTMLInputElement>('#model-file');
    if (input) input.value = '';
  }

  private defaultPresetId(): string {
    return this.demoAvailable ? LOCAL_DEMO_MODEL.id : DEFAULT_HUB_PRESET.id;
  }

  /** The visible status line: with bytes, speed and time left while loading. */
  private statusText(): string {
    switch (this.state) {
      case 'idle':
        return this.notice ?? (this.client ? 'No model loaded yet. Choose one and press Load.' : 'Starting the engine…');
      case 'loading':
        if (this.cancelling) return `Cancelling the load of ${this.loadingLabel}…`;
        return this.progress ? loadProgressLine(this.progress, this.loadingLabel) : `Opening ${this.loadingLabel}…`;
      case 'ready':
        return this.model ? `Ready: ${this.model.name || this.loadingLabel} is loaded.` : 'Ready.';
      case 'error':
        // The alert below says what happened; this line only keeps the state.
        return 'No model loaded: see the message below.';
    }
  }

  /**
   * What the live region says: the status without the numbers, so a screen reader hears the start,
   * each phase, a cancel, the end, but not every progress report. Errors are said by the alert.
   */
  private announcement(): string {
    switch (this.state) {
      case 'idle':
        return this.notice ?? '';
      case 'loading':
        if (this.cancelling) return `Cancelling the load of ${this.loadingLabel}.`;
        return this.progress ? `${loadPhaseSentence(this.progress.phase, this.loadingLabel)}…` : `Loading ${this.loadingLabel}…`;
      case 'ready':
        return this.statusText();
      case 'error':
        return '';
    }
  }

  override render(): TemplateResult {
    const showCard = this.model !== undefined && !this.choosing && !this.loading;
    return html`
      <section class="panel" aria-labelledby="model-heading">
        <h2 id="model-heading">Model</h2>
        ${showCard ? this.renderCard(this.model as ModelInfo) : this.renderChooser()} ${this.renderProgress()}
        <p id="model-status" class="status" data-state=${this.state}>${this.statusText()}</p>
        <p id="model-status-live" class="visually-hidden" role="status" aria-live="polite" aria-atomic="true">${this.announcement()}</p>
        ${this.renderError()}
        ${this.busy && !this.loading ? html`<p class="muted" id="model-busy">The model can be changed once the answer is finished.</p>` : nothing}
        ${this.renderCached()}
      </section>
    `;
  }

  private renderCard(m: ModelInfo): TemplateResult {
    const preset = typeof this.lastSource === 'string' ? presetForUrl(this.lastSource) : undefined;
    const kvChanged = m.kvDtype !== this.kvDtype;
    return html`
      <div id="model-info" class="card" tabindex="-1" aria-labelledby="model-info-name">
        <div class="card-head">
          <span id="model-info-name" class="card-name">${m.name || preset?.name || this.loadingLabel}</span>
          <span class="badge ok">Loaded</span>
        </div>
        <dl>
          <div><dt>Architecture</dt><dd>${m.architecture} · ${m.nLayers} layers</dd></div>
          <div><dt>Weights</dt><dd>${m.weightType} · ${formatBytes(m.weightBytes)}</dd></div>
          <div><dt>Context</dt><dd>${m.contextLength.toLocaleString('en')} tokens</dd></div>
          <div><dt>Source</dt><dd>${describeOrigin(m, this.lastSource)}</dd></div>
          <div><dt>GPU</dt><dd>${m.adapter} · ${formatBytes(m.gpuMemory.peakBytes)} used</dd></div>
        </dl>
        ${m.warnings?.length
          ? html`<div class="warning" id="model-warnings">
              <ul>
                ${m.warnings.map((w) => html`<li>${w}</li>`)}
              </ul>
            </div>`
          : nothing}
        ${kvChanged
          ? html`<p class="muted" id="model-kv-note">
              KV precision is set to ${this.kvDtype}; this model was loaded with ${m.kvDtype}. It applies when the model is loaded again.
              <button class="link" id="model-reload" type="button" ?disabled=${this.busy || !this.lastSource} @click=${() => this.lastSource && void this.load(this.lastSource)}>
                Reload now
              </button>
            </p>`
          : nothing}
        <div class="row actions">
          <button id="model-change" type="button" ?disabled=${this.busy} @click=${() => void this.startChoosing()}>Change model</button>
          <button id="model-unload" type="button" class="danger" ?disabled=${this.busy} @click=${() => void this.unload()}>Unload</button>
        </div>
      </div>
    `;
  }

  private renderChooser(): TemplateResult {
    const disabled = this.loading;
    const c = this.choice();
    return html`
      <form id="model-chooser" @submit=${this.onSubmit} novalidate>
        <fieldset class="presets" ?disabled=${disabled}>
          <legend>Choose a model</legend>
          ${this.presets.map((p) => this.renderPreset(p))}
        </fieldset>
        <div class="field">
          <label for="model-url">Other GGUF URL</label>
          <input
            id="model-url"
            type="text"
            inputmode="url"
            autocomplete="off"
            spellcheck="false"
            placeholder="https://huggingface.co/…/resolve/main/model.gguf"
            aria-describedby="model-url-hint"
            .value=${this.url}
            ?disabled=${disabled}
            @input=${this.onUrlInput}
          />
          <span class="hint muted" id="model-url-hint">Downloaded once, then kept in this browser.</span>
        </div>
        <div class="field">
          <label for="model-file">Open a local .gguf file</label>
          <input id="model-file" type="file" accept=".gguf" multiple aria-describedby="model-file-hint" ?disabled=${disabled} @change=${this.onFileChange} />
          <span class="hint muted" id="model-file-hint">For a model split into parts, choose every part.</span>
        </div>
        <p class="muted load-note" id="model-load-note">${this.loadNote(c)}</p>
        <div class="row actions">
          <button id="model-load" class="primary" type="submit" aria-describedby="model-load-note" ?disabled=${disabled || this.busy || !this.client || !c}>
            Load
          </button>
          ${this.choosing && this.model
            ? html`<button id="model-keep" type="button" ?disabled=${disabled} @click=${() => void this.stopChoosing()}>Keep ${this.model.name || 'the current model'}</button>`
            : nothing}
        </div>
      </form>
    `;
  }

  private renderPreset(p: ModelPreset): TemplateResult {
    const id = `model-preset-${p.id}`;
    const cached = this.isCached(p.url);
    const local = p.id === LOCAL_DEMO_MODEL.id;
    return html`
      <label class="option" for=${id}>
        <input type="radio" name="model-preset" id=${id} value=${p.id} .checked=${this.selected === p.id} @change=${() => this.onPresetChange(p.id)} />
        <span class="option-body">
          <span class="option-head">
            <span class="option-name">${p.name}</span>
            <span class="option-size">${local ? formatBytes(p.sizeBytes) : `≈ ${formatBytes(p.sizeBytes)}`}</span>
            ${cached ? html`<span class="badge ok">cached</span>` : nothing}
          </span>
          <span class="option-desc">${p.description}${p.license ? html` <span class="license">${p.license}.</span>` : nothing}</span>
        </span>
      </label>
    `;
  }

  private loadNote(c: Choice | undefined): string {
    if (!c) return this.selected === 'files' ? 'Choose a .gguf file first.' : 'Choose a model, enter a URL or open a file.';
    if (c.kind === 'files') {
      const bytes = c.files.reduce((s, f) => s + f.size, 0);
      return `Reads ${describeSource(c.files)} (${formatBytes(bytes)}) from this device; nothing is uploaded.`;
    }
    const url = c.kind === 'preset' ? c.preset.url : c.url;
    if (this.isCached(url)) return 'Saved in this browser: loads without downloading.';
    if (c.kind === 'preset' && c.preset.id === LOCAL_DEMO_MODEL.id) return 'Served with this page: loads in a moment.';
    if (c.kind === 'preset') return `Downloads about ${formatBytes(c.preset.sizeBytes)} once; later loads read this browser’s copy.`;
    return 'Downloads the file once; later loads read this browser’s copy.';
  }

  private renderProgress(): TemplateResult {
    const p = this.progress;
    const total = p && p.totalBytes > 0 ? p.totalBytes : undefined;
    return html`
      <div class="loading" ?hidden=${!this.loading}>
        <progress
          id="model-progress"
          aria-label="Model loading progress"
          max=${total ?? (p ? 1 : nothing)}
          value=${p ? (total ? Math.min(p.loadedBytes, total) : p.phase === 'ready' ? 1 : 0) : nothing}
        ></progress>
        <button id="model-cancel" type="button" ?disabled=${!this.loading || this.cancelling} @click=${this.cancel}>Cancel</button>
      </div>
    `;
  }

  private renderError(): TemplateResult | typeof nothing {
    const e = this.error;
    if (!e) return nothing;
    return html`
      <div id="model-error" class="error" role="alert" data-code=${e.code}>
        <p class="error-title">${e.title}</p>
        <p>${e.message}</p>
        ${e.advice.length ? html`<ul class="advice">${e.advice.map((a) => html`<li>${a}</li>`)}</ul>` : nothing}
        ${e.retry && this.lastSource
          ? html`<div class="row">
              <button id="model-retry" type="button" ?disabled=${this.loading || this.busy} @click=${() => this.lastSource && void this.load(this.lastSource)}>Retry</button>
            </div>`
          : nothing}
        <details>
          <summary>Technical details</summary>
          <p class="detail">${e.detail}</p>
        </details>
      </div>
    `;
  }

  private renderCached(): TemplateResult {
    const files = this.cached ?? [];
    return html`
      <section class="cached" aria-labelledby="cached-heading">
        <h3 id="cached-heading">Saved in this browser</h3>
        ${files.length === 0 ? html`<p class="muted">${this.cached ? 'No models saved yet. A model downloaded from a URL is kept here for the next visit.' : '…'}</p>` : nothing}
        <ul id="cached-models">
          ${files.map((f) => {
            const name = presetForUrl(f.url)?.name ?? fileNameOf(f.url);
            return html`<li data-url=${f.url}>
              <span class="cached-name" title=${f.url}>${name}</span>
              <span class="muted cached-size">${formatBytes(f.bytes)}</span>
              <span class="cached-actions">
                <button type="button" aria-label=${`Choose ${name}`} ?disabled=${this.loading} @click=${() => void this.chooseCached(f.url)}>Choose</button>
                <button type="button" class="danger" aria-label=${`Remove ${name} from this browser`} ?disabled=${this.loading} @click=${() => void this.removeCached(f.url)}>
                  Remove
                </button>
              </span>
            </li>`;
          })}
        </ul>
      </section>
    `;
  }

  static override styles = [
    baseStyles,
    css`
      [hidden] {
        display: none !important;
      }
      form,
      .card {
        display: grid;
        gap: 0.75rem;
      }
      fieldset {
        border: none;
        margin: 0;
        padding: 0;
        min-width: 0;
        display: grid;
        gap: 0.5rem;
      }
      legend {
        font-size: 0.85rem;
        color: var(--muted);
        padding: 0;
        margin-bottom: 0.5rem;
      }
      .option {
        display: flex;
        gap: 0.6rem;
        align-items: flex-start;
        padding: 0.55rem 0.7rem;
        border: 1px solid var(--border);
        border-radius: 10px;
        background: var(--surface);
        color: var(--fg);
        font-size: 0.9rem;
        cursor: pointer;
      }
      .option:hover {
        background: var(--hover);
      }
      .option:has(input:checked) {
        border-color: var(--accent);
        background: var(--surface-2);
      }
      fieldset:disabled .option {
        cursor: not-allowed;
        opacity: 0.7;
      }
      input[type='radio'] {
        flex: none;
        width: 1.05rem;
        height: 1.05rem;
        min-height: 0;
        margin: 0.2rem 0 0;
        padding: 0;
        accent-color: var(--accent);
      }
      .option-body {
        display: grid;
        gap: 0.1rem;
        min-width: 0;
      }
      .option-head {
        display: flex;
        flex-wrap: wrap;
        align-items: baseline;
        gap: 0.2rem 0.5rem;
      }
      .option-name {
        font-weight: 600;
      }
      .option-size,
      .option-desc {
        color: var(--muted);
        font-size: 0.85rem;
      }
      .license {
        white-space: nowrap;
      }
      .field {
        display: grid;
        gap: 0.25rem;
        min-width: 0;
      }
      .field input {
        width: 100%;
      }
      .hint {
        font-size: 0.8rem;
      }
      .load-note {
        margin: 0;
      }
      .actions {
        gap: 0.5rem;
      }
      .loading {
        display: flex;
        align-items: center;
        gap: 0.75rem;
        margin-top: 0.75rem;
      }
      .loading progress {
        flex: 1;
      }
      .status {
        margin: 0.6rem 0 0;
        font-size: 0.85rem;
        color: var(--muted);
        overflow-wrap: anywhere;
      }
      .status[data-state='ready'] {
        color: var(--ok);
      }
      .card {
        border: 1px solid var(--border);
        border-radius: 10px;
        padding: 0.75rem;
        background: var(--surface-2);
      }
      .card:focus-visible {
        outline: 3px solid var(--focus);
      }
      .card-head {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.5rem;
      }
      .card-name {
        font-weight: 650;
        overflow-wrap: anywhere;
      }
      dl {
        display: grid;
        gap: 0.2rem;
        margin: 0;
        font-size: 0.85rem;
      }
      dl > div {
        display: grid;
        grid-template-columns: 6.5rem minmax(0, 1fr);
        gap: 0.5rem;
      }
      dt {
        color: var(--muted);
      }
      dd {
        margin: 0;
        overflow-wrap: anywhere;
      }
      .warning ul,
      .advice {
        margin: 0.25rem 0;
        padding-left: 1.2rem;
      }
      .error-title {
        font-weight: 650;
        margin-top: 0;
      }
      .error details {
        margin-top: 0.4rem;
        font-size: 0.8rem;
        color: var(--muted);
      }
      .detail {
        overflow-wrap: anywhere;
        font-family: ui-monospace, SFMono-Regular, Menlo, monospace;
      }
      .cached {
        margin-top: 0.5rem;
      }
      #cached-models {
        list-style: none;
        margin: 0;
        padding: 0;
      }
      #cached-models li {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.25rem 0.5rem;
        padding: 0.4rem 0;
        border-top: 1px solid var(--border);
        font-size: 0.85rem;
      }
      .cached-name {
        flex: 1 1 10rem;
        min-width: 0;
        overflow-wrap: anywhere;
      }
      .cached-actions {
        display: flex;
        gap: 0.4rem;
        margin-left: auto;
      }
    `,
  ];
}

customElements.define('chunklm-model-panel', ModelPanel);

declare global {
  interface HTMLElementTagNameMap {
    'chunklm-model-panel': ModelPanel;
  }
}
