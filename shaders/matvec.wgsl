// matvec.wgsl: decode matrix-vector products against packed weights (src/gpu/weights.ts layouts).
//
// main:       y[o] = (accumulate ? y[o] : 0) + sum_c W[r, c] * x[t, c] (+ bias[row_offset + r])
// main_gated: y[o] = silu(sum_c G[r, c] x[t, c]) * sum_c U[r, c] x[t, c]   (the SiLU-gated MLP)
//   for r < rows (the rows of one weight part), t < n_tokens, o = y_offset + t*y_stride + row_offset + r.
//   References: src/gpu/ref/matvec.ts matvecRef, src/gpu/ref/mlp.ts gateUpRef.
//
// Design (decode is memory-bound): a workgroup owns ROWS consecutive rows; its WG invocations
// stride over the columns in units of 4 (F32, F16, BF16) or 8 (block types) elements, loading each
// unit of x once into registers and reusing it for every row. A unit's weight load is 16 bytes
// (F32), 8 (F16, BF16, Q8_0) or one 4-byte quant word (every 4-, 5- and 6-bit type: 4 elements in
// its low nibbles, the 4 paired with them in its high nibbles). Consecutive invocations read
// consecutive units, so every quant load is coalesced; the block fields a unit needs besides
// (an f16 scale, d and m, a high-bit word, a K-quant super-block header as one 16-byte load) are
// shared by the neighbouring invocations of its block. Each unit is dequantized in registers
// exactly as ggml does (d*q, d*q + m, (d*sc)*q - dmin*m) and then dotted with x; decoding a
// K-quant sub-block's 6-bit scale per unit is a few ALU operations, cheap in a memory-bound loop.
//
// Per-invocation sums are reduced with subgroupAdd, then across subgroups in workgroup memory;
// without subgroups every invocation is its own "subgroup" and the same code becomes a
// shared-memory tree. The cross-subgroup step puts subgroup k's sum in slot local_invocation_index
// / subgroup_size, which assumes subgroups are consecutive ranges of invocations: true on every
// implementation we know of for 1-D workgroups, though WGSL does not promise it.
//
// Dispatch: (gx, gy, n_tokens) with gx*gy >= ceil(rows / ROWS) (grid1d); row group g = wg.y*gx + wg.x.
// Bindings: 0 uniform Params; 1 read x (array<vec4<f32>>, [n_tokens, cols]); 2 read_write y (array<f32>);
//   3 read bias (array<f32>, [row_offset + rows]; main only)
//   4, 5, 6 read: one weight part viewed as array<vec4<u32>> (F32 units, Q4_K/Q5_K headers),
//     array<vec2<u32>> (F16, BF16 and Q8_0 units, Q6_K scale pairs) and array<u32> (quant words of
//     the 4-, 5- and 6-bit types, every other field): the same buffer bound three times;
//   7, 8, 9 read: the up weight part, viewed the same way (main_gated only).
// Params (elements unless noted): rows, cols, row_offset, scale_offset (u32 words: where the quants
//   end), n_tokens, y_stride, y_offset, flags (bit 0: accumulate into y, bit 1: add bias),
//   up_scale_offset (u32 words).
// Constants: WTYPE override (ggml type ids: 0 F32, 1 F16, 30 BF16, 8 Q8_0, 2 Q4_0, 3 Q4_1, 6 Q5_0,
//   7 Q5_1, 12 Q4_K, 13 Q5_K, 14 Q6_K); placeholders WG (64, 128 or 256), ROWS, and SG ('' with
//   subgroups, '//' without: it comments out the subgroup lines).
// Requires cols % 4 == 0 (x is read as vec4); block types need cols % 32 == 0, K-quants cols % 256 == 0.

{{ENABLE_SUBGROUPS}}

struct Params {
  rows: u32,
  cols: u32,
  row_offset: u32,
  scale_offset: u32,
  n_tokens: u32,
  y_stride: u32,
  y_offset: u32,
  flags: u32,
  up_scale_offset: u32,
}

override WTYPE: u32 = 0u;
const WG: u32 = {{WG}}u;
const ROWS: u32 = {{ROWS}}u;
const T_F32: u32 = 0u;
const T_F16: u32 = 1u;
const T_Q4_0: u32 = 2u;
const T_Q4_1: u32 = 3u;
const T_Q5_0: u32 = 6u;
const T_Q5_1: u32 = 7u;
const T_Q8_0: u32 = 8u;
const T_Q4_K: u32 = 12u;
const T_Q5_K: u32 = 13u;
const T_Q6_K: u32 = 14u;
const T_BF16: u32 = 30u;
const FLAG_ACCUMULATE: u32 = 1u;
const FLAG_BIAS: u32 = 2u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> w_v4: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> w_v2: array<vec2<u32>>;
@group(0) @binding(6) var<storage, read> w_u32: array<u32>;
@group(0) @binding(7) var<storage, read> u_v4: array<vec4<u32>>;
@group(0) @binding(8) var<storage, read> u_v2: array<vec2<u32>>;
@group(0) @binding(9) var<storage, read> u_u32: array<u32>;

// Partial sums: value i (a row's dot product; gate rows then up rows in main_gated) in slots
// [i*WG, i*WG + slots).
var<workgroup> red: array<f32, 2u * ROWS * WG>;

// Where the words of unit u of row r are: q indexes the unit's view (vec4 for F32, vec2 for F16,
// BF16 and Q8_0, u32 otherwise); h.x the scale word (u32; Q4_K/Q5_K: the header's vec4; Q6_K: the
// vec2 of its two scale words), h.y the high-bit word (5- and 6-bit types), h.z Q6_K's d pair
// word; half is the shift (0 or 16) that brings the unit's f16 scale to the low half of its pair.
struct Where {
  q: u32,
  h: vec3<u32>,
  half: u32,
}

// The raw words of one unit: q the quant words (F32: 4; F16, BF16, Q8_0: 2; other types: the quant
// word in q.x and the high-bit word in q.y), h the block fields (Q8_0, Q4_0, Q5_0: f16 d in h.x's
// low half; Q4_1, Q5_1: d and m in h.x; Q4_K, Q5_K: the 16-byte header, d and dmin in h.x, the
// packed scales in h.yzw; Q6_K: the int8 scales of its low and high half in h.x and h.y, d in h.z).
struct Unit {
  q: vec4<u32>,
  h: vec4<u32>,
}

fn is_plain() -> bool {
  return WTYPE == T_F32 || WTYPE == T_F16 || WTYPE == T_BF16;
}

fn is_k_quant() -> bool {
  return WTYPE == T_Q4_K || WTYPE == T_Q5_K || WTYPE == T_Q6_K;
}

fn has_high_bits() -> bool {
  return WTYPE == T_Q5_0 || WTYPE == T_Q5_1 || WTYPE == T_Q5_K || WTYPE == T_Q6_K;
}

// Columns per unit of work.
fn unit_cols() -> u32 {
  if (is_plain()) { return 4u; }
  return 8u;
}

// Addresses of unit u of row r in a part whose quants end at word `so` (see weights.ts for the regions).
fn unit_where(r: u32, u: u32, so: u32) -> Where {
  var a = Where(r * (p.cols / unit_cols()) + u, vec3<u32>(), 0u);
  if (is_plain()) {
    return a;
  }
  if (is_k_quant()) {
    let nsb = p.rows * (p.cols / 256u); // super-blocks of the part
    let sb = r * (p.cols / 256u) + u / 32u;
    let w = u % 32u; // the unit's quant word within its super-block
    if (WTYPE == T_Q4_K) {
      a.h.x = so / 4u + sb;
    } else if (WTYPE == T_Q5_K) {
      a.h.y = so + 8u * sb + w % 8u;
      a.h.x = (so + 8u * nsb) / 4u + sb;
    } else {
      a.h.y = so + 16u * sb + 8u * (w / 16u) + w % 8u;
      a.h.x = (so + 16u * nsb) / 2u + 2u * sb + w / 16u;
      a.h.z = so + 20u * nsb + sb / 2u;
      a.half = 16u * (sb & 1u);
    }
    return a;
  }
  let nb = p.rows * (p.cols / 32u); // blocks of the part
  let b = r * (p.cols / 32u) + u / 4u;
  a.half = 16u * (b & 1u);
  if (WTYPE == T_Q4_1) {
    a.h.x = so + b;
  } else if (WTYPE == T_Q5_0) {
    a.h.y = so + b;
    a.h.x = so + nb + b / 2u;
  } else if (WTYPE == T_Q5_1) {
    a.h.y = so + b;
    a.h.x = so + nb + b;
  } else {
    a.h.x = so + b / 2u; // Q8_0, Q4_0
  }
  return a;
}

// Loads a unit of W (or the gate). load_u is the same for the up matrix of main_gated: a separate
// function, since WGSL functions cannot take storage pointers portably and `main` must not bind it.
fn load_w(a: Where) -> Unit {
  var k: Unit;
  if (WTYPE == T_F32) {
    k.q = w_v4[a.q];
  } else if (WTYPE == T_F16 || WTYPE == T_BF16 || WTYPE == T_Q8_0) {
    k.q = vec4<u32>(w_v2[a.q], 0u, 0u);
  } else {
    k.q.x = w_u32[a.q];
  }
  if (has_high_bits()) {
    k.q.y = w_u32[a.h.y];
  }
  if (WTYPE == T_Q4_K || WTYPE == T_Q5_K) {
    k.h = w_v4[a.h.x];
  } else if (WTYPE == T_Q6_K) {
    k.h = vec4<u32>(w_v2[a.h.x], w_u32[a.h.z] >> a.half, 0u);
  } else if (WTYPE == T_Q4_1 || WTYPE == T_Q5_1) {
    k.h.x = w_u32[a.h.x];
  } else if (!is_plain()) {
    k.h.x = w_u32[a.h.x] >> a.half;
  }
  return k;
}

fn load_u(a: Where) -> Unit {
  var k: Unit;
  if (WTYPE == T_F32) {
    k.q = u_v4[a.q];
  } else if (WTYPE == T_F16 || WTYPE == T_BF16 || WTYPE == T_Q8_0) {
    k.q = vec4<u32>(u_v2[a.q], 0u, 0u);
  } else {
    k.q.x = u_u32[a.q];
  }
  if (has_high_bits()) {
    k.q.y = u_u32[a.h.y];
  }
  if (WTYPE == T_Q4_K || WTYPE == T_Q5_K) {
    k.h = u_v4[a.h.x];
  } else if (WTYPE == T_Q6_K) {
    k.h = vec4<u32>(u_v2[a.h.x], u_u32[a.h.z] >> a.half, 0u);
  } else if (WTYPE == T_Q4_1 || WTYPE == T_Q5_1) {
    k.h.x = u_u32[a.h.x];
  } else if (!is_plain()) {
    k.h.x = u_u32[a.h.x] >> a.half;
  }
  return k;
}

// Four int8 in ggml byte order, sign-extended.
fn i8x4(q: u32) -> vec4<f32> {
  return vec4<f32>((vec4<i32>(bitcast<i32>(q)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

// Signed byte i (0..3) of a word.
fn i8_at(q: u32, i: u32) -> f32 {
  return f32((bitcast<i32>(q) << (24u - 8u * i)) >> 24u);
}

// Bits [s, s + mask width) of each of the four bytes of q.
fn byte_bits(q: u32, s: u32, mask: u32) -> vec4<u32> {
  return (vec4<u32>(q) >> (vec4<u32>(0u, 8u, 16u, 24u) + s)) & vec4<u32>(mask);
}

// Bits s .. s+3 of q, one per lane.
fn bit4(q: u32, s: u32) -> vec4<u32> {
  return (vec4<u32>(q) >> (vec4<u32>(0u, 1u, 2u, 3u) + s)) & vec4<u32>(1u);
}

// Byte i (0..11) of a K-quant header's packed scales.
fn scale_byte(s: vec3<u32>, i: u32) -> u32 {
  return (s[i / 4u] >> (8u * (i % 4u))) & 255u;
}

// Six-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4).
fn scale_min_k4(s: vec3<u32>, j: u32) -> vec2<f32> {
  if (j < 4u) {
    return vec2<f32>(f32(scale_byte(s, j) & 63u), f32(scale_byte(s, j + 4u) & 63u));
  }
  let e = scale_byte(s, j + 4u);
  let sc = (e & 15u) | ((scale_byte(s, j - 4u) >> 6u) << 4u);
  let m = (e >> 4u) | ((scale_byte(s, j) >> 6u) << 4u);
  return vec2<f32>(f32(sc), f32(m));
}

// x for unit u of token t: two vec4 (the second unused by F32/F16/BF16), the elements whose
// weights the unit's low and high nibbles (or its 8 bytes) hold.
fn load_x(t: u32, u: u32) -> array<vec4<f32>, 2> {
  let xb = t * (p.cols / 4u);
  if (is_plain()) {
    return array<vec4<f32>, 2>(x[xb + u], vec4<f32>());
  }
  if (WTYPE == T_Q8_0) {
    return array<vec4<f32>, 2>(x[xb + 2u * u], x[xb + 2u * u + 1u]);
  }
  if (WTYPE == T_Q4_K || WTYPE == T_Q5_K) {
    // Quant word w of a super-block: elements 64*(w/8) + 4*(w%8) .. +4 (low), the same + 32 (high).
    let w = u % 32u;
    let base = xb + (u / 32u) * 64u + (w / 8u) * 16u + w % 8u;
    return array<vec4<f32>, 2>(x[base], x[base + 8u]);
  }
  if (WTYPE == T_Q6_K) {
    // ql word w: elements 128*(w/16) + 32*((w/8)%2) + 4*(w%8) .. +4 (low), the same + 64 (high).
    let w = u % 32u;
    let base = xb + (u / 32u) * 64u + (w / 16u) * 32u + ((w / 8u) % 2u) * 8u + w % 8u;
    return array<vec4<f32>, 2>(x[base], x[base + 16u]);
  }
  // 32-element blocks: unit u is quant word u % 4 of block u / 4: elements 4*(u%4) .. +4 (low
  // nibbles) and 16 + 4*(u%4) .. +4 (high nibbles) of the block.
  let base = xb + (u / 4u) * 8u + (u % 4u);
  return array<vec4<f32>, 2>(x[base], x[base + 4u]);
}

// Dot product of unit u's weights (loaded in k) with its x.
fn dot_unit(k: Unit, u: u32, xu: array<vec4<f32>, 2>) -> f32 {
  if (WTYPE == T_F32) {
    return dot(bitcast<vec4<f32>>(k.q), xu[0]);
  }
  if (WTYPE == T_F16) {
    return dot(vec4<f32>(unpack2x16float(k.q.x), unpack2x16float(k.q.y)), xu[0]);
  }
  if (WTYPE == T_BF16) {
    let v = vec4<u32>(k.q.x << 16u, k.q.x & 0xffff0000u, k.q.y << 16u, k.q.y & 0xffff0000u);
    return dot(bitcast<vec4<f32>>(v), xu[0]);
  }
  if (WTYPE == T_Q8_0) {
    let d = unpack2x16float(k.h.x).x;
    return d * (dot(i8x4(k.q.x), xu[0]) + dot(i8x4(k.q.y), xu[1]));
  }
  let lo = byte_bits(k.q.x, 0u, 15u);
  let hi = byte_bits(k.q.x, 4u, 15u);
  if (WTYPE == T_Q4_0) {
    let d = unpack2x16float(k.h.x).x;
    return d * (dot(vec4<f32>(lo) - 8.0, xu[0]) + dot(vec4<f32>(hi) - 8.0, xu[1]));
  }
  if (WTYPE == T_Q4_1) {
    let dm = unpack2x16float(k.h.x);
    return dot(vec4<f32>(lo) * dm.x + dm.y, xu[0]) + dot(vec4<f32>(hi) * dm.x + dm.y, xu[1]);
  }
  if (WTYPE == T_Q5_0 || WTYPE == T_Q5_1) {
    // qh bit j is the fifth bit of element j of the block.
    let s = 4u * (u % 4u);
    let lo5 = vec4<f32>(lo | (bit4(k.q.y, s) << vec4<u32>(4u)));
    let hi5 = vec4<f32>(hi | (bit4(k.q.y, s + 16u) << vec4<u32>(4u)));
    if (WTYPE == T_Q5_0) {
      let d = unpack2x16float(k.h.x).x;
      return d * (dot(lo5 - 16.0, xu[0]) + dot(hi5 - 16.0, xu[1]));
    }
    let dm = unpack2x16float(k.h.x);
    return dot(lo5 * dm.x + dm.y, xu[0]) + dot(hi5 * dm.x + dm.y, xu[1]);
  }
  if (WTYPE == T_Q4_K || WTYPE == T_Q5_K) {
    // Quant word u%32 of the super-block: sub-block 2j in its low nibbles, 2j+1 in its high ones.
    let j = (u % 32u) / 8u;
    let dm = unpack2x16float(k.h.x);
    let s_lo = scale_min_k4(k.h.yzw, 2u * j);
    let s_hi = scale_min_k4(k.h.yzw, 2u * j + 1u);
    var q_lo = vec4<f32>(lo);
    var q_hi = vec4<f32>(hi);
    if (WTYPE == T_Q5_K) {
      // qh byte l, bits 2j and 2j+1: the fifth bits of the two elements of byte l of this chunk.
      q_lo += vec4<f32>(byte_bits(k.q.y, 2u * j, 1u)) * 16.0;
      q_hi += vec4<f32>(byte_bits(k.q.y, 2u * j + 1u, 1u)) * 16.0;
    }
    let w_lo = q_lo * (dm.x * s_lo.x) - dm.y * s_lo.y;
    let w_hi = q_hi * (dm.x * s_hi.x) - dm.y * s_hi.y;
    return dot(w_lo, xu[0]) + dot(w_hi, xu[1]);
  }
  // Q6_K: ql word w = u%32 of half h = w/16; its qh word holds two bits per element, at 2g for
  // the low nibbles and 2g+4 for the high ones, g = (w/8)%2; the int8 scales of its 16-element
  // sub-blocks are byte 2g + (w%8)/4 of scale words 2h (low) and 2h+1 (high).
  let w = u % 32u;
  let g = (w / 8u) % 2u;
  let q_lo = vec4<f32>(lo | (byte_bits(k.q.y, 2u * g, 3u) << vec4<u32>(4u))) - 32.0;
  let q_hi = vec4<f32>(hi | (byte_bits(k.q.y, 2u * g + 4u, 3u) << vec4<u32>(4u))) - 32.0;
  let d = unpack2x16float(k.h.z).x;
  let i = 2u * g + (w % 8u) / 4u;
  return dot(q_lo * (d * i8_at(k.h.x, i)), xu[0]) + dot(q_hi * (d * i8_at(k.h.y, i)), xu[1]);
}

// Stage 1 of the reduction: value i summed over the invocation's subgroup, into its subgroup's slot.
fn reduce_put(i: u32, v: f32, slot: u32, writer: bool) {
  var s = v;
{{SG}}  s = subgroupAdd(v);
  if (writer) {
    red[i * WG + slot] = s;
  }
}

// Stage 2: sums the `slots` slots of values [0, nv); afterwards red[i*WG] holds value i's total.
fn reduce_finish(li: u32, nv: u32, slots: u32) {
  workgroupBarrier();
  var n = slots;
  // Halve while there are many slots (only without subgroups, or with very small ones) ...
  while (n > 8u) {
    let h = n / 2u;
    for (var e = li; e < nv * h; e += WG) {
      let i = e / h;
      let j = e % h;
      red[i * WG + j] += red[i * WG + j + h];
    }
    workgroupBarrier();
    n = h;
  }
  // ... then one invocation per value adds the rest in order.
  if (li < nv) {
    var s = red[li * WG];
    for (var j = 1u; j < n; j++) {
      s += red[li * WG + j];
    }
    red[li * WG] = s;
  }
  workgroupBarrier();
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
{{SG}}  @builtin(subgroup_size) sg_size: u32, @builtin(subgroup_invocation_id) sg_lane: u32,
) {
  let row0 = (wg.y * nwg.x + wg.x) * ROWS;
  let t = wg.z;
  if (row0 >= p.rows) {
    return;
  }
  var slots = WG;
  var slot = li;
  var writer = true;
{{SG}}  slots = (WG + sg_size - 1u) / sg_size; slot = li / sg_size; writer = sg_lane == 0u;

  var acc: array<f32, ROWS>;
  let n_units = p.cols / unit_cols();
  for (var u = li; u < n_units; u += WG) {
    let xu = load_x(t, u);
    for (var i = 0u; i < ROWS; i++) {
      // Rows past the end repeat the last row (never out of bounds) and are not written.
      acc[i] += dot_unit(load_w(unit_where(min(row0 + i, p.rows - 1u), u, p.scale_offset)), u, xu);
    }
  }
  for (var i = 0u; i < ROWS; i++) {
    reduce_put(i, acc[i], slot, writer);
  }
  reduce_finish(li, ROWS, slots);

  if (li < ROWS && row0 + li < p.rows) {
    let r = p.row_offset + row0 + li;
    let o = p.y_offset + t * p.y_stride + r;
    var v = red[li * WG];
    if ((p.flags & FLAG_BIAS) != 0u) {
      v += bias[r];
    }
    if ((p.flags & FLAG_ACCUMULATE) != 0u) {
      v += y[o];
    }
    y[o] = v;
  }
}

@compute @workgroup_size(WG)
fn main_gated(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
{{SG}}  @builtin(subgroup_size) sg_size: u32, @builtin(subgroup_invocation_id) sg_lane: u32,
) {
  let row0 = (wg.y * nwg.x + wg.x) * ROWS;
  let t = wg.z;
  if (row0 >= p.rows) {
    return;
  }
  var slots = WG;
  var slot = li;
  var writer = true;
{{SG}}  slots = (WG + sg_size - 1u) / sg_size; slot = li / sg_size; writer = sg_lane == 0u;

  var acc_g: array<f32, ROWS>;
  var acc_u: array<f32, ROWS>;
  let n_units = p.cols / unit_cols();
  for (var u = li; u < n_units; u += WG) {
    let xu = load_x(t, u);
    for (var i = 0u; i < ROWS; i++) {
      let r = min(row0 + i, p.rows - 1u);
      acc_g[i] += dot_unit(load_w(unit_where(r, u, p.scale_offset)), u, xu);
      acc_u[i] += dot_unit(load_u(unit_where(r, u, p.up_scale_offset)), u, xu);
    }
  }
  for (var i = 0u; i < ROWS; i++) {
    reduce_put(i, acc_g[i], slot, writer);
    reduce_put(ROWS + i, acc_u[i], slot, writer);
  }
  reduce_finish(li, 2u * ROWS, slots);

  if (li < ROWS && row0 + li < p.rows) {
    let g = red[li * WG];
    let up = red[(ROWS + li) * WG];
    y[p.y_offset + t * p.y_stride + p.row_offset + row0 + li] = g / (1.0 + exp(-g)) * up;
  }
}
