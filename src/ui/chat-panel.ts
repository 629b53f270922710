// The conversation: questions about the chosen documents (or plain chat without any), answers
// streamed as sanitized Markdown, and per answer what the cache did (chunks used and where each
// came from, TTFT, speed, reused / recomputed / computed tokens).
import { LitElement, css, html, nothing, type PropertyValues } from 'lit';
import { repeat } from 'lit/directives/repeat.js';
import { type ChatMessage, type ChunklmClient, ChunklmError, type ChunkSource, type GenerateInput, type GenerateOptions, type GenerationResult, type ModelInfo, type UsedChunk } from '../api.ts';
import { answerRecord } from './answers.ts';
import { emit, type DemoSettings, DEFAULT_SETTINGS } from './events.ts';
import { renderMarkdown } from './markdown.ts';
import { SOURCE_COLOURS, baseStyles } from './theme.ts';

interface Turn {
  id: number;
  question: string;
  /** Document ids the question was asked about (empty: plain chat). */
  documents: string[];
  answer: string;
  state: 'streaming' | 'done' | 'stopped' | 'error';
  result?: GenerationResult;
  error?: Error;
  method?: string;
}

const SOURCE_LABELS: Record<ChunkSource, string> = {
  gpu: 'GPU',
  memory: 'memory',
  store: 'IndexedDB',
  computed: 'computed',
};

/**
 * Asks the loaded model about the chosen documents and streams its answers.
 *
 * Stable ids: `chat-question`, `chat-ask`, `chat-stop`, `chat-log` (each answer an
 * `article.turn[data-state]` with `.answer`, `.metrics[data-ttft-ms][data-reused][data-recomputed]
 * [data-computed]` and `.chunks` buttons `[data-source]`), `chat-regenerate`, `chat-error`.
 *
 * @fires chunklm-answer - An answer ended (stopped ones too); `detail` is its AnswerRecord.
 */
export class ChatPanel extends LitElement {
  static override properties = {
    client: { attribute: false },
    model: { attribute: false },
    documents: { attribute: false },
    titles: { attribute: false },
    settings: { attribute: false },
    turns: { state: true },
    openChunk: { state: true },
  };

  declare client: ChunklmClient | undefined;
  /** The loaded model (none: asking is disabled). */
  declare model: ModelInfo | undefined;
  /** Ids of the documents questions are asked about; none: plain chat. */
  declare documents: string[];
  /** Document titles by id, to name the chunks an answer used. */
  declare titles: Record<string, string>;
  declare settings: DemoSettings;
  declare private turns: Turn[];
  /** `turnId:chunkIndex` of the chunk whose text is shown. */
  declare private openChunk: string | undefined;

  private running: AbortController | undefined;
  private nextId = 1;
  private answered = 0;

  constructor() {
    super();
    this.client = undefined;
    this.model = undefined;
    this.documents = [];
    this.titles = {};
    this.settings = DEFAULT_SETTINGS;
    this.turns = [];
  }

  /** Whether an answer is streaming. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.running?.abort();
  }

  /** Asks a question (the visitor's, or a script's) and resolves when its answer ends. */
  async ask(question: string): Promise<GenerationResult | undefined> {
    const q = question.trim();
    if (!q || !this.client || !this.model || this.running) return undefined;
    const turn: Turn = { id: this.nextId++, question: q, documents: [...this.documents], answer: '', state: 'streaming' };
    this.turns = [...this.turns, turn];
    return this.run(turn);
  }

  /** Stops the streaming answer (it keeps what was written). */
  stop(): void {
    this.running?.abort();
  }

  private async run(turn: Turn): Promise<GenerationResult | undefined> {
    const client = this.client!;
    const ctrl = new AbortController();
    this.running = ctrl;
    this.requestUpdate();
    emit(this, 'chunklm-busy', true);
    const s = this.settings;
    const docsRequest = turn.documents.length > 0;
    // Plain chat accepts 'full' and 'prefix' only; 'prefix' reuses the conversation's KV turn by turn.
    const method = docsRequest ? s.method : s.method === 'full' ? 'full' : 'prefix';
    turn.method = method;
    const opts: GenerateOptions = {
      maxTokens: s.maxTokens,
      temperature: s.temperature,
      topK: s.topK,
      topP: s.topP,
      ...(s.seed !== undefined ? { seed: s.seed } : {}),
      method,
      ...(method === 'attnlink' ? { k: s.k } : {}),
      ...(method === 'cacheblend' ? { ratio: s.ratio } : {}),
      signal: ctrl.signal,
    };
    try {
      const stream = client.generate(this.inputFor(turn), opts);
      let pending = '';
      let scheduled = false;
      for await (const ev of stream) {
        pending += ev.text;
        // One render per frame however fast tokens come.
        if (!scheduled) {
          scheduled = true;
          requestAnimationFrame(() => {
            scheduled = false;
            turn.answer += pending;
            pending = '';
            this.touch(turn);
          });
        }
      }
      const result = await stream.result;
      turn.answer = result.text;
      turn.result = result;
      turn.state = result.finishReason === 'aborted' ? 'stopped' : 'done';
      this.touch(turn);
      emit(this, 'chunklm-answer', answerRecord(++this.answered, method, result));
      return result;
    } catch (err) {
      turn.error = err instanceof Error ? err : new ChunklmError('unknown', String(err));
      turn.state = 'error';
      this.touch(turn);
      return undefined;
    } finally {
      if (this.running === ctrl) this.running = undefined;
      this.requestUpdate();
      emit(this, 'chunklm-busy', false);
      await this.updateComplete;
      this.renderRoot.querySelector<HTMLTextAreaElement>('#chat-question')?.focus();
    }
  }

  /** Documents and the question; without documents, the conversation so far through the chat template. */
  private inputFor(turn: Turn): GenerateInput {
    if (turn.documents.length > 0) return { documents: turn.documents, question: turn.question };
    if (!this.model?.hasChatTemplate) return turn.question;
    const messages: ChatMessage[] = [];
    for (const t of this.turns) {
      if (t === turn) break;
      if (t.documents.length > 0 || t.state === 'error') continue;
      messages.push({ role: 'user', content: t.question }, { role: 'assistant', content: t.answer });
    }
    messages.push({ role: 'user', content: turn.question });
    return { messages };
  }

  private touch(turn: Turn): void {
    this.turns = this.turns.map((t) => (t.id === turn.id ? { ...turn } : t));
  }

  private async regenerate(): Promise<void> {
    const last = this.turns.at(-1);
    if (!last || this.running) return;
    const again: Turn = { id: this.nextId++, question: last.question, documents: last.documents, answer: '', state: 'streaming' };
    this.turns = [...this.turns.slice(0, -1), again];
    await this.run(again);
  }

  private submit(e: Event): void {
    e.preventDefault();
    const field = this.renderRoot.querySelector<HTMLTextAreaElement>('#chat-question');
    if (!field || !field.value.trim()) return;
    const q = field.value;
    field.value = '';
    void this.ask(q);
  }

  private onKeydown(e: KeyboardEvent): void {
    // Enter asks; Shift+Enter is a new line.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) this.submit(e);
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (changed.has('turns' as keyof ChatPanel)) {
      const log = this.renderRoot.querySelector('#chat-log');
      if (log) log.scrollTop = log.scrollHeight;
    }
  }

  override render() {
    const ready = this.client !== undefined && this.model !== undefined;
    const busy = this.running !== undefined;
    const target =
      this.documents.length === 0
        ? 'no documents chosen: plain chat'
        : `about ${this.documents.length} document${this.documents.length === 1 ? '' : 's'} · ${this.settings.method}`;
    return html`
      <section class="panel" aria-labelledby="chat-heading">
        <div class="head">
          <h2 id="chat-heading">Ask</h2>
          <span class="muted">${target}</span>
        </div>
        <div id="chat-log" class="log" role="log" aria-live="polite" aria-relevant="additions" tabindex="0" aria-label="Conversation">
          ${this.turns.length === 0
            ? html`<p class="empty muted">
                ${ready
                  ? 'Ask a question. With documents chosen, their cached chunks are linked in front of it, so the answer starts without reading them again.'
                  : 'Load a model to start.'}
              </p>`
            : repeat(
                this.turns,
                (t) => t.id,
                (t, i) => this.renderTurn(t, i === this.turns.length - 1),
              )}
        </div>
        <form class="ask" @submit=${this.submit}>
          <label for="chat-question" class="visually-hidden">Your question</label>
          <textarea
            id="chat-question"
            rows="2"
            placeholder=${ready ? 'Ask about your documents…' : 'Load a model first'}
            ?disabled=${!ready}
            @keydown=${this.onKeydown}
            aria-describedby="chat-hint"
          ></textarea>
          <div class="row actions">
            <span id="chat-hint" class="muted">Enter to ask, Shift+Enter for a new line</span>
            <span class="spacer"></span>
            <button type="button" id="chat-stop" @click=${() => this.stop()} ?disabled=${!busy}>Stop</button>
            <button type="submit" id="chat-ask" class="primary" ?disabled=${!ready || busy}>Ask</button>
          </div>
        </form>
      </section>
    `;
  }

  private renderTurn(t: Turn, last: boolean) {
    return html`
      <article class="turn" data-state=${t.state} aria-busy=${t.state === 'streaming' ? 'true' : 'false'}>
        <div class="question"><span class="visually-hidden">You asked: </span>${t.question}</div>
        <div class="answer" aria-label="Answer">
          ${t.answer ? renderMarkdown(t.answer) : t.state === 'streaming' ? html`<span class="typing" aria-label="Thinking">…</span>` : nothing}
        </div>
        ${t.state === 'error' && t.error
          ? html`<p id="chat-error" class="error" role="alert" data-code=${(t.error as ChunklmError).code ?? t.error.name}>
              ${t.error.message}
            </p>`
          : nothing}
        ${t.result ? this.renderMetrics(t, t.result) : nothing}
        ${last && t.state !== 'streaming' && !this.running
          ? html`<div class="row"><button id="chat-regenerate" class="link" @click=${() => void this.regenerate()}>Regenerate</button></div>`
          : nothing}
      </article>
    `;
  }

  private renderMetrics(t: Turn, r: GenerationResult) {
    const reused = r.reusedTokens ?? 0;
    const recomputed = r.recomputedTokens ?? 0;
    const computed = r.computedTokens ?? r.promptTokens.length;
    const chunks = r.chunks ?? [];
    return html`
      <div
        class="metrics"
        data-ttft-ms=${r.ttftMs.toFixed(1)}
        data-reused=${reused}
        data-recomputed=${recomputed}
        data-computed=${computed}
        data-finish-reason=${r.finishReason}
      >
        <span title="Time to first token"><strong>TTFT</strong> ${formatMs(r.ttftMs)}</span>
        <span><strong>${r.decodeTokPerS.toFixed(1)}</strong> tok/s</span>
        <span><strong>${r.tokens.length}</strong> tokens</span>
        ${r.chunks
          ? html`<span class="tokens">
              prompt ${r.promptTokens.length}: <span class="reused">${reused} reused</span> · <span>${recomputed} recomputed</span> ·
              <span class="computed">${computed} computed</span>
            </span>`
          : html`<span>prompt ${r.promptTokens.length}${t.method === 'prefix' ? html` · ${reused} reused` : nothing}</span>`}
        <span class="badge">${t.method}</span>
        ${r.finishReason === 'aborted' ? html`<span class="badge">stopped</span>` : nothing}
        ${r.finishReason === 'context' ? html`<span class="badge">context full</span>` : nothing}
        ${(r.droppedChunks ?? 0) > 0 ? html`<span class="badge">${r.droppedChunks} chunks left out (context)</span>` : nothing}
      </div>
      ${chunks.length > 0
        ? html`<div class="chunks" role="group" aria-label="Chunks used">
              ${chunks.map((c, i) => {
                const key = `${t.id}:${i}`;
                const open = this.openChunk === key;
                return html`<button
                  class="chunk"
                  data-source=${c.source}
                  aria-expanded=${open ? 'true' : 'false'}
                  aria-controls="chunk-text-${t.id}"
                  style="--chunk-colour:${SOURCE_COLOURS[c.source]}"
                  title=${`${chunkLabel(c, this.titles)}: ${c.tokens} tokens from ${SOURCE_LABELS[c.source]}`}
                  @click=${() => (this.openChunk = open ? undefined : key)}
                >
                  <span class="dot" aria-hidden="true"></span>${chunkLabel(c, this.titles)} · ${SOURCE_LABELS[c.source]}
                </button>`;
              })}
            </div>
            ${this.openChunk?.startsWith(`${t.id}:`)
              ? html`<blockquote id="chunk-text-${t.id}" class="chunk-text">${chunks[Number(this.openChunk.split(':')[1])]?.text}</blockquote>`
              : nothing}`
        : nothing}
      ${r.warnings?.length ? html`<p class="warning">${r.warnings.join(' ')}</p>` : nothing}
    `;
  }

  static override styles = [
    baseStyles,
    css`
      .panel {
        display: flex;
        flex-direction: column;
        min-height: 24rem;
      }
      .head {
        display: flex;
        align-items: baseline;
        gap: 0.75rem;
        flex-wrap: wrap;
      }
      .log {
        flex: 1;
        overflow-y: auto;
        max-height: min(70vh, 44rem);
        min-height: 12rem;
        padding: 0.25rem;
        margin: 0 -0.25rem 0.75rem;
      }
      .empty {
        padding: 2rem 1rem;
        text-align: center;
      }
      .turn {
        margin: 0 0 1.25rem;
      }
      .question {
        background: var(--accent);
        color: var(--on-accent);
        border-radius: 14px 14px 4px 14px;
        padding: 0.5rem 0.8rem;
        margin: 0 0 0.5rem auto;
        max-width: 85%;
        width: fit-content;
        white-space: pre-wrap;
        overflow-wrap: anywhere;
      }
      .answer {
        background: var(--surface-2);
        border-radius: 14px 14px 14px 4px;
        padding: 0.5rem 0.9rem;
        max-width: 100%;
        overflow-wrap: anywhere;
      }
      .answer :first-child {
        margin-top: 0;
      }
      .answer :last-child {
        margin-bottom: 0;
      }
      .answer pre {
        overflow-x: auto;
        background: var(--field);
        padding: 0.5rem;
        border-radius: 6px;
      }
      .answer code {
        font-size: 0.9em;
      }
      .typing {
        color: var(--muted);
        letter-spacing: 0.2em;
      }
      .metrics {
        display: flex;
        flex-wrap: wrap;
        gap: 0.35rem 0.9rem;
        font-size: 0.8rem;
        color: var(--muted);
        margin: 0.4rem 0.2rem;
        align-items: center;
      }
      .metrics strong {
        color: var(--fg);
      }
      .reused {
        color: var(--ok);
      }
      .chunks {
        display: flex;
        flex-wrap: wrap;
        gap: 0.3rem;
        margin: 0.2rem;
      }
      .chunk {
        font-size: 0.75rem;
        min-height: 1.8rem;
        padding: 0.1rem 0.55rem;
        border-radius: 999px;
        border-color: var(--chunk-colour);
      }
      .chunk[aria-expanded='true'] {
        background: var(--hover);
      }
      .dot {
        display: inline-block;
        width: 0.55rem;
        height: 0.55rem;
        border-radius: 50%;
        background: var(--chunk-colour);
        margin-right: 0.35rem;
      }
      .chunk-text {
        margin: 0.4rem 0.2rem;
        padding: 0.5rem 0.75rem;
        border-left: 3px solid var(--border-strong);
        background: var(--field);
        font-size: 0.85rem;
        white-space: pre-wrap;
        max-height: 14rem;
        overflow-y: auto;
      }
      .ask textarea {
        min-height: 3.5rem;
      }
      .actions {
        margin-top: 0.5rem;
      }
      .spacer {
        flex: 1;
      }
      @media (max-width: 600px) {
        #chat-hint {
          display: none;
        }
      }
    `,
  ];
}

function chunkLabel(c: UsedChunk, titles: Record<string, string>): string {
  const doc = c.document === undefined ? 'text' : (titles[c.document] ?? c.document);
  return `${doc.length > 28 ? `${doc.slice(0, 27)}…` : doc} #${c.index + 1}`;
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}

customElements.define('chunklm-chat', ChatPanel);

declare global {
  interface HTMLElementTagNameMap {
    'chunklm-chat': ChatPanel;
  }
}
