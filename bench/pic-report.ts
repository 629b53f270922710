// Text tables and bar charts of the chunk cache benchmark, for the terminal and the .md report.
import { VARIANTS, type ContextRow, type KChoice, type MethodRow, type PairedRow, type QualityResult, type StorageRow } from './pic-quality.ts';
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

/** KL in nats: small values of several decades, so with an exponent. */
function kl(x: number): string {
  if (!Number.isFinite(x)) return '—';
  return x === 0 ? '0' : x.toExponential(2);
}

const scopeName = (s: number | 'all') => (s === 'all' ? 'all' : String(s));

function qualityLines(rows: readonly MethodRow[], continuation: number): string[] {
  const head = ['size', 'cut', 'method', 'prompts', 'mean KL', 'median KL', 'max KL', 'KL@answer', 'top-1', 'ppl', `exact ${continuation}`, 'matched', 'reused', 'recomputed', 'computed', 'probed', 'reused %'];
  const widths = [4, 5, 16, 7, 8, 9, 8, 9, 6, 6, 8, 7, 6, 10, 8, 6, 8];
  const lines = [head.map((h, i) => pad(h, widths[i], i > 2)).join('  ')];
  let last: string | undefined;
  for (const r of rows) {
    const group = `${scopeName(r.size)}:${r.variant}`;
    if (last !== undefined && group !== last) lines.push('');
    last = group;
    const cells = [
      scopeName(r.size),
      r.variant,
      r.label,
      String(r.prompts),
      kl(r.meanKl),
      kl(r.medianKl),
      kl(r.maxKl),
      kl(r.klAfterQuestion),
      pct(r.top1),
      r.ppl.toFixed(3),
      pct(r.exactMatch),
      r.meanMatched.toFixed(1),
      r.reused.toFixed(0),
      r.recomputed.toFixed(0),
      r.computed.toFixed(0),
      r.probed.toFixed(0),
      pct(r.reusedShare),
    ];
    lines.push(cells.map((c, i) => pad(c, widths[i], i > 2)).join('  '));
  }
  return lines;
}

function choiceText(c: KChoice): string {
  if (c.k !== undefined) return `k = ${c.k} meets the rule`;
  return `no k meets the rule; largest KL drop per recomputed token at k = ${c.bestPerToken ?? '—'} (${kl(c.bestPerTokenGain)} nats per token)`;
}

/** One line per scope: the k the rule picks on each cut, and the better cut. */
function choiceLines(q: QualityResult): string[] {
  const lines: string[] = [];
  for (const b of q.betterVariant) {
    const scope = b.size === 'all' ? 'all sizes' : `target ${b.size}`;
    const per = VARIANTS.map((v) => `${v}: ${choiceText(q.chosenK.find((c) => c.size === b.size && c.variant === v)!.choice)}`).join('; ');
    lines.push(`${scope}: ${per}. Closer to its own full prefill: ${b.variant} cut (lower mean KL summed over the ${b.methods} reuse methods; lower on ${b.wins} of them)`);
  }
  lines.push(`cut kept as the default: ${q.defaultK.variant}; default k = ${q.defaultK.k} (${q.defaultK.source})`);
  return lines;
}

function gpuCheckLines(q: QualityResult): string[] {
  if (q.gpuCheck.length === 0) return [];
  const f16 = q.gpuCheck.some((g) => g.klCpuF16Gpu !== undefined);
  const head = ['prompt', 'size', 'cut', 'method', 'KL(CPU ‖ GPU)', ...(f16 ? ['KL(CPU f16 ‖ GPU)'] : []), 'same top-1', 'selection diff'];
  const widths = [6, 4, 5, 16, 13, ...(f16 ? [17] : []), 10, 14];
  const lines = [head.map((h, i) => pad(h, widths[i], i > 3)).join('  ')];
  for (const g of q.gpuCheck) {
    const cells = [
      String(g.prompt + 1),
      String(g.size),
      g.variant,
      g.label,
      kl(g.klCpuGpu),
      ...(f16 ? [g.klCpuF16Gpu === undefined ? '—' : kl(g.klCpuF16Gpu)] : []),
      g.top1Equal ? 'yes' : 'NO',
      g.selectionDiff === undefined ? '' : String(g.selectionDiff),
    ];
    lines.push(cells.map((c, i) => pad(c, widths[i], i > 3)).join('  '));
  }
  return lines;
}

/** A signed KL difference. */
function delta(x: number): string {
  if (!Number.isFinite(x)) return '—';
  return x === 0 ? '0' : `${x > 0 ? '+' : '−'}${Math.abs(x).toExponential(2)}`;
}

const signedPct = (x: number) => (Number.isFinite(x) ? `${x > 0 ? '+' : x < 0 ? '−' : ''}${Math.abs(x * 100).toFixed(1)}%` : '—');

function pValue(p: number): string {
  if (!Number.isFinite(p)) return '—';
  return p < 1e-4 ? p.toExponential(1) : p.toFixed(4);
}

/** Rows of one method per setting (context or storage), grouped by size. */
function settingLines(rows: readonly (MethodRow & { setting: string; extra?: string[] })[], continuation: number, extraHead: string[] = []): string[] {
  const head = ['size', 'setting', 'method', 'prompts', 'mean KL', 'median KL', 'KL@answer', 'top-1', `exact ${continuation}`, 'matched', 'recomputed', ...extraHead];
  const widths = [4, 8, 14, 7, 8, 9, 9, 6, 8, 7, 10, ...extraHead.map((h) => Math.max(h.length, 9))];
  const lines = [head.map((h, i) => pad(h, widths[i], i > 2)).join('  ')];
  let last: string | undefined;
  for (const r of rows) {
    const group = scopeName(r.size);
    if (last !== undefined && group !== last) lines.push('');
    last = group;
    const cells = [
      scopeName(r.size),
      r.setting,
      r.label,
      String(r.prompts),
      kl(r.meanKl),
      kl(r.medianKl),
      kl(r.klAfterQuestion),
      pct(r.top1),
      pct(r.exactMatch),
      r.meanMatched.toFixed(1),
      r.recomputed.toFixed(0),
      ...(r.extra ?? []),
    ];
    lines.push(cells.map((c, i) => pad(c, widths[i], i > 2)).join('  '));
  }
  return lines;
}

const contextRowLines = (q: QualityResult) => settingLines(q.contextRows.map((r: ContextRow) => ({ ...r, setting: r.context })), q.plan.continuation);

const storageRowLines = (q: QualityResult) =>
  settingLines(
    q.storageRows.map((r: StorageRow) => ({ ...r, setting: r.storage, extra: [kl(r.klToF32), pct(r.top1ToF32)] })),
    q.plan.continuation,
    ['KL to f32', 'top-1 = f32'],
  );

/** The paired comparisons: per size and method, the setting against its baseline on the same prompts. */
function pairedLines(rows: readonly PairedRow[], continuation: number): string[] {
  const head = ['size', 'setting', 'method', 'n', 'KL base', 'KL setting', 'mean Δ', 'median Δ', '95% CI of mean Δ', 'rel. change (95% CI)', 'better', 'sign p', 'Wilcoxon p', `exact ${continuation}`];
  const widths = [4, 19, 14, 3, 8, 10, 10, 10, 23, 26, 13, 7, 10, 11];
  const lines = [head.map((h, i) => pad(h, widths[i], i > 2)).join('  ')];
  let last: string | undefined;
  for (const r of rows) {
    const group = scopeName(r.size);
    if (last !== undefined && group !== last) lines.push('');
    last = group;
    const s = r.stats;
    const cells = [
      scopeName(r.size),
      `${r.setting} vs ${r.baseline}`,
      r.label,
      String(s.n),
      kl(s.meanBase),
      kl(s.meanOther),
      delta(s.meanDiff),
      delta(s.medianDiff),
      `[${delta(s.ciLow)}, ${delta(s.ciHigh)}]`,
      `${signedPct(s.relChange)} [${signedPct(s.relCiLow)}, ${signedPct(s.relCiHigh)}]`,
      `${pct(s.n > 0 ? s.better / s.n : NaN)} (${s.ties} =)`,
      pValue(s.signP),
      pValue(s.wilcoxonP),
      `${pct(r.exactBaseline)} → ${pct(r.exactSetting)}`,
    ];
    lines.push(cells.map((c, i) => pad(c, widths[i], i > 2)).join('  '));
  }
  return lines;
}

function storageBytesLines(q: QualityResult): string[] {
  const head = ['model', 'layers', 'kvDim', 'tokens', 'f32 B/token', 'f16 B/token', 'int8 B/token', 'f16/f32', 'int8/f32'];
  const widths = [12, 6, 5, 6, 11, 11, 12, 7, 8];
  const lines = [head.map((h, i) => pad(h, widths[i], i > 0)).join('  ')];
  for (const r of q.storageBytes) {
    const b = r.bytesPerToken;
    const cells = [r.model, String(r.nLayers), String(r.kvDim), String(r.tokens), b.f32.toFixed(1), b.f16.toFixed(1), b.int8.toFixed(1), (b.f16 / b.f32).toFixed(3), (b.int8 / b.f32).toFixed(3)];
    lines.push(cells.map((c, i) => pad(c, widths[i], i > 0)).join('  '));
  }
  return lines;
}

const hasContexts = (q: QualityResult) => (q.contextRows?.length ?? 0) > 0;
const hasStorage = (q: QualityResult) => (q.storageRows?.length ?? 0) > 0;

/** The bos cut against the plain cut's full prefill, beside the plain cut on the same prompts. */
function crossCutLines(q: QualityResult): string[] {
  if (!q.crossCut || q.crossCut.rows.length === 0) return [];
  const n = q.plan.continuation;
  const head = ['method', 'bos: mean KL', 'top-1', `exact ${n}`, 'plain: mean KL', 'top-1', `exact ${n}`];
  const widths = [16, 12, 6, 8, 14, 6, 8];
  const lines = [head.map((h, i) => pad(h, widths[i], i > 0)).join('  ')];
  for (const r of q.crossCut.rows) {
    const cells = [r.label, kl(r.bos.meanKl), pct(r.bos.top1), pct(r.bos.exactMatch), kl(r.plain.meanKl), pct(r.plain.top1), pct(r.plain.exactMatch)];
    lines.push(cells.map((c, i) => pad(c, widths[i], i > 0)).join('  '));
  }
  return lines;
}

const CROSS_CUT_TEXT =
  'Both cuts scored against the **plain** cut\'s full prefill `[BOS] c1 c2 … q` (the prompt a user would run without a cache): the bos cut\'s context, ' +
  'then the same question and the plain reference\'s continuation teacher-forced. The "full" row of the bos cut is what the extra BOS tokens alone change.';

export function renderQualityTable(q: QualityResult): string[] {
  const lines = qualityLines(q.rows, q.plan.continuation);
  lines.push('', ...choiceLines(q));
  const x = crossCutLines(q);
  if (x.length > 0) lines.push('', `Against the plain cut's full prefill (target ${q.crossCut.size}, first ${q.crossCut.prompts} prompts):`, ...x);
  if (hasContexts(q)) {
    lines.push('', `Chunk contexts (plain cut; lead-in ${JSON.stringify(q.leadIn.text)}):`, ...contextRowLines(q));
    lines.push('', "Paired, each context against 'none' on the same prompts:", ...pairedLines(q.contextPaired, q.plan.continuation));
    lines.push('', `context mode by the rule: ${q.contextChoice.mode} (${q.contextChoice.reason})`);
  }
  if (hasStorage(q)) {
    lines.push('', 'KV storage, bytes per token of a chunk record:', ...storageBytesLines(q));
    lines.push('', 'KV storage (plain cut; chunk rows through each format before linking):', ...storageRowLines(q));
    lines.push('', 'Paired, each setting against f32 on the same prompts:', ...pairedLines(q.storagePaired, q.plan.continuation));
  }
  const g = gpuCheckLines(q);
  if (g.length > 0) lines.push('', `GPU cross-check (logits after the question, GpuModel.prefillLinked against the CPU reference; GPU KV pool ${q.gpuKvDtype ?? '?'}):`, ...g);
  return lines;
}

function qualityMarkdown(q: QualityResult): string[] {
  const out: string[] = [];
  const p = q.plan;
  const lens = q.documents.map((d) => d.tokens);
  const mainRows = (scope: number | 'all') => q.rows.filter((x) => x.size === scope);
  out.push('', `## Quality on stories260K (CPU reference; prompt + continuation ≤ ${p.maxContext} positions)`, '');
  out.push(
    `Computed on the CPU oracle (f64 sums) with the CPU reference of chunk linking (\`src/model/cpu-link.ts\`, the same math as ` +
      `\`GpuModel.prefillLinked\`): ${q.seconds.toFixed(0)} s for everything below (documents ${q.timing.documents.toFixed(0)} s, chunk KV ${q.timing.chunks.toFixed(0)} s, ` +
      `full references ${q.timing.references.toFixed(0)} s, methods ${q.timing.methods.toFixed(0)} s, bos cut against the plain prompt ${(q.timing.crossCut ?? NaN).toFixed(0)} s, ` +
      `chunk contexts ${(q.timing.contexts ?? NaN).toFixed(0)} s, storage settings ${(q.timing.storage ?? NaN).toFixed(0)} s, GPU cross-check ${q.timing.gpuCheck.toFixed(0)} s; ` +
      `time budget ${p.budgetS} s: no prompt starts after it, at least ${p.minPrompts} run).`,
  );
  out.push('');
  out.push(
    `Evaluation set made here: ${q.documents.length} stories sampled from the model itself (temperature 0.8, top-k 40, fixed seeds, from BOS and a short opening, ` +
      `drawn up to a seeded length in ${p.minDocTokens}–${p.maxDocTokens} tokens and cut back to the last sentence end; ${Math.min(...lens)}–${Math.max(...lens)} tokens, ` +
      `mean ${(lens.reduce((a, b) => a + b, 0) / lens.length).toFixed(0)}). A prompt links ${p.minDocsPerPrompt}–${p.maxDocsPerPrompt} of them in a seeded random order ` +
      `(the last ones dropped while any size or cut would leave less than ${p.continuation} positions for the continuation) and ends with the first ` +
      `${p.questionTokens} tokens of another story (the question). Each story is cut by KVSplit (\`splitDocument\`, target ${p.chunkSizes.map((s) => s.target).join(' / ')} tokens), ` +
      `so a story may be several chunks; each chunk's KV is computed alone from position 0. **plain**: \`[BOS] c1 c2 … q\`, chunks computed without BOS. ` +
      `**bos**: \`[BOS c1] [BOS c2] … q\`, each chunk computed with its own BOS and linked with it (EPIC's chunk prefill). Each cut is compared with the full prefill of its own tokens.`,
  );
  out.push('', '| chunk target | prompts | mean chunks | mean tokens plain | mean tokens bos |', '| ---: | ---: | ---: | ---: | ---: |');
  for (const s of q.sizes) out.push(`| ${s.target} | ${s.prompts} | ${s.meanChunks.toFixed(1)} | ${s.meanTokens.plain.toFixed(0)} | ${s.meanTokens.bos.toFixed(0)} |`);
  out.push('');
  out.push(
    `Methods: **naive** places every chunk's cached KV at its position and recomputes nothing; **attnlink k** recomputes the first k tokens of each chunk; ` +
      `**cacheblend r** recomputes the share r of all chunk tokens whose K/V at layer ${p.blendLayer} deviates most from a full prefill's ("probed": the chunk tokens run through layers 0..${p.blendLayer} to measure it); ` +
      `recomputed tokens attend causally to everything before them, then the question runs. **prefix (exact)** reuses the longest cached token prefix of the prompts run before it ` +
      `in this evaluation (same size and cut): its output equals full by construction, so only its "reused %" says something.`,
  );
  out.push('');
  out.push(
    `Metrics, against full prefill on the same tokens: the reference is full's logits after each question token, then its greedy ${p.continuation}-token continuation, ` +
      `teacher-forced into every method. "mean KL" is KL(full ‖ method) in nats averaged over those ${p.questionTokens + p.continuation} positions (median and max over prompts of the per-prompt mean); ` +
      `"KL@answer" the KL after the last question token only (the first generated token); "top-1" the share of those positions with the same argmax; "ppl" the perplexity of full's greedy ` +
      `continuation under the method (full's own row is the floor); "exact ${p.continuation}" the share of prompts whose greedy decode reproduces full's ${p.continuation} tokens and "matched" ` +
      `the mean count of leading tokens it reproduces (a greedy decode equals the reference while each teacher-forced argmax does, so these come from the same pass). ` +
      `reused / recomputed / computed / probed are mean tokens per prompt; "reused %" the share of prompt tokens taken from a cache. ` +
      `Rows of size "all" pool every size's prompts (a prompt counts once per size).`,
  );
  out.push('', '```', ...qualityLines(q.rows, p.continuation), '```', '');
  out.push(`Rule for the default k: ${q.rule}.`, '');
  for (const line of choiceLines(q)) out.push(`- ${line}`);
  const x = crossCutLines(q);
  if (x.length > 0) {
    out.push('', `### Which reference: the bos cut against the plain prompt (target ${q.crossCut.size}, first ${q.crossCut.prompts} prompts)`, '', CROSS_CUT_TEXT, '', '```', ...x, '```');
  }
  if (hasContexts(q)) out.push(...contextMarkdown(q));
  if (hasStorage(q)) out.push(...storageMarkdown(q));
  const g = gpuCheckLines(q);
  if (g.length > 0) {
    out.push('', `GPU cross-check: the first ${p.gpuChecks} prompt(s) at target ${q.gpuCheck[0].size} through \`GpuModel.prefillLinked\` (the GPU selects its own cacheblend tokens), ` +
      'logits after the question against this CPU evaluation\'s ("selection diff": tokens in one selection and not the other). ' +
      `The GPU's KV pool holds ${q.gpuKvDtype ?? '?'} values` +
      (q.gpuCheck.some((x) => x.klCpuF16Gpu !== undefined)
        ? ': "KL(CPU ‖ GPU)" is against the f32 CPU reference, "KL(CPU f16 ‖ GPU)" against its f16-pool emulation (see the storage section). ' +
          'Both are of the size of the f16 pool\'s own effect (its "full" row there): the emulation rounds as the GPU does but misses one term, and the ' +
          'difference grows through the layers, so it measures how much an f16 pool costs, not the GPU\'s exact values.'
        : '.'),
      '', '```', ...g, '```');
  }
  for (const v of VARIANTS) {
    const rows = mainRows('all').filter((x) => x.variant === v && x.method !== 'full' && x.method !== 'prefix');
    if (rows.length === 0) continue;
    out.push('', `Mean KL(full ‖ method), all sizes, ${v} cut (log scale; recomputed tokens per prompt in brackets):`, '', '```');
    out.push(...bars(rows.map((x) => ({ label: `${x.label} (${x.recomputed.toFixed(0)})`, value: x.meanKl })), 40, { log: true, unit: kl }));
    out.push('```');
  }
  out.push('', `Greedy exact match of ${p.continuation} tokens, all sizes:`, '', '```');
  const reuse = mainRows('all').filter((x) => x.method !== 'full' && x.method !== 'prefix');
  out.push(...bars(reuse.map((x) => ({ label: `${x.variant} ${x.label}`, value: Math.max(x.exactMatch, 1e-9) })), 40, { unit: (u) => pct(u < 1e-6 ? 0 : u) }));
  out.push('```');
  return out;
}

function pairedText(base: string): string {
  return (
    `Paired table: per prompt, the difference Δ = KL(setting) − KL(${base}) of the same method on the same prompt; negative is better. ` +
    '"KL base"/"KL setting" are the two means over the same prompts, "mean Δ"/"median Δ" over the per-prompt differences, ' +
    '"95% CI of mean Δ" a percentile bootstrap of the mean difference (prompts resampled with their pairs), "rel. change" mean(setting)/mean(base) − 1 with the interval ' +
    'from the same resamples, "better" the share of prompts where the setting has the lower KL (ties counted apart), "sign p" the two-sided exact sign test, ' +
    '"Wilcoxon p" the two-sided Wilcoxon signed-rank test (zero differences dropped, normal approximation with tie and continuity corrections), ' +
    `"exact" the greedy exact-match rate of the ${base} row → the setting's. Size "all": each prompt once, its KL (and exact match) averaged over the sizes it ran at, so the units stay independent. ` +
    'A CI that excludes 0 is the thing to read; the p-values are per row, not corrected for the number of rows.'
  );
}

function contextMarkdown(q: QualityResult): string[] {
  const p = q.plan;
  const n = (size: number | 'all') => q.contextPaired.find((r) => r.size === size)?.stats.n ?? 0;
  const out: string[] = ['', '### What a chunk\'s KV is computed after (chunk context; plain cut)', ''];
  out.push(
    `The same prompts, the same full-prefill reference of the plain prompt \`[BOS] c1 c2 … q\` and the same linking; only the chunk KV differs, computed as ` +
      `\`src/engine/doc-layout.ts\` lays it out (\`cpuComputeChunk(model, tokens, context)\`: context then chunk from position 0, the context's KV dropped): ` +
      `**none** the chunk alone from position 0 (the rows above); **lead-in** after the last ${p.contexts.tokens} tokens of \`LEAD_IN_TEXT\`, no BOS ` +
      `(ids ${q.leadIn.ids.join(' ')}: ${JSON.stringify(q.leadIn.text)}); **previous** after the ${p.contexts.tokens} tokens of the same story just before the chunk ` +
      '(a story\'s first chunk gets none, so at a target where every story is one chunk it equals none). ' +
      `Methods: naive and AttnLink k = ${p.contexts.ks.join(', ')}. Prompts per table: ${q.sizes.map((s) => `${n(s.target)} at target ${s.target}`).join(', ')}, ${n('all')} over all sizes.`,
  );
  out.push('', '```', ...contextRowLines(q), '```', '', pairedText('none'), '', '```', ...pairedLines(q.contextPaired, p.continuation), '```');
  out.push('', `Rule for the recommended context mode: ${q.contextRule}.`, '', `- **Recommended: ${q.contextChoice.mode}.** ${q.contextChoice.reason}.`);
  return out;
}

function storageMarkdown(q: QualityResult): string[] {
  const p = q.plan;
  const n = q.storagePaired.find((r) => r.size === 'all')?.stats.n ?? 0;
  const out: string[] = ['', '### KV storage precision (plain cut)', ''];
  out.push(
    'Bytes per token of a chunk record (`chunkRecordBytes(nLayers, kvDim, n, storage) / n`: header, token ids, payload; int8 adds one f32 scale per ' +
      'channel for K and one per token for V), for stories260K and for Qwen2.5-0.5B\'s shape (24 layers, 2 KV heads × 64):',
    '',
    '```',
    ...storageBytesLines(q),
    '```',
    '',
  );
  out.push(
    `Quality: each chunk's f32 rows (computed alone, as in the rows above) are encoded into a chunk record (\`encodeChunkRecord\`) in each format, decoded back to f32 ` +
      '(`decodeChunkRecord`) and placed with `setKV` before linking; scored against the f32 full prefill like every row. **f32** is the plain cut\'s own rows ' +
      '(its round trip is checked bit-exact on every chunk); **f16** rounds each value to half precision; **int8** is symmetric int8 with per-channel scales for K ' +
      '(before RoPE) and per-token scales for V (KVQuant style). **f16-pool** emulates the GPU\'s f16 KV pool on the CPU reference without changing it: ' +
      'each chunk computed with every K/V row rounded to f16 right after its token\'s step, and every row the link writes (BOS, recomputed tokens, question, ' +
      'continuation) rounded the same way (`CpuLinkOptions.afterToken`); it differs from the GPU only in that a token\'s own step reads its new row before the rounding. ' +
      'Its **full** row is the cost of the f16 pool on a plain full prefill. "KL to f32" is KL(the same method on f32 rows ‖ this setting) averaged over the same ' +
      `${p.questionTokens + p.continuation} positions, "top-1 = f32" the share of those positions with the same argmax: the cost of the storage alone. ` +
      `Prompts: ${q.sizes.map((s) => `${q.storagePaired.find((r) => r.size === s.target)?.stats.n ?? 0} at target ${s.target}`).join(', ')}, ${n} over all sizes.`,
  );
  out.push('', '```', ...storageRowLines(q), '```', '', pairedText('f32'), '', '```', ...pairedLines(q.storagePaired, p.continuation), '```');
  return out;
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
  if (r.quality) out.push(...qualityMarkdown(r.quality));
  if (r.speed.rows.length === 0 && r.speed.skipped.length === 0) {
    out.push('', '## Time to first token', '', 'Not run in this report (`--skip-speed`, or no model to time).', '');
    return out.join('\n');
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
