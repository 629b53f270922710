// Time to first token per answer, as bars: each bar is split by where the answer's chunks came
// from (computed, IndexedDB, memory, GPU) and marked with the method that linked them, so a
// question asked again over documents already read is seen to start sooner. The axis's numbers
// are chart-scale.ts's.
import { LitElement, css, html, nothing, svg } from 'lit';
import type { ChunkSource, LinkMethod } from '../api.ts';
import { CHART_SOURCES as SOURCES, axisTickLabels, axisTicks, formatTtft, mainSource, niceMax } from './chart-scale.ts';
import type { AnswerRecord } from './events.ts';
import { SOURCE_COLOURS, baseStyles } from './theme.ts';

const SOURCE_NAMES: Record<ChunkSource, string> = { computed: 'computed', store: 'IndexedDB', memory: 'memory', gpu: 'GPU' };
const METHOD_MARKS: Record<LinkMethod, string> = { full: 'F', prefix: 'P', naive: 'N', attnlink: 'A', cacheblend: 'B' };
const METHOD_COLOURS: Record<LinkMethod, string> = {
  full: 'var(--muted)',
  prefix: '#d4a017',
  naive: '#e0609a',
  attnlink: 'var(--accent)',
  cacheblend: '#1aa3a3',
};

/**
 * The TTFT chart. Each bar is a `g.bar` with `data-n`, `data-ttft-ms`, `data-method` and
 * `data-source` (where most of its chunks came from).
 */
export class TtftChart extends LitElement {
  static override properties = { answers: { attribute: false } };

  declare answers: AnswerRecord[];

  constructor() {
    super();
    this.answers = [];
  }

  override render() {
    const shown = this.answers.slice(-24);
    return html`
      <section class="panel" aria-labelledby="chart-heading">
        <h2 id="chart-heading">Time to first token</h2>
        ${shown.length === 0
          ? html`<p class="muted">Each answer adds a bar. Ask about a document twice, or reload and ask again: the second bar is the cache at work.</p>`
          : html`${this.renderChart(shown)} ${this.renderLegend()} ${this.renderTable(shown)}`}
      </section>
    `;
  }

  private renderChart(shown: AnswerRecord[]) {
    const W = 640;
    const H = 220;
    const pad = { left: 52, right: 12, top: 22, bottom: 34 };
    const plotW = W - pad.left - pad.right;
    const plotH = H - pad.top - pad.bottom;
    const top = niceMax(Math.max(...shown.map((a) => a.ttftMs)));
    const slot = plotW / Math.max(shown.length, 6);
    const barW = Math.min(44, slot * 0.66);
    const y = (ms: number): number => pad.top + plotH - (ms / top) * plotH;
    const ticks = axisTicks(top);
    const labels = axisTickLabels(ticks);
    const summary = shown.map((a) => `answer ${a.n}: ${Math.round(a.ttftMs)} ms, ${a.method}, mostly ${SOURCE_NAMES[mainSource(a)]}`).join('; ');
    return html`<svg id="ttft-chart" viewBox="0 0 ${W} ${H}" role="img" aria-label=${`Time to first token per answer. ${summary}`}>
      ${ticks.map(
        (t, i) => svg`<line class="grid" x1=${pad.left} x2=${W - pad.right} y1=${y(t)} y2=${y(t)}></line>
          <text class="tick" x=${pad.left - 6} y=${y(t) + 4} text-anchor="end">${labels[i]}</text>`,
      )}
      ${shown.map((a, i) => {
        const x = pad.left + slot * i + (slot - barW) / 2;
        const total = SOURCES.reduce((n, s) => n + a.sources[s], 0);
        let yTop = y(a.ttftMs);
        const h = y(0) - yTop;
        // No chunks (plain chat): one segment, all computed.
        const parts = total === 0 ? [['computed', 1] as const] : SOURCES.filter((s) => a.sources[s] > 0).map((s) => [s, a.sources[s] / total] as const);
        const segments = parts.map(([s, share]) => {
          const seg = svg`<rect x=${x} y=${yTop} width=${barW} height=${Math.max(0, h * share)} fill=${SOURCE_COLOURS[s]}></rect>`;
          yTop += h * share;
          return seg;
        });
        return svg`<g class="bar" data-n=${a.n} data-ttft-ms=${a.ttftMs.toFixed(1)} data-method=${a.method} data-source=${mainSource(a)}>
          <title>${`Answer ${a.n}: ${formatTtft(a.ttftMs)} (${a.method}); chunks ${SOURCES.map((s) => `${SOURCE_NAMES[s]} ${a.sources[s]}`).join(', ')}; ${a.reusedTokens} tokens reused, ${a.computedTokens} computed`}</title>
          ${segments}
          <circle cx=${x + barW / 2} cy=${y(a.ttftMs) - 9} r="7" fill=${METHOD_COLOURS[a.method]}></circle>
          <text class="mark" x=${x + barW / 2} y=${y(a.ttftMs) - 5.5} text-anchor="middle">${METHOD_MARKS[a.method]}</text>
          <text class="tick" x=${x + barW / 2} y=${H - pad.bottom + 16} text-anchor="middle">${a.n}</text>
        </g>`;
      })}
      <line class="axis" x1=${pad.left} x2=${W - pad.right} y1=${y(0)} y2=${y(0)}></line>
      <text class="tick" x=${pad.left + plotW / 2} y=${H - 4} text-anchor="middle">answer</text>
    </svg>`;
  }

  private renderLegend() {
    const methods = [...new Set(this.answers.map((a) => a.method))];
    return html`<ul class="legend" aria-label="Legend">
      ${SOURCES.map((s) => html`<li><span class="swatch" style="background:${SOURCE_COLOURS[s]}"></span>${SOURCE_NAMES[s]}</li>`)}
      ${methods.map(
        (m) => html`<li><span class="swatch round" style="background:${METHOD_COLOURS[m]}"></span>${METHOD_MARKS[m]} = ${m}</li>`,
      )}
    </ul>`;
  }

  private renderTable(shown: AnswerRecord[]) {
    return html`<details class="table">
      <summary>As a table</summary>
      <table>
        <thead>
          <tr><th scope="col">Answer</th><th scope="col">Method</th><th scope="col">TTFT</th><th scope="col">Chunks (computed / IndexedDB / memory / GPU)</th><th scope="col">Tokens reused / computed</th></tr>
        </thead>
        <tbody>
          ${shown.map(
            (a) => html`<tr>
              <td>${a.n}</td>
              <td>${a.method}</td>
              <td>${formatTtft(a.ttftMs)}</td>
              <td>${a.sources.computed} / ${a.sources.store} / ${a.sources.memory} / ${a.sources.gpu}</td>
              <td>${a.reusedTokens} / ${a.computedTokens}${a.finishReason === 'aborted' ? ' (stopped)' : nothing}</td>
            </tr>`,
          )}
        </tbody>
      </table>
    </details>`;
  }

  static override styles = [
    baseStyles,
    css`
      svg {
        width: 100%;
        height: auto;
        display: block;
      }
      .grid {
        stroke: var(--border);
        stroke-width: 1;
      }
      .axis {
        stroke: var(--border-strong);
      }
      .tick {
        fill: var(--muted);
        font-size: 11px;
      }
      .mark {
        fill: #fff;
        font-size: 9.5px;
        font-weight: 700;
      }
      .legend {
        list-style: none;
        display: flex;
        flex-wrap: wrap;
        gap: 0.3rem 1rem;
        padding: 0;
        margin: 0.5rem 0 0;
        font-size: 0.8rem;
        color: var(--muted);
      }
      .swatch {
        display: inline-block;
        width: 0.8rem;
        height: 0.8rem;
        border-radius: 3px;
        margin-right: 0.35rem;
        vertical-align: -0.1rem;
      }
      .swatch.round {
        border-radius: 50%;
      }
      .table {
        margin-top: 0.5rem;
        font-size: 0.8rem;
      }
      table {
        border-collapse: collapse;
        width: 100%;
        margin-top: 0.4rem;
      }
      th,
      td {
        text-align: left;
        padding: 0.2rem 0.4rem;
        border-bottom: 1px solid var(--border);
      }
    `,
  ];
}

customElements.define('chunklm-ttft-chart', TtftChart);

declare global {
  interface HTMLElementTagNameMap {
    'chunklm-ttft-chart': TtftChart;
  }
}
