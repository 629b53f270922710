// Text tables and bar charts of the chunk cache benchmark, for the terminal and the .md report.
import type { ChunkVariant, MethodRow, QualityResult } from './pic-quality.ts';
import { SPEED_METHODS, type SpeedRow, type SpeedSkip } from './pic-speed.ts';

export interface PicReport {
  date: string;
  quick: boolean;
  adapter: { description: string; isSwiftShader: boolean };
  note: string | undefined;
  defaultK: { k: number; source: string; rule: string | undefined };
  quality: QualityResult | undefined;
  speed: { rows: SpeedRow[]; skipped: SpeedSkip[]; synthetic: { name?: string } | undefined };
  seconds: number;
}

function pad(s: string, n: number, left = false): string {
  return left ? s.padStart(n) : s.padEnd(n);
}

function num(x: number, digits = 4): string {
  if (!Number.isFinite(x)) return '—';
  if (x !== 0 && Math.abs(x) < 10 ** -digits) return x.toExponential(1);
  return x.toFixed(digits);
}

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : '—');

function qualityLines(rows: readonly MethodRow[], continuation: number): string[] {
  const head = ['variant', 'method', 'prompts', 'mean KL', 'median KL', 'max KL', 'top-1', 'decoded', `exact ${continuation}`, 'matched', 'KL agreed steps', 'reused', 'recomputed', 'computed'];
  const widths = [7, 16, 7, 9, 9, 9, 6, 7, 8, 7, 15, 7, 10, 8];
  const lines = [head.map((h, i) => pad(h, widths[i], i > 1)).join('  ')];
  for (const r of rows) {
    const cells = [
      r.variant,
      r.label,
      String(r.prompts),
      num(r.meanKl),
      num(r.medianKl),
      num(r.maxKl),
      pct(r.top1),
      String(r.continuationPrompts),
      pct(r.exactMatch),
      Number.isFinite(r.meanMatched) ? r.meanMatched.toFixed(1) : '—',
      num(r.meanKlAgreedSteps),
      r.reused.toFixed(0),
      r.recomputed.toFixed(0),
      r.computed.toFixed(0),
    ];
    lines.push(cells.map((c, i) => pad(c, widths[i], i > 1)).join('  '));
  }
  return lines;
}

export function renderQualityTable(q: QualityResult): string[] {
  const lines = qualityLines(q.rows, q.plan.continuation);
  lines.push('');
  for (const v of ['plain', 'bos'] as ChunkVariant[]) {
    const k = q.chosenK[v];
    lines.push(`${v} chunks: ${k !== undefined ? `default k = ${k}` : 'no k meets the rule'} (${q.rule})`);
  }
  lines.push(`better cut: ${q.betterVariant === 'bos' ? 'with BOS in front of each chunk' : 'without BOS'} (lower mean KL summed over naive and every k)`);
  return lines;
}

export function renderSpeedTable(rows: readonly SpeedRow[]): string[] {
  const head = ['model', 'chunks×len', 'prompt', 'full ms', ...SPEED_METHODS.flatMap((m) => [`${m} ms`, 'full/it']), 'tokens run (full, then each method; +probed)'];
  const widths = [26, 10, 6, 8, ...SPEED_METHODS.flatMap((m) => [m.length + 3, 7]), 24];
  const lines = [head.map((h, i) => pad(h, widths[i], i > 0)).join('  ')];
  for (const r of rows) {
    const cells = [
      r.model,
      `${r.chunks}×${r.chunkLength}`,
      String(r.promptTokens),
      r.fullMs.toFixed(0),
      ...SPEED_METHODS.flatMap((m) => [r.methods[m].ms.toFixed(0), `${r.methods[m].fullOver.toFixed(1)}×`]),
      [r.fullComputed, ...SPEED_METHODS.map((m) => r.methods[m].computed)].join('/') + (r.methods.cacheblend.probed ? ` +${r.methods.cacheblend.probed}` : ''),
    ];
    lines.push(cells.map((c, i) => pad(c, widths[i], i > 0)).join('  '));
  }
  if (rows.length > 0) lines.push(`(attnlink k = ${rows[0].k}; cacheblend ratio = ${rows[0].ratio}, its probe runs layers 0..1)`);
  return lines;
}

/** Horizontal bars; `log` spreads values of several decades (KL) over the width. */
function bars(items: { label: string; value: number }[], width: number, opts: { log?: boolean; unit?: (v: number) => string } = {}): string[] {
  const unit = opts.unit ?? ((v: number) => num(v));
  const finite = items.filter((i) => Number.isFinite(i.value) && i.value > 0);
  if (finite.length === 0) return items.map((i) => `${i.label}  ${unit(i.value)}`);
  const lw = Math.max(...items.map((i) => i.label.length));
  const max = Math.max(...finite.map((i) => i.value));
  const min = Math.min(...finite.map((i) => i.value));
  const scale = (v: number) => {
    if (!(v > 0)) return 0;
    if (!opts.log) return Math.round((v / max) * width);
    const lo = Math.log10(min) - 1;
    return Math.max(1, Math.round(((Math.log10(v) - lo) / (Math.log10(max) - lo)) * width));
  };
  return items.map((i) => `${i.label.padEnd(lw)} |${'█'.repeat(scale(i.value)).padEnd(width)}| ${unit(i.value)}`);
}

export function renderMarkdown(r: PicReport): string {
  const out: string[] = [];
  out.push(`# Position-independent chunk cache: quality and time to first token`);
  out.push('');
  out.push(`Adapter: **${r.adapter.description}**. Date ${r.date}. ${r.quick ? 'Quick run. ' : ''}Total ${r.seconds.toFixed(0)} s. Made by \`npm run bench:pic\`.`);
  if (r.note) out.push('', `> **${r.adapter.isSwiftShader ? 'SwiftShader: CPU timings, not GPU timings.' : 'Note.'}** ${r.note}`);
  const q = r.quality;
  if (q) {
    out.push('', '## Quality on stories260K (maxContext 512)', '');
    out.push(
      `Evaluation set made here: ${q.documents.length} stories sampled from the model itself (temperature 0.8, top-k 40, fixed seeds, ` +
        `${q.plan.minDocTokens}–${q.plan.maxDocTokens} tokens, from BOS and a short opening). Each prompt links 2–4 of them in a seeded random order ` +
        `and ends with the first ${q.plan.questionTokens} tokens of another story; ${q.prompts.length} prompts ran within the time budget ` +
        `(${q.plan.budgetS} s; ${q.seconds.toFixed(0)} s used). ` +
        `**plain**: \`[BOS] d1 d2 … q\`, chunks computed without BOS. **bos**: \`[BOS d1] [BOS d2] … q\`, each chunk computed with its own BOS and linked with it (EPIC's chunk prefill).`,
    );
    out.push('');
    out.push(
      `Reference: the CPU oracle's full forward pass (f64) over the same tokens and its greedy ${q.plan.continuation}-token continuation. ` +
        `KL is KL(full ‖ method) of the next-token distribution after the question, in nats. "exact" is the share of prompts whose greedy ` +
        `continuation equals the reference's for all ${q.plan.continuation} tokens; "matched" the mean count of leading tokens that agree; ` +
        `"decoded" counts the prompts whose continuation was decoded (a separate, smaller time budget: each decoded token is one GPU step per method); ` +
        `"KL agreed steps" the mean KL over the continuation steps decoded while the tokens still agreed (so the context is the reference's). ` +
        `The "full (GPU)" row is the GPU's own full prefill on the first ${q.plan.fullChecks} prompt(s): the numerical floor` +
        `${q.referenceFloorKl !== undefined ? ` (KL ${num(q.referenceFloorKl, 6)})` : ''}. reused/recomputed/computed are mean tokens per prompt.`,
    );
    out.push('', '```', ...qualityLines(q.rows, q.plan.continuation), '```', '');
    for (const v of ['plain', 'bos'] as ChunkVariant[]) {
      const k = q.chosenK[v];
      out.push(`- ${v}: ${k !== undefined ? `**k = ${k}**` : '**no k meets the rule**'}`);
    }
    out.push(`- Rule: ${q.rule}.`);
    out.push(`- Better cut: **${q.betterVariant === 'bos' ? 'with BOS' : 'without BOS'}** (lower mean KL summed over naive and every k).`);
    out.push('', 'Mean KL(full ‖ method) after the question (log scale):', '', '```');
    for (const v of ['plain', 'bos'] as ChunkVariant[]) {
      const rows = q.rows.filter((x) => x.variant === v && x.method !== 'full');
      out.push(...bars(rows.map((x) => ({ label: `${v} ${x.label}`, value: x.meanKl })), 40, { log: true }));
    }
    out.push('```', '', `Greedy exact match of ${q.plan.continuation} tokens:`, '', '```');
    for (const v of ['plain', 'bos'] as ChunkVariant[]) {
      const rows = q.rows.filter((x) => x.variant === v && x.method !== 'full' && x.continuationPrompts > 0);
      out.push(...bars(rows.map((x) => ({ label: `${v} ${x.label}`, value: Math.max(x.exactMatch, 1e-9) })), 40, { unit: (u) => pct(u < 1e-6 ? 0 : u) }));
    }
    out.push('```');
  }
  out.push('', `## Time to first token (chunks cached; attnlink k = ${r.defaultK.k}, ${r.defaultK.source})`, '');
  out.push(
    'Only the request itself is timed: from the call to the sampled id read back; chunks are cached before the clock starts. Full prefill runs every token of `[BOS] chunks… question` ' +
      '(8 question tokens). prefix-same reuses an earlier prompt over the same chunks in the same order with another question (prefix caching at its best: ' +
      'only the question runs); prefix-reordered reuses an earlier prompt over the same chunks in reverse order (only the common prefix is reused). ' +
      'Naive reuse runs BOS and the question; AttnLink adds the first k tokens of every chunk, batched in one pass; cacheblend runs every chunk token through ' +
      'layers 0..1 to find the most deviating ones, then recomputes that share of them in one pass. Token ids are random; times are medians of the repetitions.',
  );
  if (r.adapter.isSwiftShader) out.push('', '**SwiftShader: these are CPU timings (one repetition each), not GPU timings.**');
  out.push('', '```', ...renderSpeedTable(r.speed.rows), '```');
  if (r.speed.skipped.length > 0) {
    out.push('', 'Skipped configurations:', '');
    for (const s of r.speed.skipped) out.push(`- ${s.model} ${s.chunks}×${s.chunkLength}: ${s.reason}`);
  }
  if (r.speed.rows.length > 0) {
    out.push('', 'full / method (how many times sooner the first token comes):', '', '```');
    const items = r.speed.rows.flatMap((x) => SPEED_METHODS.map((m) => ({ label: `${x.model} ${x.chunks}×${x.chunkLength} ${m}`, value: x.methods[m].fullOver })));
    out.push(...bars(items, 40, { unit: (v) => `${v.toFixed(1)}×` }), '```');
  }
  out.push('');
  return out.join('\n');
}
