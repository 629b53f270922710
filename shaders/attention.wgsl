// attention.wgsl: causal attention over a paged KV cache whose keys are stored before RoPE.
// One kernel serves prefill (many query tokens, one split) and decode (few tokens, split-K).
//
// Rows: the (token t, query head h) pairs of one KV head g, in token-major order (f = t*G + h%G,
// h = g*G + f%G); a workgroup takes ROWS consecutive rows, so with GQA every K/V tile it loads
// serves all the query heads of its group. For row (t, h), with qpos = positions[t]:
//   out[t, h] = sum_k softmax_k(scale * q[t,h] . rope(K[k], pos_k)) * V[k]
// over every cached key k, in every page-table entry of the workgroup's split, with pos_k <= qpos
// (causal by position, so entries may come in any order and leave gaps) and, when window > 0,
// qpos - window < pos_k (a sliding-window layer: llama.cpp masks a key once qpos - pos_k >= window).
// Entries wholly outside the window are skipped without loading their keys. Keys are rotated by the
// absolute position of their slot as they are loaded into workgroup memory; q is already rotated
// (rope.wgsl). Softmax is online (running max m and sum l per row) over tiles of up to BK keys
// gathered from consecutive entries of the split. Reference: src/gpu/ref/attention.ts attentionPagedRef.
// The pools hold f32 values or f16 halves (KV_DTYPE); halves are widened to f32 as they are loaded,
// so the f16 form equals the f32 one on K/V rounded to f16 (attentionPagedRef with kvDtype 'f16').
//
// Page-table entry e = (page, start_pos, n_tokens, slot_offset): slots page*16 + slot_offset + j
// hold the tokens at positions start_pos + j, j < n_tokens.
//
// Dispatch: (ceil(n_tokens * G / ROWS), n_kv_heads, n_splits). Split s reads entries
//   [s * entries_per_split, min((s+1) * entries_per_split, n_entries)).
// Bindings: 0 uniform Params;
//   1 read q (array<vec4<f32>>): row (t, h) at vec4 index (q_offset + t*q_stride + h*HEAD_DIM) / 4
//   2 read k_pool (array<u32>, [n_pages*16, n_kv_heads*HEAD_DIM] values): f32 pools hold one value per
//     word (read through bitcast), f16 pools two halves per word (value 2i in the low half of word i)
//   3 read v_pool (same shape, array<kv_quad>: vec4<f32> for f32 pools, vec2<u32> = 4 halves for f16)
//   4 read page_table (array<vec4<u32>>, [n_entries]); 5 read positions (array<u32>, [n_tokens])
//   6 read rope_cs (array<vec2<f32>>, [max_pos, rope_dim/2] of (cos, sin))
//   7 read_write dst (array<vec4<f32>>):
//       direct = 1: the output [n_tokens, n_heads*HEAD_DIM], normalized;
//       direct = 0: partial results [n_tokens, n_heads, n_splits, HEAD_DIM/4 + 1] vec4: the unnormalized
//         output, then (m, l, 0, 0); attention_reduce.wgsl merges the splits.
// Params: n_tokens, n_heads, n_kv_heads, rope_dim, neox (0/1), max_pos, n_entries, entries_per_split,
//   n_splits, direct, q_stride, q_offset (elements, multiples of 4), scale (f32), window (0: none).
// Constants (placeholders): HEAD_DIM (multiple of 4), GROUP (= n_heads / n_kv_heads), ROWS, WG, BK
//   (keys per tile: 16, fewer for large heads so the tile fits workgroup memory), DSPLIT (threads per
//   dot product; WG must be a multiple of BK * DSPLIT), KV_DTYPE (f32 or f16: picks the V pool element
//   type and the K/V loaders below).

struct Params {
  n_tokens: u32,
  n_heads: u32,
  n_kv_heads: u32,
  rope_dim: u32,
  neox: u32,
  max_pos: u32,
  n_entries: u32,
  entries_per_split: u32,
  n_splits: u32,
  direct: u32,
  q_stride: u32,
  q_offset: u32,
  scale: f32,
  window: u32,
}

const HD: u32 = {{HEAD_DIM}}u;
const G: u32 = {{GROUP}}u;
const ROWS: u32 = {{ROWS}}u;
const WG: u32 = {{WG}}u;
const DSPLIT: u32 = {{DSPLIT}}u;
const PAGE: u32 = 16u; // token slots per KV page
const BK: u32 = {{BK}}u; // keys per tile
const HD4: u32 = HD / 4u;
const HALF_HD: u32 = HD / 2u;
const KS4: u32 = HD4 + 1u; // padded row stride of k_s so the rows read together fall in different banks
const RSTEP: u32 = WG / (BK * DSPLIT); // rows between one thread's scores
const SC_N: u32 = (ROWS + RSTEP - 1u) / RSTEP; // scores per thread
const ACC_N: u32 = (ROWS * HD4 + WG - 1u) / WG; // output vec4s per thread
const M_INIT: f32 = -1.0e30; // running max before any key: finite, so exp(m_old - m_new) never sees inf - inf
const MASKED: f32 = -3.0e38; // score of a masked key; its weight is set to 0 explicitly

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k_pool: array<u32>;
@group(0) @binding(3) var<storage, read> v_pool: array<kv_quad_{{KV_DTYPE}}>;
@group(0) @binding(4) var<storage, read> page_table: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> positions: array<u32>;
@group(0) @binding(6) var<storage, read> rope_cs: array<vec2<f32>>;
@group(0) @binding(7) var<storage, read_write> dst: array<vec4<f32>>;

// K/V loaders of the two pool types; KV_DTYPE picks one pair by name, the other is unused.
alias kv_quad_f32 = vec4<f32>; // 4 values
alias kv_quad_f16 = vec2<u32>; // 4 halves
fn v_load_f32(x: vec4<f32>) -> vec4<f32> {
  return x;
}
fn v_load_f16(x: vec2<u32>) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(x.x), unpack2x16float(x.y));
}
// Values a and b of the K row starting at value index `row` (a multiple of 4).
fn k_pair_f32(row: u32, a: u32, b: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(k_pool[row + a]), bitcast<f32>(k_pool[row + b]));
}
fn k_pair_f16(row: u32, a: u32, b: u32) -> vec2<f32> {
  if (b == a + 1u && a % 2u == 0u) {
    return unpack2x16float(k_pool[(row + a) / 2u]); // one word: interleaved rotation pairs, unrotated dims
  }
  // A neox pair (a, a + rope_dim/2) spans two words; the neighbouring pair reads the same words.
  let wa = unpack2x16float(k_pool[(row + a) / 2u]);
  let wb = unpack2x16float(k_pool[(row + b) / 2u]);
  return vec2<f32>(select(wa.x, wa.y, a % 2u == 1u), select(wb.x, wb.y, b % 2u == 1u));
}

var<workgroup> q_s: array<vec4<f32>, ROWS * HD4>; // scaled query rows
var<workgroup> k_s: array<vec4<f32>, BK * KS4>; // rotated keys of the tile
var<workgroup> v_s: array<vec4<f32>, BK * HD4>;
var<workgroup> s_part: array<f32, ROWS * BK * DSPLIT>; // partial dot products
var<workgroup> p_s: array<f32, ROWS * BK>; // scores, then softmax weights
var<workgroup> alpha_s: array<f32, ROWS>; // per-tile rescale of each row, then the final sum l
var<workgroup> m_s: array<f32, ROWS>;
var<workgroup> qpos_s: array<u32, ROWS>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = wg.y;
  let split = wg.z;
  let row0 = wg.x * ROWS;
  let kv4 = p.n_kv_heads * HD4;
  let half = p.rope_dim / 2u;

  for (var i = li; i < ROWS * HD4; i += WG) {
    let f = row0 + i / HD4;
    let t = f / G;
    var val = vec4<f32>(0.0);
    if (t < p.n_tokens) {
      let h = g * G + f % G;
      val = q[(p.q_offset + t * p.q_stride + h * HD) / 4u + i % HD4] * p.scale;
    }
    q_s[i] = val;
  }
  if (li < ROWS) {
    let t = (row0 + li) / G;
    qpos_s[li] = select(0u, positions[min(t, p.n_tokens - 1u)], t < p.n_tokens);
  }
  // The block's largest and smallest query positions (the same in every thread): entries starting
  // past the largest, or (with a window) ending before the smallest one's window, are skipped.
  var qmax = 0u;
  var qmin = 0xffffffffu;
  let t_last = min((row0 + ROWS - 1u) / G, p.n_tokens - 1u);
  for (var t = row0 / G; t <= t_last; t++) {
    qmax = max(qmax, positions[t]);
    qmin = min(qmin, positions[t]);
  }

  var m_row = M_INIT;
  var l_row = 0.0;
  var acc: array<vec4<f32>, ACC_N>;
  for (var k = 0u; k < ACC_N; k++) {
    acc[k] = vec4<f32>(0.0);
  }

  let e_begin = split * p.entries_per_split;
  let e_end = min(e_begin + p.entries_per_split, p.n_entries);
  // Tiles gather up to BK keys across consecutive entries of the split, so many short entries (a
  // sequence whose chunks had scattered tokens recomputed) cost what their keys cost, not a tile
  // each. Every thread walks the entries the same way (uniform), keeping the tile's slots and
  // positions in private arrays.
  var e = e_begin;
  var off = 0u; // keys of entry e already taken
  loop {
    var slot_j: array<u32, BK>;
    var pos_j: array<u32, BK>;
    var n_keys = 0u;
    loop {
      if (e >= e_end || n_keys == BK) {
        break;
      }
      let ent = page_table[e];
      let len = min(ent.z, PAGE);
      let before_window = p.window != 0u && len > 0u && ent.y + len - 1u + p.window <= qmin;
      if (off >= len || ent.y > qmax || before_window) {
        e++;
        off = 0u;
        continue;
      }
      let take = min(len - off, BK - n_keys);
      for (var j = 0u; j < take; j++) {
        slot_j[n_keys + j] = ent.x * PAGE + ent.w + off + j;
        pos_j[n_keys + j] = ent.y + off + j;
      }
      n_keys += take;
      off += take;
    }
    if (n_keys == 0u) {
      break;
    }

    // K tile: one (a, b) dimension pair per step, rotated by the key's position when a < rope_dim.
    for (var i = li; i < BK * HALF_HD; i += WG) {
      let j = i / HALF_HD;
      let pi = i % HALF_HD;
      var a = p.rope_dim + 2u * (pi - half);
      var b = a + 1u;
      if (pi < half) {
        if (p.neox != 0u) {
          a = pi;
          b = pi + half;
        } else {
          a = 2u * pi;
          b = a + 1u;
        }
      }
      var xa = 0.0;
      var xb = 0.0;
      if (j < n_keys) {
        let row = slot_j[j] * kv4 * 4u + g * HD;
        let x = k_pair_{{KV_DTYPE}}(row, a, b);
        xa = x.x;
        xb = x.y;
        if (pi < half) {
          let cs = rope_cs[min(pos_j[j], p.max_pos - 1u) * half + pi];
          let ra = xa * cs.x - xb * cs.y;
          xb = xa * cs.y + xb * cs.x;
          xa = ra;
        }
      }
      k_s[j * KS4 + a / 4u][a % 4u] = xa;
      k_s[j * KS4 + b / 4u][b % 4u] = xb;
    }
    for (var i = li; i < BK * HD4; i += WG) {
      let j = i / HD4;
      var val = vec4<f32>(0.0);
      if (j < n_keys) {
        val = v_load_{{KV_DTYPE}}(v_pool[slot_j[j] * kv4 + g * HD4 + i % HD4]);
      }
      v_s[i] = val;
    }
    workgroupBarrier();

    // Scores: thread (c, j) sums dims c, c+DSPLIT, ... of key j against rows r0, r0+RSTEP, ...
    {
      let c = li % DSPLIT;
      let j = (li / DSPLIT) % BK;
      let r0 = li / (DSPLIT * BK);
      var sc: array<f32, SC_N>;
      for (var k = 0u; k < SC_N; k++) {
        sc[k] = 0.0;
      }
      for (var d4 = c; d4 < HD4; d4 += DSPLIT) {
        let kv = k_s[j * KS4 + d4];
        for (var k = 0u; k < SC_N; k++) {
          let r = r0 + k * RSTEP;
          if (r < ROWS) {
            sc[k] += dot(q_s[r * HD4 + d4], kv);
          }
        }
      }
      for (var k = 0u; k < SC_N; k++) {
        let r = r0 + k * RSTEP;
        if (r < ROWS) {
          s_part[(r * BK + j) * DSPLIT + c] = sc[k];
        }
      }
    }
    workgroupBarrier();

    for (var i = li; i < ROWS * BK; i += WG) {
      let r = i / BK;
      let j = i % BK;
      var s = 0.0;
      for (var c = 0u; c < DSPLIT; c++) {
        s += s_part[i * DSPLIT + c];
      }
      let visible = pos_j[j] <= qpos_s[r] && (p.window == 0u || pos_j[j] + p.window > qpos_s[r]);
      p_s[i] = select(MASKED, s, j < n_keys && visible);
    }
    workgroupBarrier();

    // Online softmax: thread r owns row r's running max and sum.
    if (li < ROWS) {
      var mx = m_row;
      for (var j = 0u; j < n_keys; j++) {
        mx = max(mx, p_s[li * BK + j]);
      }
      let alpha = exp(m_row - mx);
      var sum = 0.0;
      for (var j = 0u; j < BK; j++) {
        let s = p_s[li * BK + j];
        let w = select(0.0, exp(s - mx), s > MASKED);
        p_s[li * BK + j] = w;
        sum += w;
      }
      l_row = l_row * alpha + sum;
      m_row = mx;
      alpha_s[li] = alpha;
    }
    workgroupBarrier();

    for (var k = 0u; k < ACC_N; k++) {
      let i = li + k * WG;
      if (i < ROWS * HD4) {
        let r = i / HD4;
        let d4 = i % HD4;
        var a = acc[k] * alpha_s[r];
        for (var j = 0u; j < n_keys; j++) {
          a += p_s[r * BK + j] * v_s[j * HD4 + d4];
        }
        acc[k] = a;
      }
    }
    workgroupBarrier();
  }

  if (li < ROWS) {
    alpha_s[li] = l_row;
    m_s[li] = m_row;
  }
  workgroupBarrier();
  for (var k = 0u; k < ACC_N; k++) {
    let i = li + k * WG;
    if (i < ROWS * HD4) {
      let r = i / HD4;
      let d4 = i % HD4;
      let f = row0 + r;
      let t = f / G;
      if (t < p.n_tokens) {
        let h = g * G + f % G;
        let l = alpha_s[r];
        if (p.direct != 0u) {
          dst[(t * p.n_heads + h) * HD4 + d4] = select(vec4<f32>(0.0), acc[k] / l, l > 0.0);
        } else {
          let base = ((t * p.n_heads + h) * p.n_splits + split) * (HD4 + 1u);
          dst[base + d4] = acc[k];
          if (d4 == 0u) {
            dst[base + HD4] = vec4<f32>(m_s[r], l, 0.0, 0.0);
          }
        }
      }
    }
  }
}
