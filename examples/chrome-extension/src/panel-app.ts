// The extension's side panel: the demo's model panel, chat and TTFT chart as they are, around a
// "Pages" section of its own: the open tabs to read (http and https), the pages read before (their
// chunk KV in this extension's IndexedDB), and "Ask about these pages", which reads the chosen tabs
// into documents (only chunks whose text changed are computed) and asks through the chat.
// One ChunklmClient, so one engine Worker, for the panel; it lives as long as the panel is open.
/// <reference path="./chrome.d.ts" />
import { LitElement, css, html, nothing } from 'lit';
import { ChunklmClient, type DocumentInfo, type DocumentProgress, type ModelInfo } from '../../../src/api.ts';
import type { ChatPanel } from '../../../src/ui/chat-panel.ts';
import '../../../src/ui/chat-panel.ts';
import { DEFAULT_SETTINGS, type AnswerRecord, type DemoSettings } from '../../../src/ui/events.ts';
import type { ModelPanel } from '../../../src/ui/model-panel.ts';
import '../../../src/ui/model-panel.ts';
import { baseStyles } from '../../../src/ui/theme.ts';
import '../../../src/ui/ttft-chart.ts';
import { PAGE_ID_PREFIX, activePageTabId, listPageTabs, pageDocumentId, readTab, watchTabs, type PageTab } from './pages.ts';

/**
 * Tokens a page's chunk is filled to. Small, so that a chunk is about one paragraph of a web page:
 * when a page changes, only the chunks of the paragraphs that changed are computed again.
 */
export const PAGE_CHUNK_TOKENS = 64;

const SETTINGS: DemoSettings = { ...DEFAULT_SETTINGS, chunkTokens: PAGE_CHUNK_TOKENS };

/** localStorage key of the last model loaded from a URL, loaded again from the model cache when the panel opens. */
const LAST_MODEL_KEY = 'chunklm.extension.model';

/** What reading one chosen tab came to. */
interface PageRead {
  state: 'reading' | 'computing' | 'done' | 'error';
  docId?: string;
  /** The selection was read rather than the page. */
  selection?: boolean;
  progress?: DocumentProgress;
  chunks?: number;
  /** Chunks computed by this read (0: every chunk was cached). */
  computed?: number;
  message?: string;
}

/**
 * The side panel application. `client` is its one ChunklmClient once started (`getClient()`).
 *
 * Stable ids for tests: `#pages-tabs` (each open tab a `li[data-tab-id][data-url]` with a checkbox
 * and, once read, `.page-read[data-state][data-chunks][data-computed]`), `#pages-cached` (each page
 * read before a `li[data-id]`, `[data-cached]` when all its chunks are stored for the loaded model),
 * `#pages-question`, `#pages-ask`, `#pages-cancel`, `#pages-error`, `#pages-restore` (the model
 * restored from the cache).
 */
export class PanelApp extends LitElement {
  static override properties = {
    client: { state: true },
    clientError: { state: true },
    model: { state: true },
    tabs: { state: true },
    chosen: { state: true },
    reads: { state: true },
    documents: { state: true },
    asked: { state: true },
    answers: { state: true },
    busy: { state: true },
    reading: { state: true },
    error: { state: true },
    restoring: { state: true },
    settings: { attribute: false },
  };

  declare client: ChunklmClient | undefined;
  declare private clientError: Error | undefined;
  declare model: ModelInfo | undefined;
  declare private tabs: PageTab[];
  /** Tab ids ticked. */
  declare private chosen: ReadonlySet<number>;
  declare private reads: ReadonlyMap<number, PageRead>;
  /** Pages read before (documents with `page:` ids), or undefined until listed. */
  declare documents: DocumentInfo[] | undefined;
  /** Document ids of the last question, given to the chat. */
  declare private asked: string[];
  declare private answers: AnswerRecord[];
  /** An answer is streaming (the chat says). */
  declare private busy: boolean;
  declare private reading: AbortController | undefined;
  declare private error: string | undefined;
  declare private restoring: string | undefined;
  /** How questions are answered (the demo's settings with page-sized chunks); scripts may change it. */
  declare settings: DemoSettings;

  private clientPromise: Promise<ChunklmClient> | undefined;
  private unsubscribe: Array<() => void> = [];
  /** The visitor has ticked or unticked a tab: the active tab no longer changes the choice. */
  private userChose = false;

  constructor() {
    super();
    this.tabs = [];
    this.chosen = new Set();
    this.reads = new Map();
    this.asked = [];
    this.answers = [];
    this.busy = false;
    this.settings = SETTINGS;
  }

  /** Starts the panel's client once (a failure is shown, and the next call tries again). */
  getClient(): Promise<ChunklmClient> {
    this.clientPromise ??= ChunklmClient.create().then(
      (client) => {
        this.client = client;
        this.clientError = undefined;
        this.unsubscribe.push(client.documents.onChange(() => void this.refreshDocuments()));
        void this.refreshDocuments();
        void this.restoreModel(client);
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
    this.unsubscribe.push(watchTabs(() => void this.refreshTabs()));
    void this.refreshTabs();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    for (const off of this.unsubscribe.splice(0)) off();
    this.reading?.abort();
  }

  /** The chat element, for scripts. */
  get chat(): ChatPanel | null {
    return this.renderRoot.querySelector('chunklm-chat');
  }

  private get modelPanel(): ModelPanel | null {
    return this.renderRoot.querySelector('chunklm-model-panel');
  }

  private async refreshTabs(): Promise<void> {
    try {
      const tabs = await listPageTabs();
      const open = new Set(tabs.map((t) => t.tabId));
      let chosen = new Set([...this.chosen].filter((id) => open.has(id)));
      if (!this.userChose) {
        const active = await activePageTabId();
        chosen = new Set(active !== undefined ? [active] : []);
      }
      this.tabs = tabs;
      this.chosen = chosen;
      this.reads = new Map([...this.reads].filter(([id]) => open.has(id)));
    } catch (err) {
      this.error = `The open tabs could not be listed: ${(err as Error).message}`;
    }
  }

  private async refreshDocuments(): Promise<void> {
    if (!this.client) return;
    try {
      const docs = await this.client.documents.list();
      this.documents = docs.filter((d) => d.id.startsWith(PAGE_ID_PREFIX)).sort((a, b) => b.lastUsedAt - a.lastUsedAt);
    } catch {
      // The store is not readable yet; the list stays as it was.
    }
  }

  /**
   * Loads the last model again when the model cache holds it: reopening the panel costs the GPU
   * upload, not a download. A model loaded from local files is not remembered (no URL to load).
   */
  private async restoreModel(client: ChunklmClient): Promise<void> {
    const url = readLastModel();
    if (!url) return;
    try {
      const cached = await client.models.list();
      if (!cached.some((f) => f.url === url)) return;
    } catch {
      return;
    }
    await this.updateComplete;
    const panel = this.modelPanel;
    if (!panel || panel.info) return;
    await panel.updateComplete;
    this.restoring = url;
    try {
      await panel.load(url);
    } finally {
      this.restoring = undefined;
    }
  }

  private async onModelLoaded(e: CustomEvent<ModelInfo>): Promise<void> {
    this.model = e.detail;
    const url = e.detail.files?.[0]?.url;
    if (url) writeLastModel(url);
    try {
      await this.client?.documents.configure({ targetTokens: this.settings.chunkTokens });
    } catch (err) {
      console.warn('chunklm: the chunk size was not applied:', err);
    }
    await this.refreshDocuments();
  }

  private toggleTab(tabId: number, on: boolean): void {
    this.userChose = true;
    const next = new Set(this.chosen);
    if (on) next.add(tabId);
    else next.delete(tabId);
    this.chosen = next;
  }

  private setRead(tabId: number, read: PageRead): void {
    this.reads = new Map(this.reads).set(tabId, read);
  }

  /**
   * Reads the chosen tabs into documents (each replaces its page's earlier read; chunks already
   * stored are not computed again) and asks `question` about them through the chat. Resolves when
   * the answer ends; undefined when nothing was asked (no model, no page could be read, cancelled).
   */
  async askAboutPages(question: string): Promise<void> {
    const client = this.client;
    const q = question.trim();
    if (!client || !this.model || !q || this.reading || this.busy) return;
    const tabs = this.tabs.filter((t) => this.chosen.has(t.tabId));
    if (tabs.length === 0) {
      this.error = 'Choose at least one page to ask about.';
      return;
    }
    this.error = undefined;
    const ctrl = new AbortController();
    this.reading = ctrl;
    const ids: string[] = [];
    try {
      for (const tab of tabs) {
        if (ctrl.signal.aborted) break;
        this.setRead(tab.tabId, { state: 'reading' });
        try {
          const page = await readTab(tab.tabId);
          const docId = await pageDocumentId(page.url);
          const selection = page.from === 'selection';
          this.setRead(tab.tabId, { state: 'computing', docId, selection });
          // Progress reports come through their own message channel and can arrive after the add
          // has returned: one that late must not overwrite the result.
          let added = false;
          const onProgress = (progress: DocumentProgress): void => {
            if (!added) this.setRead(tab.tabId, { state: 'computing', docId, selection, progress });
          };
          const info = await client.documents.add({ id: docId, title: page.title, text: page.text }, { signal: ctrl.signal, onProgress }).finally(() => (added = true));
          this.setRead(tab.tabId, { state: 'done', docId, selection, chunks: info.chunks, computed: info.computedChunks ?? 0 });
          if (!ids.includes(docId)) ids.push(docId);
        } catch (err) {
          const aborted = ctrl.signal.aborted;
          this.setRead(tab.tabId, { state: 'error', message: aborted ? 'cancelled' : ((err as Error)?.message ?? String(err)) });
        }
      }
    } finally {
      this.reading = undefined;
      void this.refreshDocuments();
    }
    if (ctrl.signal.aborted) return;
    if (ids.length === 0) {
      this.error = 'None of the chosen pages could be read; see the message beside each.';
      return;
    }
    this.asked = ids;
    await this.updateComplete;
    const chat = this.chat;
    if (!chat) return;
    await chat.updateComplete;
    const field = this.renderRoot.querySelector<HTMLTextAreaElement>('#pages-question');
    if (field) field.value = '';
    await chat.ask(q);
  }

  private async removeDocument(id: string): Promise<void> {
    try {
      await this.client?.documents.remove(id);
    } catch (err) {
      this.error = `The page could not be removed: ${(err as Error).message}`;
    }
    this.asked = this.asked.filter((a) => a !== id);
    await this.refreshDocuments();
  }

  private onAsk(e: Event): void {
    e.preventDefault();
    const field = this.renderRoot.querySelector<HTMLTextAreaElement>('#pages-question');
    void this.askAboutPages(field?.value ?? '');
  }

  private onAnswer(e: CustomEvent<AnswerRecord>): void {
    const last = this.answers.at(-1)?.n ?? 0;
    this.answers = [...this.answers, { ...e.detail, n: last + 1 }].slice(-24);
    void this.refreshDocuments();
  }

  private titles(): Record<string, string> {
    return Object.fromEntries((this.documents ?? []).map((d) => [d.id, d.title]));
  }

  override render() {
    const noWebGPU = typeof navigator !== 'undefined' && !('gpu' in navigator);
    return html`
      <header>
        <h1><span class="logo" aria-hidden="true">◆</span> chunklm</h1>
        <p class="muted">Ask about your open pages with a model that runs on this computer. Page text never leaves it.</p>
      </header>
      ${noWebGPU ? html`<p class="error" role="alert">This browser has no WebGPU, which chunklm needs. Use a recent Chrome with hardware acceleration on.</p>` : nothing}
      ${this.clientError
        ? html`<p class="error" role="alert">
            The model's Worker did not start: ${this.clientError.message}
            <button @click=${() => void this.getClient().catch(() => undefined)}>Try again</button>
          </p>`
        : nothing}
      ${this.restoring ? html`<p class="muted" id="pages-restore" role="status">Loading the last model from this extension's cache…</p>` : nothing}
      <chunklm-model-panel
        .client=${this.client}
        .kvDtype=${this.settings.kvDtype}
        .localDemo=${false}
        .busy=${this.busy || this.reading !== undefined}
        @chunklm-model-loaded=${(e: CustomEvent<ModelInfo>) => void this.onModelLoaded(e)}
        @chunklm-model-unloaded=${() => (this.model = undefined)}
      ></chunklm-model-panel>
      ${this.renderPages()}
      <chunklm-chat
        .client=${this.client}
        .model=${this.model}
        .documents=${this.asked}
        .titles=${this.titles()}
        .settings=${this.settings}
        @chunklm-busy=${(e: CustomEvent<boolean>) => (this.busy = e.detail)}
        @chunklm-answer=${this.onAnswer}
        @chunklm-documents-changed=${() => void this.refreshDocuments()}
      ></chunklm-chat>
      ${this.answers.length > 0 ? html`<chunklm-ttft-chart .answers=${this.answers}></chunklm-ttft-chart>` : nothing}
    `;
  }

  private renderPages() {
    const ready = this.model !== undefined && this.client !== undefined;
    const reading = this.reading !== undefined;
    return html`
      <section class="panel" aria-labelledby="pages-heading">
        <h2 id="pages-heading">Pages</h2>
        <h3 id="pages-tabs-heading">Open tabs</h3>
        ${this.tabs.length === 0 ? html`<p class="muted">No web pages are open.</p>` : nothing}
        <ul id="pages-tabs" aria-labelledby="pages-tabs-heading">
          ${this.tabs.map((t) => {
            const read = this.reads.get(t.tabId);
            const box = `tab-${t.tabId}`;
            return html`<li data-tab-id=${t.tabId} data-url=${t.url}>
              <input type="checkbox" id=${box} .checked=${this.chosen.has(t.tabId)} ?disabled=${reading} @change=${(e: Event) => this.toggleTab(t.tabId, (e.target as HTMLInputElement).checked)} />
              <label for=${box} title=${t.url}>${t.title}</label>
              ${read ? this.renderRead(read) : nothing}
            </li>`;
          })}
        </ul>
        <form class="ask" @submit=${this.onAsk}>
          <label for="pages-question">Question</label>
          <textarea
            id="pages-question"
            rows="2"
            placeholder=${ready ? 'What do these pages say about…' : 'Load a model first'}
            ?disabled=${!ready}
            @keydown=${(e: KeyboardEvent) => e.key === 'Enter' && !e.shiftKey && !e.isComposing && this.onAsk(e)}
          ></textarea>
          <div class="row">
            <button id="pages-ask" class="primary" type="submit" ?disabled=${!ready || reading || this.busy || this.chosen.size === 0}>Ask about these pages</button>
            ${reading ? html`<button id="pages-cancel" type="button" @click=${() => this.reading?.abort()}>Cancel</button>` : nothing}
          </div>
        </form>
        ${this.error ? html`<p id="pages-error" class="error" role="alert">${this.error}</p>` : nothing}
        <h3 id="pages-cached-heading">Read before</h3>
        ${this.documents?.length === 0 ? html`<p class="muted">Pages you ask about are kept here, so asking again computes nothing.</p>` : nothing}
        <ul id="pages-cached" aria-labelledby="pages-cached-heading">
          ${(this.documents ?? []).map((d) => {
            const cached = this.model !== undefined && d.currentModel && d.storedChunks === d.chunks;
            return html`<li data-id=${d.id} ?data-cached=${cached}>
              <span class="name" title=${d.title}>${d.title}</span>
              <span class="muted">${d.chunks} chunks · ${documentStatus(d, this.model !== undefined)}</span>
              <button type="button" class="link" aria-label=${`Forget ${d.title}`} ?disabled=${reading || this.busy} @click=${() => void this.removeDocument(d.id)}>Forget</button>
            </li>`;
          })}
        </ul>
      </section>
    `;
  }

  private renderRead(r: PageRead) {
    let text: string;
    switch (r.state) {
      case 'reading':
        text = 'reading the page…';
        break;
      case 'computing':
        text = r.progress && r.progress.total > 0 ? `${r.progress.phase} ${r.progress.done}/${r.progress.total} chunks` : 'reading…';
        break;
      case 'done':
        text = `${r.chunks} chunks, ${r.computed} computed${r.selection ? ' (the selection)' : ''}`;
        break;
      case 'error':
        text = r.message ?? 'failed';
        break;
    }
    return html`<span class="page-read ${r.state}" data-state=${r.state} data-chunks=${r.chunks ?? nothing} data-computed=${r.computed ?? nothing} role=${r.state === 'error' ? 'alert' : nothing}
      >${text}</span
    >`;
  }

  static override styles = [
    baseStyles,
    css`
      :host {
        display: grid;
        gap: 0.75rem;
        padding: 0.75rem;
        max-width: 48rem;
        margin: 0 auto;
      }
      header h1 {
        font-size: 1.2rem;
        margin: 0;
      }
      header p {
        margin: 0.1rem 0 0;
      }
      .logo {
        color: var(--accent);
      }
      ul {
        list-style: none;
        margin: 0 0 0.5rem;
        padding: 0;
        display: grid;
        gap: 0.35rem;
      }
      li {
        display: grid;
        grid-template-columns: auto minmax(0, 1fr) auto;
        gap: 0.1rem 0.5rem;
        align-items: center;
      }
      li label,
      li .name {
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
        color: var(--fg);
        font-size: 0.9rem;
      }
      #pages-cached li {
        grid-template-columns: minmax(0, 1fr) auto auto;
      }
      .page-read {
        grid-column: 2 / -1;
        font-size: 0.8rem;
        color: var(--muted);
      }
      .page-read.error {
        color: var(--danger);
      }
      .ask {
        display: grid;
        gap: 0.4rem;
        margin: 0.5rem 0;
      }
    `,
  ];
}

function documentStatus(d: DocumentInfo, modelLoaded: boolean): string {
  if (!modelLoaded) return 'stored';
  if (!d.currentModel) return 'read for another model: read again when asked';
  if (d.storedChunks < d.chunks) return `${d.storedChunks} stored, the rest computed when asked`;
  return 'cached';
}

function readLastModel(): string | undefined {
  try {
    return localStorage.getItem(LAST_MODEL_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

function writeLastModel(url: string): void {
  try {
    localStorage.setItem(LAST_MODEL_KEY, url);
  } catch {
    // Storage refused: the next panel starts without a model.
  }
}

customElements.define('chunklm-extension-app', PanelApp);

declare global {
  interface HTMLElementTagNameMap {
    'chunklm-extension-app': PanelApp;
  }
}
