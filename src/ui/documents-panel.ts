// The documents the visitor asks about: add them (pasted text, dropped .txt/.md/.html/.pdf files,
// .kvpack imports), choose which ones answers read, pin, export and remove them. Talks only to
// ChunklmClient.documents; files are turned into text on the page (ingest.ts).
import { LitElement, css, html, nothing, type PropertyValues, type TemplateResult } from 'lit';
import { AbortedError, ChunklmError, InvalidRequestError, formatBytes, type ChunklmClient, type DocumentInfo, type DocumentInput, type DocumentProgress } from '../api.ts';
import { emit } from './events.ts';
import { DOCUMENT_FILE_ACCEPT, markdownTitle, readDocumentFile, titleFromFileName } from './ingest.ts';
import { isAbort } from './load-errors.ts';
import { baseStyles } from './theme.ts';

/** localStorage key of the ids checked for answers (a JSON array). */
export const SELECTION_STORAGE_KEY = 'chunklm.selection';

/** One thing to add, in the order the visitor asked. */
type AddJob =
  | { kind: 'text'; title: string; text: string }
  | { kind: 'file'; title: string; file: File }
  | { kind: 'pack'; title: string; file: File };

/** The add being worked on: waiting for the engine, opening the file, reading it, importing. */
interface CurrentJob {
  job: AddJob;
  ctrl: AbortController;
  stage: 'waiting' | 'opening' | 'reading' | 'importing';
  /** The document's title once known (a file's comes from its contents). */
  title: string;
  progress?: DocumentProgress;
}

/**
 * The documents panel: a list of the stored documents with what is cached of each, and the
 * ways to add more. Adds go through a queue, one at a time: a file is opened (and refused, if
 * chunklm cannot read it) at once, then waits while no model is loaded or an answer streams
 * (`busy`; the engine runs one request at a time anyway), shown as "waiting" with a Cancel
 * button. Remove, pin and export go straight to the client (the Worker queues them).
 *
 * Stable ids: `#doc-text`, `#doc-title`, `#doc-add`, `#doc-files` (file input), `#doc-drop`,
 * `#doc-import`, `#doc-progress`, `#doc-cancel`, `#doc-status` (live status line),
 * `#documents-list` (each `li[data-id]`, with `data-status` cached | partial | stale, or stored before a model is loaded),
 * `#documents-error` (`data-code`), `#documents-clear`, `#documents-clear-yes`, `#documents-clear-no`.
 *
 * @fires chunklm-selection-changed - The documents checked for answers changed; `detail` is their ids in list order.
 * @fires chunklm-documents-changed - A document was added, imported, removed, pinned, or all were cleared (here or in another tab).
 */
export class DocumentsPanel extends LitElement {
  static override properties = {
    client: { attribute: false },
    modelLoaded: { type: Boolean, attribute: 'model-loaded' },
    busy: { type: Boolean },
    docs: { state: true },
    listUnavailable: { state: true },
    selected: { state: true },
    current: { state: true },
    queue: { state: true },
    error: { state: true },
    warnings: { state: true },
    status: { state: true },
    confirmingClear: { state: true },
    dragOver: { state: true },
    text: { state: true },
    titleText: { state: true },
    pendingIds: { state: true },
  };

  /** The page's client (set by the app; this element never creates one). */
  declare client: ChunklmClient | undefined;
  /** Whether a model is loaded: adding a document needs one. */
  declare modelLoaded: boolean;
  /** Whether an answer is streaming: adds wait until it ends. */
  declare busy: boolean;

  /** The stored documents, once listed. */
  declare private docs: DocumentInfo[] | undefined;
  /** Listing failed because no model is loaded yet (the engine opens the store with one). */
  declare private listUnavailable: boolean;
  /** Ids checked for answers, in list order. */
  declare private selected: string[];
  declare private current: CurrentJob | undefined;
  declare private queue: AddJob[];
  declare private error: Error | undefined;
  declare private warnings: string[];
  /** The polite live status line ("Reading x: chunk 3 of 10"). */
  declare private status: string;
  declare private confirmingClear: boolean;
  declare private dragOver: boolean;
  declare private text: string;
  declare private titleText: string;
  /** Documents with a pin, export or remove in flight (their buttons are disabled). */
  declare private pendingIds: ReadonlySet<string>;

  /** Ids seen in the last listing; undefined before the first (the stored selection applies then). */
  private knownIds: Set<string> | undefined;
  /** Ids added here that must be checked even if the listing that shows them is the first. */
  private readonly justAdded = new Set<string>();
  private lastEmitted: string | undefined;
  private listSeq = 0;
  private unsubscribe: (() => void) | undefined;
  private subscribedTo: ChunklmClient | undefined;
  private readyWaiters: Array<() => void> = [];
  private running = false;
  /** Where focus goes after the next render (an element that a removal or the confirm replaced). */
  private focusAfterRender: (() => HTMLElement | null | undefined) | undefined;

  constructor() {
    super();
    this.client = undefined;
    this.modelLoaded = false;
    this.busy = false;
    this.docs = undefined;
    this.listUnavailable = false;
    this.selected = [];
    this.current = undefined;
    this.queue = [];
    this.error = undefined;
    this.warnings = [];
    this.status = '';
    this.confirmingClear = false;
    this.dragOver = false;
    this.text = '';
    this.titleText = '';
    this.pendingIds = new Set();
  }

  /** The ids checked for answers, in list order (what the last selection event carried). */
  get selection(): string[] {
    return [...this.selected];
  }

  /** Lists the documents again (the app calls this after an answer read some again, for instance). */
  async refresh(): Promise<void> {
    const client = this.client;
    if (!client) return;
    const seq = ++this.listSeq;
    try {
      const docs = await client.documents.list();
      if (seq !== this.listSeq || client !== this.client) return;
      this.listUnavailable = false;
      this.applyList(docs);
    } catch (err) {
      if (seq !== this.listSeq) return;
      if (err instanceof ChunklmError && err.code === 'no-model') this.listUnavailable = true;
      else this.showError(err);
    }
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (this.client) this.subscribe();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.subscribedTo = undefined;
    this.cancel();
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (changed.has('client') || changed.has('modelLoaded')) {
      // The Worker attaches a listener to the engine's store only once the engine exists (at the
      // first model load), so subscribe again then.
      if (changed.has('modelLoaded') && this.modelLoaded) this.subscribedTo = undefined;
      this.subscribe();
      void this.refresh();
    } else if (changed.has('busy') && !this.busy && changed.get('busy') === true) {
      // An answer may have read documents again (stale or evicted ones): their status changed.
      void this.refresh();
    }
    if (this.ready) {
      const waiters = this.readyWaiters;
      this.readyWaiters = [];
      for (const wake of waiters) wake();
    }
    const target = this.focusAfterRender?.();
    if (this.focusAfterRender) {
      this.focusAfterRender = undefined;
      target?.focus();
    }
  }

  private get ready(): boolean {
    return this.client !== undefined && this.modelLoaded && !this.busy;
  }

  private subscribe(): void {
    if (this.subscribedTo === this.client && this.unsubscribe) return;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.subscribedTo = this.client;
    if (!this.client || !this.isConnected) return;
    this.unsubscribe = this.client.documents.onChange(() => {
      void this.refresh();
      emit(this, 'chunklm-documents-changed', undefined);
    });
  }

  // ------------------------------------------------------------------------------------------
  // Selection

  private applyList(docs: DocumentInfo[]): void {
    const ids = docs.map((d) => d.id);
    let checked: Set<string>;
    if (this.knownIds === undefined) {
      const stored = readStoredSelection();
      // First visit (nothing stored): every document is checked.
      checked = new Set(stored ?? ids);
    } else {
      checked = new Set(this.selected);
      for (const id of ids) if (!this.knownIds.has(id)) checked.add(id);
    }
    for (const id of this.justAdded) checked.add(id);
    this.justAdded.clear();
    this.knownIds = new Set(ids);
    this.docs = docs;
    this.setSelection(ids.filter((id) => checked.has(id)));
  }

  private setSelection(ids: string[]): void {
    this.selected = ids;
    if (this.knownIds === undefined) return; // nothing listed yet: keep what is stored
    try {
      localStorage.setItem(SELECTION_STORAGE_KEY, JSON.stringify(ids));
    } catch {
      // Storage refused (private mode, quota): the selection lasts for this page only.
    }
    const key = JSON.stringify(ids);
    if (key !== this.lastEmitted) {
      this.lastEmitted = key;
      emit(this, 'chunklm-selection-changed', [...ids]);
    }
  }

  private toggleSelected(id: string, on: boolean): void {
    const set = new Set(this.selected);
    if (on) set.add(id);
    else set.delete(id);
    this.setSelection((this.docs ?? []).map((d) => d.id).filter((x) => set.has(x)));
  }

  // ------------------------------------------------------------------------------------------
  // Adding

  private enqueue(jobs: AddJob[]): void {
    if (jobs.length === 0) return;
    this.error = undefined;
    this.warnings = [];
    this.queue = [...this.queue, ...jobs];
    void this.pump();
  }

  private addText(): void {
    const text = this.text;
    if (!text.trim()) {
      this.showError(new InvalidRequestError('empty-document', 'paste some text to add it as a document'));
      return;
    }
    const title = this.titleText.trim() || markdownTitle(text) || firstLine(text);
    this.text = '';
    this.titleText = '';
    this.enqueue([{ kind: 'text', title, text }]);
  }

  private addFiles(files: Iterable<File>): void {
    const jobs: AddJob[] = [];
    for (const file of files) {
      const pack = file.name.toLowerCase().endsWith('.kvpack');
      jobs.push({ kind: pack ? 'pack' : 'file', title: pack ? file.name : titleFromFileName(file.name), file });
    }
    this.enqueue(jobs);
  }

  /** Stops the add in progress and drops the ones waiting. */
  private cancel(): void {
    this.queue = [];
    this.current?.ctrl.abort();
  }

  /** Runs the queue, one add at a time. */
  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let job = this.queue[0]; job; job = this.queue[0]) {
        this.queue = this.queue.slice(1);
        await this.runJob(job);
      }
    } finally {
      this.running = false;
      this.current = undefined;
    }
  }

  private async runJob(job: AddJob): Promise<void> {
    const ctrl = new AbortController();
    const { signal } = ctrl;
    this.current = { job, ctrl, stage: 'waiting', title: job.title };
    try {
      // A file is opened at once, so that one chunklm cannot read says so without waiting for a model.
      let input: DocumentInput | undefined;
      if (job.kind === 'file') {
        this.setStage('opening', `Opening ${job.file.name}`);
        const doc = await readDocumentFile(job.file, { signal });
        input = { title: doc.title, text: doc.text };
        this.current = { ...this.current!, title: doc.title };
      } else if (job.kind === 'text') {
        input = { title: job.title, text: job.text };
      }
      const title = this.current!.title;
      if (!this.ready) {
        this.setStage('waiting', this.busy ? `Waiting for the answer to finish before reading ${title}` : `Waiting for a model before reading ${title}`);
        await this.untilReady(signal);
      }
      const client = this.client!;
      let info: DocumentInfo;
      if (job.kind === 'pack') {
        this.setStage('importing', `Importing ${job.file.name}`);
        info = await client.documents.import(job.file);
      } else {
        this.setStage('reading', `Reading ${title}`);
        info = await client.documents.add(input!, { signal, onProgress: (p) => this.onProgress(ctrl, p) });
      }
      // A cancel that came too late to stop it still leaves the document stored: show it.
      this.justAdded.add(info.id);
      if (!this.selected.includes(info.id)) this.selected = [...this.selected, info.id];
      this.status = describeAdded(info, job.kind === 'pack');
      if (info.warnings?.length) this.warnings = [...this.warnings, ...info.warnings.map((w) => `${info.title}: ${w}`)];
      await this.refresh();
      emit(this, 'chunklm-documents-changed', undefined);
    } catch (err) {
      const title = this.current?.title ?? job.title;
      if (isAbort(err)) {
        this.status = `Cancelled reading ${title}`;
      } else {
        this.showError(err);
        this.status = `Could not add ${title}`;
        // Give pasted text back rather than lose it.
        if (job.kind === 'text' && !this.text) {
          this.text = job.text;
          this.titleText = job.title;
        }
      }
    } finally {
      this.current = undefined;
    }
  }

  private setStage(stage: CurrentJob['stage'], status: string): void {
    if (this.current) this.current = { ...this.current, stage, progress: undefined };
    this.status = status;
  }

  private onProgress(ctrl: AbortController, p: DocumentProgress): void {
    const cur = this.current;
    if (!cur || cur.ctrl !== ctrl || ctrl.signal.aborted) return;
    this.current = { ...cur, progress: p };
    this.status = describeProgress(cur.title, p);
  }

  /** Resolves once a model is loaded and no answer streams; rejects with AbortedError on abort. */
  private untilReady(signal: AbortSignal): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(new AbortedError());
      signal.addEventListener('abort', onAbort, { once: true });
      this.readyWaiters.push(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  // ------------------------------------------------------------------------------------------
  // Per-document actions

  private async withDoc(id: string, action: (client: ChunklmClient) => Promise<void>): Promise<void> {
    const client = this.client;
    if (!client || this.pendingIds.has(id)) return;
    this.error = undefined;
    this.pendingIds = new Set([...this.pendingIds, id]);
    try {
      await action(client);
    } catch (err) {
      this.showError(err);
    } finally {
      const rest = new Set(this.pendingIds);
      rest.delete(id);
      this.pendingIds = rest;
    }
  }

  private togglePin(info: DocumentInfo): Promise<void> {
    return this.withDoc(info.id, async (client) => {
      const updated = await client.documents.pin(info.id, !info.pinned);
      this.status = updated.pinned ? `Pinned ${info.title}: its chunks are never evicted` : `Unpinned ${info.title}`;
      await this.refresh();
      emit(this, 'chunklm-documents-changed', undefined);
    });
  }

  private exportPack(info: DocumentInfo): Promise<void> {
    return this.withDoc(info.id, async (client) => {
      this.status = `Exporting ${info.title}`;
      const blob = await client.documents.export(info.id);
      const name = `${fileSafe(info.title)}.kvpack`;
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      a.hidden = true;
      this.renderRoot.appendChild(a);
      a.click();
      a.remove();
      // The download has started reading the Blob by now; a later revoke frees it.
      setTimeout(() => URL.revokeObjectURL(url), 30_000);
      this.status = `Exported ${name} (${formatBytes(blob.size)})`;
    });
  }

  private removeDoc(info: DocumentInfo): Promise<void> {
    const index = this.docs?.findIndex((d) => d.id === info.id) ?? -1;
    return this.withDoc(info.id, async (client) => {
      await client.documents.remove(info.id);
      this.status = `Removed ${info.title}`;
      await this.refresh();
      // The focused Remove button is gone: focus the row that took its place, or the heading.
      this.focusAfterRender = () => {
        const rows = this.renderRoot.querySelectorAll<HTMLElement>('#documents-list li');
        const row = rows[Math.min(index, rows.length - 1)];
        return row?.querySelector<HTMLElement>('input[type=checkbox]') ?? this.renderRoot.querySelector<HTMLElement>('#documents-heading');
      };
      this.requestUpdate();
      emit(this, 'chunklm-documents-changed', undefined);
    });
  }

  private askClear(on: boolean): void {
    this.confirmingClear = on;
    this.focusAfterRender = () => this.renderRoot.querySelector<HTMLElement>(on ? '#documents-clear-no' : '#documents-clear');
  }

  private async clearAll(): Promise<void> {
    const client = this.client;
    this.confirmingClear = false;
    if (!client) return;
    this.error = undefined;
    try {
      await client.documents.clear();
      this.status = 'Removed every document and its stored chunks';
      await this.refresh();
      emit(this, 'chunklm-documents-changed', undefined);
    } catch (err) {
      this.showError(err);
    }
    this.focusAfterRender = () => this.renderRoot.querySelector<HTMLElement>('#documents-heading');
    this.requestUpdate();
  }

  private showError(err: unknown): void {
    this.error = err instanceof Error ? err : new Error(String(err));
  }

  // ------------------------------------------------------------------------------------------
  // Drag and drop

  private onDragOver(ev: DragEvent): void {
    // Without preventDefault the browser opens the dropped file in place of the app.
    ev.preventDefault();
    if (ev.dataTransfer) ev.dataTransfer.dropEffect = this.canAdd ? 'copy' : 'none';
    this.dragOver = true;
  }

  private onDrop(ev: DragEvent): void {
    ev.preventDefault();
    this.dragOver = false;
    const files = ev.dataTransfer?.files;
    if (files && files.length > 0) this.addFiles(Array.from(files));
  }

  private onFilesChosen(ev: Event): void {
    const input = ev.target as HTMLInputElement;
    const files = Array.from(input.files ?? []);
    input.value = ''; // choosing the same file again fires change again
    this.addFiles(files);
  }

  private onPackChosen(ev: Event): void {
    const input = ev.target as HTMLInputElement;
    const files = Array.from(input.files ?? []);
    input.value = '';
    this.enqueue(files.map((file) => ({ kind: 'pack', title: file.name, file })));
  }

  /** Adds can be queued before a model loads: files are opened at once, then wait for it. */
  private get canAdd(): boolean {
    return this.client !== undefined;
  }

  // ------------------------------------------------------------------------------------------
  // Rendering

  protected override render(): TemplateResult {
    return html`
      <section class="panel" aria-labelledby="documents-heading">
        <h2 id="documents-heading" tabindex="-1">Documents</h2>
        ${this.renderAdd()} ${this.renderCurrent()}
        <p id="doc-status" class="muted status" role="status" aria-live="polite">${this.status}</p>
        ${this.renderError()}
        ${this.warnings.length ? html`<div class="warning" id="documents-warnings">${this.warnings.map((w) => html`<div>${w}</div>`)}</div>` : nothing}
        ${this.renderList()}
      </section>
    `;
  }

  private renderAdd(): TemplateResult {
    const off = !this.canAdd;
    return html`
      <div class="add" role="group" aria-labelledby="doc-add-heading">
        <h3 id="doc-add-heading">Add</h3>
        ${this.modelLoaded
          ? nothing
          : html`<p class="muted" id="doc-needs-model">
              First load a model to add documents: what you add before that is opened now and read once the model is loaded.
            </p>`}
        <label for="doc-text">Paste text</label>
        <textarea
          id="doc-text"
          rows="4"
          .value=${this.text}
          ?disabled=${off}
          placeholder="Notes, an article, a chapter…"
          @input=${(e: Event) => (this.text = (e.target as HTMLTextAreaElement).value)}
          @keydown=${(e: KeyboardEvent) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !off && this.text.trim()) {
              e.preventDefault();
              this.addText();
            }
          }}
        ></textarea>
        <div class="row title-row">
          <label for="doc-title">Title <span class="optional">(optional)</span></label>
          <input
            id="doc-title"
            type="text"
            .value=${this.titleText}
            ?disabled=${off}
            @input=${(e: Event) => (this.titleText = (e.target as HTMLInputElement).value)}
          />
          <button id="doc-add" class="primary" ?disabled=${off || !this.text.trim()} @click=${() => this.addText()}>Add text</button>
        </div>
        <div class="files">
          <div
            class="drop ${this.dragOver ? 'over' : ''} ${off ? 'off' : ''}"
            @dragenter=${(e: DragEvent) => this.onDragOver(e)}
            @dragover=${(e: DragEvent) => this.onDragOver(e)}
            @dragleave=${() => (this.dragOver = false)}
            @drop=${(e: DragEvent) => this.onDrop(e)}
          >
            <input id="doc-files" class="visually-hidden" type="file" multiple accept=${DOCUMENT_FILE_ACCEPT} ?disabled=${off} @change=${this.onFilesChosen} />
            <label id="doc-drop" for="doc-files">
              <span class="drop-main">Drop files here or <span class="fake-link">choose files</span></span>
              <span class="muted">.txt, .md, .html or .pdf, read in this browser</span>
            </label>
          </div>
          <div class="import">
            <input id="doc-import" class="visually-hidden" type="file" accept=".kvpack" ?disabled=${off} @change=${this.onPackChosen} />
            <label for="doc-import" class="button-like">Import .kvpack</label>
          </div>
        </div>
      </div>
    `;
  }

  private renderCurrent(): TemplateResult | typeof nothing {
    const cur = this.current;
    if (!cur) return nothing;
    const p = cur.progress;
    const determinate = p !== undefined && p.total > 0 && cur.stage === 'reading';
    const label = cur.stage === 'waiting' ? 'waiting' : cur.stage === 'opening' ? 'opening the file' : cur.stage === 'importing' ? 'importing' : p ? phaseLabel(p) : 'starting';
    return html`
      <div class="job" id="doc-job">
        <div class="row job-head">
          <span class="job-title">${cur.title}</span>
          <span class="muted">${label}${this.queue.length ? html` · ${this.queue.length} more waiting` : nothing}</span>
          <button
            id="doc-cancel"
            class="cancel"
            ?disabled=${cur.stage === 'importing'}
            aria-label=${`Cancel reading ${cur.title}${this.queue.length ? ' and the files waiting' : ''}`}
            @click=${() => this.cancel()}
          >
            Cancel
          </button>
        </div>
        <progress
          id="doc-progress"
          aria-label=${`Reading ${cur.title}`}
          max=${determinate ? p.total : 1}
          value=${determinate ? Math.min(p.done, p.total) : nothing}
        ></progress>
      </div>
    `;
  }

  private renderError(): TemplateResult | typeof nothing {
    const err = this.error;
    if (!err) return nothing;
    const code = err instanceof ChunklmError ? err.code : 'internal';
    return html`
      <div class="error" role="alert" id="documents-error" data-code=${code}>
        <span>${err.message}</span>
        <button class="link" @click=${() => (this.error = undefined)}>Dismiss</button>
      </div>
    `;
  }

  private renderList(): TemplateResult {
    const docs = this.docs;
    if (!docs) {
      const why = !this.client
        ? 'Waiting for the engine to start…'
        : this.listUnavailable
          ? 'Documents stored in this browser appear here once a model is loaded.'
          : 'Listing documents…';
      return html`<p class="muted" id="documents-empty">${why}</p>
        <ul id="documents-list" aria-labelledby="documents-heading"></ul>`;
    }
    const bytes = docs.reduce((s, d) => s + d.bytes, 0);
    return html`
      ${docs.length === 0
        ? html`<p class="empty" id="documents-empty">
            No documents yet. Add an article, notes or a PDF: chunklm reads a document once, stores its KV chunks in this
            browser, and reuses them for every question about it, even after a reload.
          </p>`
        : html`<p class="muted summary">
            ${plural(docs.length, 'document')} · ${formatBytes(bytes)} stored in this browser · checked documents are read with
            each question
          </p>`}
      <ul id="documents-list" aria-labelledby="documents-heading">
        ${docs.map((d) => this.renderDoc(d))}
      </ul>
      ${this.renderClear(docs.length)}
    `;
  }

  private renderDoc(d: DocumentInfo): TemplateResult {
    const boxId = `use-${cssId(d.id)}`;
    const status = docStatus(d, this.modelLoaded);
    const pending = this.pendingIds.has(d.id);
    return html`
      <li data-id=${d.id} data-status=${status.key}>
        <div class="doc-head">
          <input
            type="checkbox"
            id=${boxId}
            .checked=${this.selected.includes(d.id)}
            @change=${(e: Event) => this.toggleSelected(d.id, (e.target as HTMLInputElement).checked)}
          />
          <label for=${boxId} class="doc-title"
            ><span class="visually-hidden">Use </span>${d.title}<span class="visually-hidden"> in answers</span></label
          >
        </div>
        <div class="doc-meta muted">
          <span>${plural(d.chunks, 'chunk')}</span> · <span>${plural(d.tokens, 'token')}</span> ·
          <span>${formatBytes(d.bytes)}</span>
          <span class="badge ${status.cls}" title=${status.hint}>${status.label}</span>
          ${d.pinned ? html`<span class="badge pinned">pinned</span>` : nothing}
        </div>
        <div class="doc-actions row">
          <button
            class="pin"
            aria-pressed=${d.pinned ? 'true' : 'false'}
            aria-label=${`Pin ${d.title}`}
            title="A pinned document's chunks are never evicted from storage"
            ?disabled=${pending}
            @click=${() => this.togglePin(d)}
          >
            Pin
          </button>
          <button class="export" aria-label=${`Export .kvpack of ${d.title}`} ?disabled=${pending} @click=${() => this.exportPack(d)}>
            Export .kvpack
          </button>
          <button class="remove danger" aria-label=${`Remove ${d.title}`} ?disabled=${pending} @click=${() => this.removeDoc(d)}>Remove</button>
        </div>
      </li>
    `;
  }

  private renderClear(count: number): TemplateResult {
    if (this.confirmingClear && count > 0) {
      return html`
        <div class="confirm row" role="group" aria-labelledby="documents-clear-question" @keydown=${(e: KeyboardEvent) => e.key === 'Escape' && this.askClear(false)}>
          <span id="documents-clear-question">Are you sure? This removes ${plural(count, 'document')} and their stored chunks.</span>
          <button id="documents-clear-yes" class="danger" @click=${() => this.clearAll()}>Yes, remove all</button>
          <button id="documents-clear-no" @click=${() => this.askClear(false)}>No</button>
        </div>
      `;
    }
    return html`<div class="row clear-row">
      <button id="documents-clear" class="danger" ?disabled=${count === 0 || !this.client} @click=${() => this.askClear(true)}>Clear all</button>
    </div>`;
  }

  static override styles = [
    baseStyles,
    css`
      :host {
        /* Layout follows the panel's own width (a sidebar on a wide screen is narrow too). */
        container-type: inline-size;
      }
      .add {
        display: grid;
        gap: 0.4rem;
      }
      .add h3 {
        margin-top: 0;
      }
      .title-row label {
        flex: 0 0 auto;
      }
      #doc-title {
        flex: 1 1 10rem;
        min-width: 0;
      }
      .optional {
        font-weight: normal;
      }
      .files {
        display: flex;
        flex-wrap: wrap;
        gap: 0.5rem;
        align-items: stretch;
        margin-top: 0.25rem;
      }
      .drop {
        position: relative;
        flex: 1 1 16rem;
        display: flex;
      }
      #doc-drop {
        flex: 1;
        display: flex;
        flex-direction: column;
        align-items: center;
        justify-content: center;
        gap: 0.15rem;
        text-align: center;
        padding: 1rem;
        border: 2px dashed var(--border-strong);
        border-radius: 10px;
        background: var(--surface-2);
        color: var(--fg);
        cursor: pointer;
        font-size: 0.9rem;
      }
      .drop.over #doc-drop {
        border-color: var(--accent);
        background: var(--hover);
      }
      .drop.off #doc-drop,
      input:disabled + .button-like {
        opacity: 0.5;
        cursor: not-allowed;
      }
      .fake-link {
        color: var(--accent-text);
        text-decoration: underline;
      }
      /* The file inputs are hidden but focusable: their labels show the focus ring. */
      input[type='file']:focus-visible + label {
        outline: 3px solid var(--focus);
        outline-offset: 2px;
      }
      .import {
        position: relative;
        display: flex;
        align-items: center;
      }
      .button-like {
        display: inline-flex;
        align-items: center;
        min-height: 2.25rem;
        padding: 0.4rem 0.8rem;
        border: 1px solid var(--border-strong);
        border-radius: 8px;
        background: var(--surface-2);
        color: var(--fg);
        font-size: 0.9rem;
        cursor: pointer;
      }
      .button-like:hover {
        background: var(--hover);
      }
      .job {
        margin-top: 0.75rem;
        padding: 0.6rem 0.75rem;
        border: 1px solid var(--border);
        border-radius: 8px;
        background: var(--surface-2);
      }
      .job-head {
        margin-bottom: 0.35rem;
      }
      .job-title {
        font-weight: 600;
        overflow-wrap: anywhere;
      }
      .cancel {
        margin-left: auto;
      }
      .status {
        min-height: 1.3em;
        margin-top: 0.5rem;
      }
      .error {
        display: flex;
        flex-wrap: wrap;
        gap: 0.5rem;
        justify-content: space-between;
        align-items: baseline;
        overflow-wrap: anywhere;
      }
      .empty {
        color: var(--muted);
        border: 1px dashed var(--border);
        border-radius: 8px;
        padding: 0.75rem;
      }
      ul {
        list-style: none;
        margin: 0.5rem 0;
        padding: 0;
        display: grid;
        gap: 0.5rem;
      }
      li {
        border: 1px solid var(--border);
        border-radius: 8px;
        padding: 0.5rem 0.75rem;
        display: grid;
        gap: 0.25rem;
        background: var(--surface);
      }
      .doc-head {
        display: flex;
        gap: 0.5rem;
        align-items: flex-start;
      }
      .doc-head input {
        width: 1.15rem;
        height: 1.15rem;
        min-height: 0;
        margin: 0.2rem 0 0;
        flex: 0 0 auto;
        accent-color: var(--accent);
      }
      .doc-title {
        color: var(--fg);
        font-size: 0.95rem;
        font-weight: 600;
        overflow-wrap: anywhere;
        cursor: pointer;
      }
      .doc-meta {
        display: flex;
        flex-wrap: wrap;
        gap: 0.3rem;
        align-items: center;
      }
      .badge.partial {
        color: var(--warn);
        border-color: var(--warn);
      }
      .doc-actions button {
        font-size: 0.8rem;
        padding: 0.25rem 0.6rem;
      }
      .pin[aria-pressed='true'] {
        border-color: var(--accent);
        color: var(--accent-text);
        font-weight: 600;
      }
      .confirm {
        padding: 0.5rem 0.75rem;
        border: 1px solid var(--danger);
        border-radius: 8px;
        background: var(--danger-bg);
      }
      .clear-row {
        justify-content: flex-end;
      }
      @container (min-width: 36rem) {
        li {
          grid-template-columns: 1fr auto;
          align-items: center;
        }
        .doc-head,
        .doc-meta {
          grid-column: 1;
        }
        .doc-actions {
          grid-column: 2;
          grid-row: 1 / span 2;
          justify-content: flex-end;
        }
      }
      @container (max-width: 30rem) {
        .panel {
          padding: 0.75rem;
        }
        .drop {
          flex: 1 1 100%;
        }
        #doc-drop {
          padding: 0.75rem;
        }
        .doc-actions button {
          flex: 1 1 auto;
        }
      }
    `,
  ];
}

customElements.define('chunklm-documents-panel', DocumentsPanel);

declare global {
  interface HTMLElementTagNameMap {
    'chunklm-documents-panel': DocumentsPanel;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function readStoredSelection(): string[] | undefined {
  try {
    const raw = localStorage.getItem(SELECTION_STORAGE_KEY);
    if (raw === null) return undefined;
    const parsed: unknown = JSON.parse(raw);
    return Array.isArray(parsed) ? parsed.filter((x): x is string => typeof x === 'string') : undefined;
  } catch {
    return undefined; // unreadable: treated as a first visit
  }
}

function docStatus(d: DocumentInfo, modelLoaded: boolean): { key: 'cached' | 'partial' | 'stale' | 'stored'; label: string; cls: string; hint: string } {
  // Before a model is loaded, whose chunks they are is not known yet.
  if (!modelLoaded) {
    return { key: 'stored', label: `stored (${d.storedChunks}/${d.chunks} chunks)`, cls: '', hint: 'Kept in this browser; load the model it was read with to reuse its chunks' };
  }
  if (!d.currentModel) {
    return { key: 'stale', label: 'read again when used', cls: '', hint: 'Its chunks were made for another model or chunk size' };
  }
  if (d.storedChunks >= d.chunks) return { key: 'cached', label: 'cached', cls: 'ok', hint: 'Every chunk is stored in this browser' };
  return {
    key: 'partial',
    label: `partly cached (${d.storedChunks}/${d.chunks})`,
    cls: 'partial',
    hint: 'Some chunks were evicted for room; they are computed again when used',
  };
}

function phaseLabel(p: DocumentProgress): string {
  switch (p.phase) {
    case 'tokenize':
      return 'splitting into chunks';
    case 'compute':
      return p.total > 0 ? `chunk ${Math.min(p.done + 1, p.total)} of ${p.total}` : 'computing';
    case 'store':
      return `storing chunks (${p.done} of ${p.total})`;
    case 'done':
      return 'done';
  }
}

function describeProgress(title: string, p: DocumentProgress): string {
  return `Reading ${title}: ${phaseLabel(p)}`;
}

function describeAdded(info: DocumentInfo, imported: boolean): string {
  if (imported) return `Imported ${info.title}: ${plural(info.chunks, 'chunk')}, ${formatBytes(info.bytes)}`;
  const computed = info.computedChunks ?? info.chunks;
  const cached = info.chunks - computed;
  const how = computed === 0 ? 'every chunk was already cached' : cached > 0 ? `${computed} computed, ${cached} already cached` : `${computed} computed`;
  return `Read ${info.title}: ${plural(info.chunks, 'chunk')} (${how})`;
}

function plural(n: number, word: string): string {
  return `${n.toLocaleString()} ${word}${n === 1 ? '' : 's'}`;
}

/** The first line of pasted text, shortened, as its title. */
function firstLine(text: string): string {
  const line = text.trim().split(/\r?\n/, 1)[0].trim();
  return line.length > 60 ? `${line.slice(0, 57).trimEnd()}…` : line || 'Pasted text';
}

/** A title as a file name: no path separators or characters that file systems refuse. */
function fileSafe(title: string): string {
  const name = title
    .replace(/[\\/:*?"<>|\u0000-\u001f]+/g, '_')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 100);
  return name.replace(/^\.+/, '') || 'document';
}

/** An id usable in an element id (document ids are hex, but imported ones may be anything). */
function cssId(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, '_');
}
