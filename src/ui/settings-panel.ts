// How answers are made (linking method, k, ratio, chunk size, KV precision, sampling) and what
// the chunk cache holds (storage used, budget, hits per tier), with the means to empty it.
import { LitElement, css, html, nothing } from 'lit';
import { type ChunklmClient, type DocumentStats, formatBytes, LINK_METHODS, type LinkMethod } from '../api.ts';
import { DEFAULT_SETTINGS, emit, type DemoSettings } from './events.ts';
import { saveSettings } from './settings-store.ts';
import { baseStyles } from './theme.ts';

// The app reads the settings through this module; they live in settings-store.ts.
export { loadSettings } from './settings-store.ts';

const METHOD_HELP: Record<LinkMethod, string> = {
  full: 'Read everything again: no reuse (the baseline).',
  prefix: 'Reuse an exactly matching earlier prompt prefix.',
  naive: 'Reuse every cached chunk as is: fastest, least exact.',
  attnlink: 'Reuse cached chunks, recompute the first k tokens of each (EPIC AttnLink).',
  cacheblend: 'Reuse cached chunks, recompute the share of tokens that deviate most (CacheBlend).',
};

/**
 * The settings and the cache panel.
 *
 * Stable ids: `set-method`, `set-k`, `set-ratio`, `set-chunk-tokens`, `set-kv-dtype`,
 * `set-max-tokens`, `set-temperature`, `set-top-k`, `set-top-p`, `set-seed`, `cache-stats`
 * (with `data-*` numbers), `cache-budget`, `cache-free`, `cache-clear`.
 *
 * @fires chunklm-settings-changed - A setting changed; `detail` is all of them.
 * @fires chunklm-documents-changed - The cache was emptied.
 */
export class SettingsPanel extends LitElement {
  static override properties = {
    client: { attribute: false },
    settings: { attribute: false },
    modelLoaded: { type: Boolean },
    busy: { type: Boolean },
    stats: { state: true },
    message: { state: true },
    confirmClear: { state: true },
  };

  declare client: ChunklmClient | undefined;
  declare settings: DemoSettings;
  declare modelLoaded: boolean;
  declare busy: boolean;
  declare private stats: DocumentStats | undefined;
  declare private message: string | undefined;
  declare private confirmClear: boolean;

  constructor() {
    super();
    this.client = undefined;
    this.settings = DEFAULT_SETTINGS;
    this.modelLoaded = false;
    this.busy = false;
    this.confirmClear = false;
  }

  /** Reads the cache's numbers again (the app calls it after each answer and each documents change). */
  async refresh(): Promise<void> {
    if (!this.client) return;
    try {
      this.stats = await this.client.documents.stats();
    } catch {
      // No store yet (the Worker is starting): the panel shows no numbers.
    }
  }

  private change(patch: Partial<DemoSettings>): void {
    this.settings = { ...this.settings, ...patch };
    saveSettings(this.settings);
    emit(this, 'chunklm-settings-changed', this.settings);
  }

  private num(e: Event, key: keyof DemoSettings, ok: (n: number) => boolean, integer = true): void {
    const input = e.target as HTMLInputElement;
    const raw = input.value.trim();
    if (key === 'seed' && raw === '') {
      input.setCustomValidity('');
      this.change({ seed: undefined });
      return;
    }
    const n = Number(raw);
    if (raw === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || !ok(n)) {
      input.setCustomValidity('out of range');
      input.reportValidity();
      return;
    }
    input.setCustomValidity('');
    this.change({ [key]: n } as Partial<DemoSettings>);
  }

  private async freeCaches(): Promise<void> {
    if (!this.client) return;
    try {
      const gpu = await this.client.documents.evict('gpu');
      const memory = await this.client.documents.evict('memory');
      this.message = `Freed ${gpu} chunks from the GPU and ${memory} from memory; IndexedDB keeps them.`;
    } catch (err) {
      this.message = (err as Error).message;
    }
    await this.refresh();
  }

  private async clearAll(): Promise<void> {
    this.confirmClear = false;
    if (!this.client) return;
    try {
      await this.client.documents.clear();
      this.message = 'Every document and its stored chunks were deleted.';
      emit(this, 'chunklm-documents-changed', undefined);
    } catch (err) {
      this.message = (err as Error).message;
    }
    await this.refresh();
  }

  private async setBudget(e: Event): Promise<void> {
    const input = e.target as HTMLInputElement;
    const mib = Number(input.value);
    if (!this.client || !Number.isFinite(mib) || mib < 1) {
      input.setCustomValidity('at least 1 MiB');
      input.reportValidity();
      return;
    }
    input.setCustomValidity('');
    try {
      await this.client.documents.setBudget(Math.round(mib * 1024 * 1024));
      this.message = `Storage budget set to ${formatBytes(mib * 1024 * 1024)}.`;
    } catch (err) {
      this.message = (err as Error).message;
    }
    await this.refresh();
  }

  override render() {
    const s = this.settings;
    return html`
      <section class="panel" aria-labelledby="settings-heading">
        <h2 id="settings-heading">Settings</h2>
        <div class="grid">
          <div class="field wide">
            <label for="set-method">How cached chunks are used</label>
            <select id="set-method" .value=${s.method} @change=${(e: Event) => this.change({ method: (e.target as HTMLSelectElement).value as LinkMethod })}>
              ${LINK_METHODS.map((m) => html`<option value=${m} ?selected=${m === s.method}>${m}</option>`)}
            </select>
            <span class="muted" id="method-help">${METHOD_HELP[s.method]}</span>
          </div>
          <div class="field">
            <label for="set-k">AttnLink k</label>
            <input id="set-k" type="number" min="0" max="512" step="1" .value=${String(s.k)} ?disabled=${s.method !== 'attnlink'} @change=${(e: Event) => this.num(e, 'k', (n) => n >= 0 && n <= 512)} />
          </div>
          <div class="field">
            <label for="set-ratio">CacheBlend ratio</label>
            <input id="set-ratio" type="number" min="0" max="1" step="0.05" .value=${String(s.ratio)} ?disabled=${s.method !== 'cacheblend'} @change=${(e: Event) => this.num(e, 'ratio', (n) => n >= 0 && n <= 1, false)} />
          </div>
          <div class="field">
            <label for="set-chunk-tokens">Chunk size (tokens)</label>
            <input id="set-chunk-tokens" type="number" min="16" max="4096" step="16" .value=${String(s.chunkTokens)} aria-describedby="chunk-help" @change=${(e: Event) => this.num(e, 'chunkTokens', (n) => n >= 16 && n <= 4096)} />
          </div>
          <div class="field">
            <label for="set-kv-dtype">KV precision</label>
            <select id="set-kv-dtype" aria-describedby="kv-help" @change=${(e: Event) => this.change({ kvDtype: (e.target as HTMLSelectElement).value === 'f32' ? 'f32' : 'f16' })}>
              <option value="f16" ?selected=${s.kvDtype === 'f16'}>f16 (half the memory)</option>
              <option value="f32" ?selected=${s.kvDtype === 'f32'}>f32</option>
            </select>
          </div>
          <p class="muted wide" id="chunk-help">
            Documents read with another chunk size stay stored and are read again when next used. KV precision applies at the next model load.
            <span id="kv-help"></span>
          </p>
          <div class="field">
            <label for="set-max-tokens">Max answer tokens</label>
            <input id="set-max-tokens" type="number" min="1" max="4096" .value=${String(s.maxTokens)} @change=${(e: Event) => this.num(e, 'maxTokens', (n) => n >= 1 && n <= 4096)} />
          </div>
          <div class="field">
            <label for="set-temperature">Temperature (0: greedy)</label>
            <input id="set-temperature" type="number" min="0" max="5" step="0.1" .value=${String(s.temperature)} @change=${(e: Event) => this.num(e, 'temperature', (n) => n >= 0 && n <= 5, false)} />
          </div>
          <div class="field">
            <label for="set-top-k">Top-k</label>
            <input id="set-top-k" type="number" min="0" max="1000" .value=${String(s.topK)} @change=${(e: Event) => this.num(e, 'topK', (n) => n >= 0 && n <= 1000)} />
          </div>
          <div class="field">
            <label for="set-top-p">Top-p</label>
            <input id="set-top-p" type="number" min="0.01" max="1" step="0.05" .value=${String(s.topP)} @change=${(e: Event) => this.num(e, 'topP', (n) => n > 0 && n <= 1, false)} />
          </div>
          <div class="field">
            <label for="set-seed">Seed</label>
            <input id="set-seed" type="number" min="0" placeholder="random" .value=${s.seed === undefined ? '' : String(s.seed)} @change=${(e: Event) => this.num(e, 'seed', (n) => n >= 0 && n < 2 ** 32)} />
          </div>
        </div>
        ${this.renderCache()}
      </section>
    `;
  }

  private renderCache() {
    const st = this.stats;
    const hits = st ? st.hits.gpu + st.hits.memory + st.hits.store : 0;
    const lookups = st ? hits + st.misses : 0;
    const rate = (n: number): string => (lookups > 0 ? `${Math.round((100 * n) / lookups)}%` : '–');
    const store = st?.tiers.store;
    return html`
      <h3>Chunk cache</h3>
      ${st
        ? html`<dl
            id="cache-stats"
            class="stats"
            data-documents=${st.documents}
            data-chunks=${st.chunks}
            data-store-bytes=${st.tiers.store.bytes}
            data-hits-gpu=${st.hits.gpu}
            data-hits-memory=${st.hits.memory}
            data-hits-store=${st.hits.store}
            data-misses=${st.misses}
          >
            <div><dt>Documents</dt><dd>${st.documents} · ${st.chunks} chunks · ${st.tokens} tokens</dd></div>
            <div>
              <dt>Stored (${store!.name})</dt>
              <dd>
                ${formatBytes(store!.bytes)} of ${formatBytes(store!.budgetBytes)} budget${store!.quotaBytes
                  ? html` · origin uses ${formatBytes(store!.usageBytes ?? 0)} of ${formatBytes(store!.quotaBytes)}`
                  : nothing}${store!.persisted ? ' · persistent' : ''}
              </dd>
            </div>
            <div><dt>On the GPU</dt><dd>${st.tiers.gpu.chunks} chunks · ${st.tiers.gpu.tokens} tokens</dd></div>
            <div><dt>In memory</dt><dd>${st.tiers.memory.chunks} chunks · ${formatBytes(st.tiers.memory.bytes)} of ${formatBytes(st.tiers.memory.budgetBytes)}</dd></div>
            <div>
              <dt>Hit rate</dt>
              <dd>GPU ${rate(st.hits.gpu)} · memory ${rate(st.hits.memory)} · IndexedDB ${rate(st.hits.store)} · computed ${rate(st.misses)}</dd>
            </div>
            ${st.corrupt > 0 ? html`<div><dt>Damaged entries</dt><dd>${st.corrupt} recomputed</dd></div>` : nothing}
          </dl>
          ${st.warnings.map((w) => html`<p class="warning">${w}</p>`)}`
        : html`<p class="muted">${this.modelLoaded ? 'Reading the cache…' : 'The cache’s numbers show once a model is loaded.'}</p>`}
      <div class="row cache-actions">
        <label for="cache-budget">Storage budget (MiB)</label>
        <input
          id="cache-budget"
          type="number"
          min="1"
          step="1"
          .value=${store ? String(Math.round(store.budgetBytes / 1024 / 1024)) : ''}
          ?disabled=${!this.modelLoaded}
          @change=${(e: Event) => void this.setBudget(e)}
        />
      </div>
      <div class="row cache-actions">
        <button id="cache-free" ?disabled=${!this.modelLoaded || this.busy} @click=${() => void this.freeCaches()}>Free GPU and memory</button>
        ${this.confirmClear
          ? html`<span role="group" aria-label="Confirm deleting every document">
              <span>Delete every document?</span>
              <button id="cache-clear-yes" class="danger" @click=${() => void this.clearAll()}>Delete</button>
              <button @click=${() => (this.confirmClear = false)}>Keep</button>
            </span>`
          : html`<button id="cache-clear" class="danger" ?disabled=${!this.modelLoaded || this.busy} @click=${() => (this.confirmClear = true)}>Delete all documents</button>`}
      </div>
      ${this.message ? html`<p class="muted" role="status">${this.message}</p>` : nothing}
    `;
  }

  static override styles = [
    baseStyles,
    css`
      .grid {
        display: grid;
        grid-template-columns: repeat(auto-fill, minmax(9.5rem, 1fr));
        gap: 0.75rem;
      }
      .field {
        display: flex;
        flex-direction: column;
        gap: 0.2rem;
      }
      .wide {
        grid-column: 1 / -1;
      }
      .stats {
        margin: 0;
        display: grid;
        gap: 0.3rem;
        font-size: 0.85rem;
      }
      .stats div {
        display: grid;
        grid-template-columns: 9rem 1fr;
        gap: 0.5rem;
      }
      dt {
        color: var(--muted);
      }
      dd {
        margin: 0;
      }
      .cache-actions {
        margin-top: 0.6rem;
      }
      #cache-budget {
        width: 7rem;
      }
      @media (max-width: 480px) {
        .stats div {
          grid-template-columns: 1fr;
          gap: 0;
        }
      }
    `,
  ];
}

customElements.define('chunklm-settings', SettingsPanel);

declare global {
  interface HTMLElementTagNameMap {
    'chunklm-settings': SettingsPanel;
  }
}
