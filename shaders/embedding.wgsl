// embedding.wgsl: token embedding lookup with dequantization (src/gpu/weights.ts layouts).
//
// out[out_offset + t*out_stride + c] = E[ids[ids_offset + t], c] for t < n_tokens, c < cols,
// for the tokens whose id falls in this weight part's rows [row_start, row_start + rows); tokens
// of other parts are left to those parts' dispatches. Ids are validated on the CPU before they
// are uploaded (or come from the GPU sampler); an id in no part leaves its output untouched and
// never causes an out-of-bounds read. Reference: src/gpu/ref/embedding.ts embeddingRef.
//
// Dispatch: (ceil(cols / WG), n_tokens, 1); one invocation per output element.
// Bindings: 0 uniform Params; 1 read ids (array<u32>); 2 read w (array<u32>: one weight part);
//   3 read_write out (array<f32>).
// Params (elements unless noted): n_tokens, cols, row_start, rows, scale_offset (u32 words),
//   out_stride, out_offset, ids_offset. scale_offset is where the part's quants end.
// Constants: WTYPE override (ggml type ids: 0 F32, 1 F16, 30 BF16, 8 Q8_0, 2 Q4_0, 3 Q4_1, 6 Q5_0,
//   7 Q5_1, 12 Q4_K, 13 Q5_K, 14 Q6_K), WG override.
// Each element is decoded with ggml's arithmetic (d*q, d*q + m, (d*sc)*q - dmin*m), so a row
// equals the CPU dequantization.

struct Params {
  n_tokens: u32,
  cols: u32,
  row_start: u32,
  rows: u32,
  scale_offset: u32,
  out_stride: u32,
  out_offset: u32,
  ids_offset: u32,
}

override WTYPE: u32 = 0u;
override WG: u32 = 256u;
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

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// f16 number i of a run of f16 pairs starting at word `at` (number 2k in the low half of word k).
fn half_at(at: u32, i: u32) -> f32 {
  let pair = unpack2x16float(w[at + (i >> 1u)]);
  return select(pair.x, pair.y, (i & 1u) == 1u);
}

// Bits [s, s + mask width) of byte i of the run of bytes starting at word `at`.
fn byte_bits(at: u32, i: u32, s: u32, mask: u32) -> u32 {
  return (w[at + i / 4u] >> (8u * (i % 4u) + s)) & mask;
}

// Six-bit scale and min of sub-block j (0..7) of the Q4_K/Q5_K header at word `at` (ggml's
// get_scale_min_k4 over the 12 bytes after d and dmin).
fn scale_min_k4(at: u32, j: u32) -> vec2<f32> {
  let s = at + 1u;
  if (j < 4u) {
    return vec2<f32>(f32(byte_bits(s, j, 0u, 63u)), f32(byte_bits(s, j + 4u, 0u, 63u)));
  }
  let e = byte_bits(s, j + 4u, 0u, 255u);
  let sc = (e & 15u) | (byte_bits(s, j - 4u, 6u, 3u) << 4u);
  let m = (e >> 4u) | (byte_bits(s, j, 6u, 3u) << 4u);
  return vec2<f32>(f32(sc), f32(m));
}

// Element e (= r*cols + c) of the part.
fn element(e: u32) -> f32 {
  if (WTYPE == T_F32) {
    return bitcast<f32>(w[e]);
  }
  if (WTYPE == T_F16) {
    let pair = unpack2x16float(w[e / 2u]);
    return select(pair.x, pair.y, (e & 1u) == 1u);
  }
  if (WTYPE == T_BF16) {
    return bitcast<f32>(select(w[e / 2u] << 16u, w[e / 2u] & 0xffff0000u, (e & 1u) == 1u));
  }
  let so = p.scale_offset;
  if (WTYPE == T_Q4_K || WTYPE == T_Q5_K) {
    // Element j of super-block sb: byte 32*(j/64) + j%32 of its quants, low nibble when j%64 < 32;
    // the fifth bit (Q5_K) is bit j/32 of qh byte j%32.
    let nsb = p.rows * (p.cols / 256u);
    let sb = e / 256u;
    let j = e % 256u;
    var q = byte_bits(sb * 32u, 32u * (j / 64u) + j % 32u, 4u * ((j / 32u) % 2u), 15u);
    var head = so + 4u * sb;
    if (WTYPE == T_Q5_K) {
      q += 16u * byte_bits(so + 8u * sb, j % 32u, j / 32u, 1u);
      head = so + 8u * nsb + 4u * sb;
    }
    let dm = unpack2x16float(w[head]);
    let sm = scale_min_k4(head, j / 32u);
    return dm.x * sm.x * f32(q) - dm.y * sm.y;
  }
  if (WTYPE == T_Q6_K) {
    // Element j of super-block sb, in half h, quarter c, position l of the quarter: ql byte
    // 64h + 32*(c%2) + l (high nibble for c >= 2), qh byte 32h + l (bits 2c, 2c+1), int8 scale
    // 8h + l/16 + 2c.
    let nsb = p.rows * (p.cols / 256u);
    let sb = e / 256u;
    let j = e % 256u;
    let h = j / 128u;
    let c = (j / 32u) % 4u;
    let l = j % 32u;
    let lo = byte_bits(sb * 32u, 64u * h + 32u * (c % 2u) + l, 4u * (c / 2u), 15u);
    let hi = byte_bits(so + 16u * sb, 32u * h + l, 2u * c, 3u);
    let si = 8u * h + l / 16u + 2u * c;
    let sc = f32((bitcast<i32>(w[so + 16u * nsb + 4u * sb + si / 4u]) << (24u - 8u * (si % 4u))) >> 24u);
    return half_at(so + 20u * nsb, sb) * sc * (f32(lo | (hi << 4u)) - 32.0);
  }
  let nb = p.rows * (p.cols / 32u);
  let b = e / 32u;
  let j = e % 32u;
  if (WTYPE == T_Q8_0) {
    let q = (bitcast<i32>(w[e / 4u]) << (24u - 8u * (j % 4u))) >> 24u; // sign-extended byte j % 4
    return f32(q) * half_at(so, b);
  }
  // 4- and 5-bit blocks: byte j % 16 of the block's 16; element j < 16 in its low nibble, j >= 16
  // in its high; the fifth bit is bit j of the block's qh word.
  var q = byte_bits(b * 4u, j % 16u, select(0u, 4u, j >= 16u), 15u);
  if (WTYPE == T_Q4_0) {
    return (f32(q) - 8.0) * half_at(so, b);
  }
  if (WTYPE == T_Q4_1) {
    let dm = unpack2x16float(w[so + b]);
    return f32(q) * dm.x + dm.y;
  }
  q |= ((w[so + b] >> j) & 1u) << 4u;
  if (WTYPE == T_Q5_0) {
    return (f32(q) - 16.0) * half_at(so + nb, b);
  }
  let dm = unpack2x16float(w[so + nb + b]); // Q5_1
  return f32(q) * dm.x + dm.y;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let c = wg.x * WG + li;
  let t = wg.y;
  if (c >= p.cols || t >= p.n_tokens) {
    return;
  }
  let id = ids[p.ids_offset + t];
  if (id < p.row_start || id - p.row_start >= p.rows) {
    return;
  }
  let r = min(id - p.row_start, p.rows - 1u);
  out[p.out_offset + t * p.out_stride + c] = element(r * p.cols + c);
}
