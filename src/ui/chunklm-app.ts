// The demo page: one client (one Worker) shared by the panels, the state they share (the loaded
// model, the settings, the documents chosen, the answers so far), and the page's layout: a
// sidebar with the model, the documents and the settings; the conversation and the TTFT chart
// beside it (one column on a phone, in the same order as the keyboard goes).
import { LitElement, css, html, nothing } from 'lit';
import { ChunklmClient, type DocumentInfo, type ModelInfo } from '../api.ts';
import type { ChatPanel } from './chat-panel.ts';
import './chat-panel.ts';
import './documents-panel.ts';
import type { AnswerRecord, DemoSettings } from './events.ts';
import './model-panel.ts';
import type { SettingsPanel } from './settings-panel.ts';
import { loadSettings } from './settings-panel.ts';
import { baseStyles } from './theme.ts';
import './ttft-chart.ts';

const ANSWERS_KEY = 'chunklm.answers';
const KEPT_ANSWERS = 48;

/** The answers of earlier visits, so the chart shows the first (computed) TTFT beside the cached ones. */
function loadAnswers(): AnswerRecord[] {
  try {
    const saved = JSON.parse(localStorage.getItem(ANSWERS_KEY) ?? '[]') as unknown;
    if (!Array.isArray(saved)) return [];
    return saved.filter((a): a is AnswerRecord => typeof a === 'object' && a !== null && typeof a.ttftMs === 'number' && typeof a.n === 'number' && typeof a.sources === 'object');
  } catch {
    return [];
  }
}

function saveAnswers(answers: AnswerRecord[]): void {
  try {
    localStorage.setItem(ANSWERS_KEY, JSON.stringify(answers.slice(-KEPT_ANSWERS)));
  } catch {
    // Storage refused: the chart lasts for this visit.
  }
}

/**
 * The demo application. `getClient()` gives its one ChunklmClient (main.ts exposes it as
 * `window.chunklm`).
 */
export class ChunklmApp extends LitElement {
  static override properties = {
    client: { state: true },
    clientError: { state: true },
    model: { state: true },
    settings: { state: true },
    selection: { state: true },
    titles: { state: true },
    answers: { state: true },
    busy: { state: true },
  };

  declare private client: ChunklmClient | undefined;
  declare private clientError: Error | undefined;
  declare private model: ModelInfo | undefined;
  declare private settings: DemoSettings;
  declare private selection: string[];
  declare private titles: Record<string, string>;
  declare private answers: AnswerRecord[];
  declare private busy: boolean;

  private clientPromise: Promise<ChunklmClient> | undefined;
  private offChange: (() => void) | undefined;

  constructor() {
    super();
    this.settings = loadSettings();
    this.selection = [];
    this.titles = {};
    this.answers = loadAnswers();
    this.busy = false;
  }

  /** The page's client, started once (a failure is shown, and the next call tries again). */
  getClient(): Promise<ChunklmClient> {
    this.clientPromise ??= ChunklmClient.create().then(
      (client) => {
        this.client = client;
        this.clientError = undefined;
        this.offChange = client.documents.onChange(() => void this.refreshTitles());
        void this.refreshTitles();
        return client;
      },
      (err: unknown) => {
        this.clientPromise = undefined;
        this.clientError = err instanceof Error ? err : new Error(String(err));
        throw err;
      },
    );
    return this.clientPromise;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    void this.getClient().catch(() => undefined);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.offChange?.();
  }

  private async refreshTitles(): Promise<void> {
    if (!this.client) return;
    try {
      const docs: DocumentInfo[] = await this.client.documents.list();
      this.titles = Object.fromEntries(docs.map((d) => [d.id, d.title]));
    } catch {
      // The store is not readable yet; titles fall back to ids.
    }
    await this.settingsPanel()?.refresh();
  }

  private settingsPanel(): SettingsPanel | null {
    return this.renderRoot.querySelector('chunklm-settings');
  }

  /** The chat element, for scripts: `ask(question)`, `stop()`. */
  get chat(): ChatPanel | null {
    return this.renderRoot.querySelector('chunklm-chat');
  }

  private async onModelLoaded(e: CustomEvent<ModelInfo>): Promise<void> {
    this.model = e.detail;
    await this.applyChunkSize();
    await this.refreshTitles();
  }

  /** Documents added from now on are split at the settings' chunk size. */
  private async applyChunkSize(): Promise<void> {
    if (!this.client || !this.model) return;
    try {
      await this.client.documents.configure({ targetTokens: this.settings.chunkTokens });
    } catch (err) {
      console.warn('chunklm: the chunk size was not applied:', err);
    }
  }

  private onSettings(e: CustomEvent<DemoSettings>): void {
    const chunkChanged = e.detail.chunkTokens !== this.settings.chunkTokens;
    this.settings = e.detail;
    if (chunkChanged) void this.applyChunkSize();
  }

  private onAnswer(e: CustomEvent<AnswerRecord>): void {
    const last = this.answers.at(-1)?.n ?? 0;
    this.answers = [...this.answers, { ...e.detail, n: last + 1 }].slice(-KEPT_ANSWERS);
    saveAnswers(this.answers);
    void this.settingsPanel()?.refresh();
  }

  private clearChart(): void {
    this.answers = [];
    saveAnswers([]);
  }

  override render() {
    const noWebGPU = typeof navigator !== 'undefined' && !('gpu' in navigator);
    return html`
      <header>
        <div class="brand">
          <span class="logo" aria-hidden="true">◆</span>
          <div>
            <h1>chunklm</h1>
            <p class="tagline">Ask about your documents, in this tab. Each document is read once; its KV chunks are kept in this browser and reused for every later question, even after a reload.</p>
          </div>
        </div>
        ${this.model ? html`<span class="badge ok" id="app-model-badge">${this.model.name} · ${this.model.weightType}</span>` : nothing}
      </header>
      ${noWebGPU
        ? html`<p class="error" role="alert" id="no-webgpu">
            This browser has no WebGPU, which chunklm needs to run models. Use a recent Chrome or Edge (113 or later) on a desktop, with hardware
            acceleration on; on Linux, enable it at chrome://flags/#enable-unsafe-webgpu.
          </p>`
        : nothing}
      ${this.clientError
        ? html`<p class="error" role="alert" id="app-error">
            The model's Worker did not start: ${this.clientError.message}
            <button @click=${() => void this.getClient().catch(() => undefined)}>Try again</button>
          </p>`
        : nothing}
      <main>
        <div class="side">
          <chunklm-model-panel
            .client=${this.client}
            .kvDtype=${this.settings.kvDtype}
            .busy=${this.busy}
            @chunklm-model-loaded=${(e: CustomEvent<ModelInfo>) => void this.onModelLoaded(e)}
            @chunklm-model-unloaded=${() => (this.model = undefined)}
          ></chunklm-model-panel>
          <chunklm-documents-panel
            .client=${this.client}
            .modelLoaded=${this.model !== undefined}
            .busy=${this.busy}
            @chunklm-selection-changed=${(e: CustomEvent<string[]>) => (this.selection = e.detail)}
            @chunklm-documents-changed=${() => void this.refreshTitles()}
          ></chunklm-documents-panel>
        </div>
        <div class="content">
          <chunklm-chat
            .client=${this.client}
            .model=${this.model}
            .documents=${this.selection}
            .titles=${this.titles}
            .settings=${this.settings}
            @chunklm-busy=${(e: CustomEvent<boolean>) => (this.busy = e.detail)}
            @chunklm-answer=${this.onAnswer}
          ></chunklm-chat>
          <div class="chart">
            <chunklm-ttft-chart .answers=${this.answers}></chunklm-ttft-chart>
            ${this.answers.length > 0 ? html`<button class="link clear-chart" @click=${this.clearChart}>Clear the chart</button>` : nothing}
          </div>
          <chunklm-settings
            .client=${this.client}
            .settings=${this.settings}
            .modelLoaded=${this.model !== undefined}
            .busy=${this.busy}
            @chunklm-settings-changed=${this.onSettings}
            @chunklm-documents-changed=${() => void this.refreshTitles()}
          ></chunklm-settings>
        </div>
      </main>
      <footer class="muted">
        Everything runs on this device: the model on its GPU through WebGPU, documents in this browser's storage. Nothing you add leaves it.
      </footer>
    `;
  }

  static override styles = [
    baseStyles,
    css`
      :host {
        max-width: 88rem;
        margin: 0 auto;
        padding: 1rem 1.25rem 2rem;
      }
      header {
        display: flex;
        align-items: flex-start;
        justify-content: space-between;
        gap: 1rem;
        flex-wrap: wrap;
        margin-bottom: 1rem;
      }
      .brand {
        display: flex;
        gap: 0.75rem;
        align-items: flex-start;
      }
      .logo {
        font-size: 1.6rem;
        color: var(--accent);
        line-height: 1.2;
      }
      h1 {
        font-size: 1.5rem;
        margin: 0;
        letter-spacing: -0.01em;
      }
      .tagline {
        margin: 0.15rem 0 0;
        color: var(--muted);
        max-width: 48rem;
      }
      main {
        display: grid;
        grid-template-columns: minmax(20rem, 26rem) minmax(0, 1fr);
        gap: 1rem;
        align-items: start;
      }
      .side,
      .content {
        display: grid;
        gap: 1rem;
        min-width: 0;
      }
      .chart {
        position: relative;
      }
      .clear-chart {
        position: absolute;
        top: 1rem;
        right: 1rem;
        font-size: 0.8rem;
      }
      footer {
        margin-top: 1.5rem;
        text-align: center;
      }
      @media (max-width: 860px) {
        :host {
          padding: 0.75rem 0.75rem 1.5rem;
        }
        main {
          grid-template-columns: minmax(0, 1fr);
        }
        .side,
        .content {
          display: contents;
        }
        /* One column: model, documents, conversation, chart, settings. */
        chunklm-model-panel {
          order: 1;
        }
        chunklm-documents-panel {
          order: 2;
        }
        chunklm-chat {
          order: 3;
        }
        .chart {
          order: 4;
        }
        chunklm-settings {
          order: 5;
        }
        main {
          display: flex;
          flex-direction: column;
          /* Full width: panels sized by container queries have no width of their own. */
          align-items: stretch;
        }
      }
    `,
  ];
}

customElements.define('chunklm-app', ChunklmApp);

declare global {
  interface HTMLElementTagNameMap {
    'chunklm-app': ChunklmApp;
  }
}
