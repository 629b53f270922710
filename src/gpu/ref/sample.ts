// TS reference for shaders/sample.wgsl: the same keys, thresholds, integer masses and PRNG, so a
// seed gives the same token on the GPU and here (up to exp() rounding, which only matters when a
// draw or a top-p cut lands a few mass units (of 2^30) from a boundary; `sampleRefDetail` reports those margins).

import { samplingInvTemp, samplingTopP16, type SampleParams } from '../ops/sample.ts';

const NEG_INF_KEY = 0x007fffff;
const POS_INF_KEY = 0xff800000;
const MASS_SCALE = 1073741824; // 2^30

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** Order-preserving u32 key of an f32 (NaN -> 0, below -inf). */
export function samplingKey(x: number): number {
  f32buf[0] = x;
  const b = u32buf[0];
  if ((b & 0x7fffffff) >>> 0 > 0x7f800000) return 0;
  return (b & 0x80000000 ? ~b : b | 0x80000000) >>> 0;
}

/** PCG hash (one round of the PCG-RXS-M-XS output function over an LCG step). */
export function pcgHash(x: number): number {
  const s = (Math.imul(x >>> 0, 747796405) + 2891336453) >>> 0;
  const w = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
  return ((w >>> 22) ^ w) >>> 0;
}

/** The 32 random bits of a draw: pcg(step + pcg(seed)). */
export function samplingRandom(seed: number, step: number): number {
  return pcgHash((step + pcgHash(seed)) >>> 0);
}

export interface SampleDetail {
  token: number;
  greedy: boolean;
  /** Thresholds as keys (kept: key >= threshold). */
  topKKey: number;
  topPKey: number;
  /** Integer mass of the kept tokens and the draw's point in [0, total). */
  total: number;
  r: number;
  /** Distance of r to the nearest cumulative-mass boundary, in mass units. */
  drawMargin: number;
  /** Distance of the top-p target to the cumulative masses around the cut, in mass units (Infinity when off). */
  topPMargin: number;
}

export function sampleRef(logits: Float32Array, params: SampleParams): number {
  return sampleRefDetail(logits, params).token;
}

export function sampleRefDetail(logits: Float32Array, params: SampleParams): SampleDetail {
  const vocab = logits.length;
  const keys = new Uint32Array(vocab);
  let arg = 0;
  for (let i = 0; i < vocab; i++) {
    keys[i] = samplingKey(logits[i]);
    if (keys[i] > keys[arg]) arg = i;
  }
  const mk = keys[arg];
  const greedyDetail = (): SampleDetail => ({
    token: arg,
    greedy: true,
    topKKey: 0,
    topPKey: 0,
    total: 0,
    r: 0,
    drawMargin: Infinity,
    topPMargin: Infinity,
  });
  if (params.temperature <= 0 || params.topK === 1 || mk <= NEG_INF_KEY || mk >= POS_INF_KEY) return greedyDetail();

  const m = logits[arg];
  const invT = samplingInvTemp(params.temperature);
  const byKeyDesc = Array.from({ length: vocab }, (_, i) => i).sort((a, b) => keys[b] - keys[a] || a - b);
  const kk = params.topK > 1 && params.topK < vocab ? keys[byKeyDesc[params.topK - 1]] : 0;

  const weight = (i: number) => Math.fround(Math.exp(Math.fround(Math.fround(logits[i] - m) * invT)));
  let W = 0;
  for (let i = 0; i < vocab; i++) if (keys[i] >= kk && keys[i] > NEG_INF_KEY) W += weight(i);
  const scale = Math.fround(MASS_SCALE / Math.fround(W));
  const mass = new Float64Array(vocab);
  for (let i = 0; i < vocab; i++) mass[i] = keys[i] > NEG_INF_KEY ? Math.floor(Math.fround(weight(i) * scale)) : 0;

  let kp = kk;
  let topPMargin = Infinity;
  const p16 = samplingTopP16(params.topP);
  if (p16 < 65536) {
    let tot = 0;
    for (let i = 0; i < vocab; i++) if (keys[i] >= kk) tot += mass[i];
    const target = Math.max(1, Math.floor((tot * p16) / 65536));
    // Walk groups of equal keys from the top: the cut is the first group where the mass reaches target.
    let cum = 0;
    for (let g = 0; g < vocab; ) {
      const key = keys[byKeyDesc[g]];
      if (key < kk) break;
      let end = g;
      let groupMass = 0;
      while (end < vocab && keys[byKeyDesc[end]] === key) groupMass += mass[byKeyDesc[end++]];
      if (cum + groupMass >= target) {
        kp = key;
        topPMargin = Math.min(target - cum, cum + groupMass - target + 1);
        break;
      }
      cum += groupMass;
      g = end;
    }
  }

  let total = 0;
  for (let i = 0; i < vocab; i++) if (keys[i] >= kp) total += mass[i];
  const rand = samplingRandom(params.seed, params.step);
  const r = Number((BigInt(rand) * BigInt(total)) >> 32n);
  let acc = 0;
  let token = arg;
  let drawMargin = Infinity;
  for (let i = 0; i < vocab; i++) {
    if (keys[i] < kp || mass[i] === 0) continue;
    if (acc + mass[i] > r) {
      token = i;
      drawMargin = Math.min(r - acc + 1, acc + mass[i] - r);
      break;
    }
    acc += mass[i];
  }
  return { token, greedy: false, topKKey: kk, topPKey: kp, total, r, drawMargin, topPMargin };
}
