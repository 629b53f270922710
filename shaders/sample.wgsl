// sample.wgsl: picks the next token from a logits row on the GPU, so the host reads back one u32.
//
// One workgroup walks the whole vocabulary several times:
//   1. argmax (ties -> lowest id; NaN counts as -inf). Greedy (greedy = 1, top_k = 1) or a logits row
//      whose max is not finite stops here.
//   2. top-k: the k-th largest logit is found exactly by a 3-level radix select (11, 11, 10 bits) over
//      order-preserving u32 keys; every token whose key is >= it is kept (ties at the threshold too).
//   3. weights w_i = exp((x_i - max) * inv_temp) over the kept tokens, W = their f32 sum, and integer
//      masses c_i = floor(w_i * 2^30 / W) (sum <= 2^30, so u32 histograms and prefix sums are exact
//      and do not depend on the order threads add them in).
//   4. top-p (top_p16 < 65536, p = top_p16 / 65536): the largest key t such that the mass of kept tokens
//      with key >= t is >= max(1, floor(mass_kept * top_p16 / 65536)), by the same radix select over masses.
//   5. draw: rand = pcg(step + pcg(seed)), r = floor(rand * mass / 2^32); the token is the first kept
//      one, in index order, whose inclusive prefix mass exceeds r (found in two levels of prefix sums).
// Reference: src/gpu/ref/sample.ts sampleRef (same keys, PRNG and integer arithmetic).
//
// Dispatch: (1, 1, 1). WG in {256, 512, 1024} (2048 histogram bins split evenly over the threads).
// Bindings: 0 uniform Params; 1 read logits (array<f32>, [vocab]); 2 read_write out (array<u32>): the
//   token id is written to out[out_index].
// Params: vocab, greedy (0/1), inv_temp (f32, 1/temperature), top_k (0 or >= vocab: off), top_p16
//   (>= 65536: off), seed, step, out_index.

struct Params {
  vocab: u32,
  greedy: u32,
  inv_temp: f32,
  top_k: u32,
  top_p16: u32,
  seed: u32,
  step: u32,
  out_index: u32,
}

override WG: u32 = 256;
const NB: u32 = 2048u; // radix bins
const NEG_INF_KEY: u32 = 0x007fffffu; // key of -inf; NaN maps to 0, below it
const POS_INF_KEY: u32 = 0xff800000u;
const MASS_SCALE: f32 = 1073741824.0; // 2^30

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> hist: array<atomic<u32>, NB>;
var<workgroup> part: array<u32, WG>;
var<workgroup> fpart: array<f32, WG>;
var<workgroup> best_key: atomic<u32>;
var<workgroup> best_inv_idx: atomic<u32>; // ~index, so atomicMax picks the lowest index
var<workgroup> mass_total: atomic<u32>;
var<workgroup> sel_digit: u32;
var<workgroup> sel_rem: u32;
var<workgroup> bcast: u32;

/** Order-preserving key: a < b as floats <=> key(a) < key(b); NaN -> 0. */
fn key_of(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  if ((b & 0x7fffffffu) > 0x7f800000u) {
    return 0u;
  }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn pcg(x: u32) -> u32 {
  let s = x * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

/** floor(a * b / 2^32), exact. */
fn mul_hi(a: u32, b: u32) -> u32 {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let mid = ((a0 * b0) >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  return a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
}

/** Integer mass of a kept token. */
fn mass_of(x: f32, k: u32, m: f32, scale: f32) -> u32 {
  if (k <= NEG_INF_KEY) {
    return 0u;
  }
  return u32(floor(exp((x - m) * p.inv_temp) * scale));
}

/** Mass of the kept tokens (key >= floor_key) among indices [lo, hi). */
fn mass_in(lo: u32, hi: u32, floor_key: u32, m: f32, scale: f32) -> u32 {
  var s = 0u;
  for (var i = lo; i < hi; i++) {
    let x = logits[i];
    let k = key_of(x);
    if (k >= floor_key) {
      s += mass_of(x, k, m, scale);
    }
  }
  return s;
}

/** Suffix sum over threads t >= li. */
fn suffix_sum(li: u32, v: u32) -> u32 {
  part[li] = v;
  workgroupBarrier();
  for (var off = 1u; off < WG; off <<= 1u) {
    var x = part[li];
    if (li + off < WG) {
      x += part[li + off];
    }
    workgroupBarrier();
    part[li] = x;
    workgroupBarrier();
  }
  let r = part[li];
  workgroupBarrier();
  return r;
}

/** Inclusive prefix sum over threads t <= li, and the workgroup total. */
fn prefix_sum(li: u32, v: u32) -> vec2<u32> {
  part[li] = v;
  workgroupBarrier();
  for (var off = 1u; off < WG; off <<= 1u) {
    var x = part[li];
    if (li >= off) {
      x += part[li - off];
    }
    workgroupBarrier();
    part[li] = x;
    workgroupBarrier();
  }
  let r = vec2<u32>(part[li], part[WG - 1u]);
  workgroupBarrier();
  return r;
}

fn f32_sum(li: u32, v: f32) -> f32 {
  fpart[li] = v;
  workgroupBarrier();
  for (var off = WG / 2u; off > 0u; off >>= 1u) {
    if (li < off) {
      fpart[li] += fpart[li + off];
    }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&fpart[0]);
}

/**
 * The largest key t such that the weight (1 per token, or its mass) of tokens with key >= max(t, floor_key)
 * is >= want; exact, in three radix passes.
 */
fn radix_select(li: u32, want: u32, use_mass: bool, floor_key: u32, m: f32, scale: f32) -> u32 {
  var prefix = 0u;
  var rem = want;
  for (var level = 0u; level < 3u; level++) {
    var shift = 21u;
    var hi_mask = 0u;
    var dmask = 0x7ffu;
    if (level == 1u) {
      shift = 10u;
      hi_mask = 0xffe00000u;
    } else if (level == 2u) {
      shift = 0u;
      hi_mask = 0xfffffc00u;
      dmask = 0x3ffu;
    }
    for (var b = li; b < NB; b += WG) {
      atomicStore(&hist[b], 0u);
    }
    workgroupBarrier();
    for (var i = li; i < p.vocab; i += WG) {
      let x = logits[i];
      let k = key_of(x);
      if ((k & hi_mask) == prefix && k >= floor_key) {
        var c = 1u;
        if (use_mass) {
          c = mass_of(x, k, m, scale);
        }
        if (c > 0u) {
          atomicAdd(&hist[(k >> shift) & dmask], c);
        }
      }
    }
    workgroupBarrier();
    // Thread li owns bins [li*bpt, (li+1)*bpt); find the bin where the count from the top reaches rem.
    let bpt = NB / WG;
    var own = 0u;
    for (var b = 0u; b < bpt; b++) {
      own += atomicLoad(&hist[li * bpt + b]);
    }
    let incl = suffix_sum(li, own);
    let excl = incl - own;
    if (excl < rem && incl >= rem) {
      var acc = excl;
      for (var b = bpt; b > 0u; b--) {
        let h = atomicLoad(&hist[li * bpt + b - 1u]);
        if (acc + h >= rem) {
          sel_digit = li * bpt + b - 1u;
          sel_rem = rem - acc;
          break;
        }
        acc += h;
      }
    }
    let digit = workgroupUniformLoad(&sel_digit);
    rem = workgroupUniformLoad(&sel_rem);
    prefix |= digit << shift;
  }
  return prefix;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32) {
  // 1. argmax
  var kmax = 0u;
  var imax = 0u;
  for (var i = li; i < p.vocab; i += WG) {
    let k = key_of(logits[i]);
    if (k > kmax) {
      kmax = k;
      imax = i;
    }
  }
  atomicMax(&best_key, kmax);
  workgroupBarrier();
  let gk = atomicLoad(&best_key);
  if (kmax == gk) {
    atomicMax(&best_inv_idx, ~imax);
  }
  workgroupBarrier();
  if (li == 0u) {
    bcast = ~atomicLoad(&best_inv_idx);
  }
  let arg = workgroupUniformLoad(&bcast);
  let m = logits[arg];
  let mk = key_of(m);
  if (p.greedy != 0u || p.top_k == 1u || mk <= NEG_INF_KEY || mk >= POS_INF_KEY) {
    if (li == 0u) {
      out[p.out_index] = arg;
    }
    return;
  }

  // 2. top-k threshold key (0 keeps everything)
  var kk = 0u;
  if (p.top_k > 1u && p.top_k < p.vocab) {
    kk = radix_select(li, p.top_k, false, 0u, m, 0.0);
  }

  // 3. weights and their integer scale
  var ws = 0.0;
  for (var i = li; i < p.vocab; i += WG) {
    let x = logits[i];
    let k = key_of(x);
    if (k >= kk && k > NEG_INF_KEY) {
      ws += exp((x - m) * p.inv_temp);
    }
  }
  let scale = MASS_SCALE / f32_sum(li, ws);

  // 4. top-p threshold key
  var kp = kk;
  if (p.top_p16 < 65536u) {
    var own = 0u;
    for (var i = li; i < p.vocab; i += WG) {
      let x = logits[i];
      let k = key_of(x);
      if (k >= kk) {
        own += mass_of(x, k, m, scale);
      }
    }
    atomicAdd(&mass_total, own);
    workgroupBarrier();
    if (li == 0u) {
      let tot = atomicLoad(&mass_total);
      // floor(tot * top_p16 / 65536) without overflow (tot < 2^31, top_p16 < 2^16)
      bcast = max(1u, (tot >> 16u) * p.top_p16 + (((tot & 0xffffu) * p.top_p16) >> 16u));
    }
    let want = workgroupUniformLoad(&bcast);
    kp = radix_select(li, want, true, kk, m, scale);
  }

  // 5. inverse-CDF draw in index order, in two levels: thread li sums the contiguous range
  //    [li*chunk, (li+1)*chunk); the range holding r is then split over all threads again, so no
  //    thread walks more than ceil(chunk / WG) tokens.
  let chunk = (p.vocab + WG - 1u) / WG;
  let lo = min(li * chunk, p.vocab);
  let hi = min(lo + chunk, p.vocab);
  let own = mass_in(lo, hi, kp, m, scale);
  let scan = prefix_sum(li, own);
  let before = scan.x - own;
  let r = mul_hi(pcg(p.step + pcg(p.seed)), scan.y);
  if (before <= r && r < before + own) {
    sel_digit = li;
    sel_rem = before;
  }
  let owner = workgroupUniformLoad(&sel_digit);
  let base = workgroupUniformLoad(&sel_rem);
  let owner_hi = min(owner * chunk + chunk, p.vocab);
  let sub = (chunk + WG - 1u) / WG;
  let lo2 = min(owner * chunk + li * sub, owner_hi);
  let hi2 = min(lo2 + sub, owner_hi);
  let own2 = mass_in(lo2, hi2, kp, m, scale);
  let before2 = base + prefix_sum(li, own2).x - own2;
  if (before2 <= r && r < before2 + own2) {
    var acc = before2;
    for (var i = lo2; i < hi2; i++) {
      let x = logits[i];
      let k = key_of(x);
      if (k >= kp) {
        let c = mass_of(x, k, m, scale);
        if (acc + c > r) {
          out[p.out_index] = i;
          break;
        }
        acc += c;
      }
    }
  }
}
