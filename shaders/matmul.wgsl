// matmul.wgsl: prefill matrix multiply against packed weights (src/gpu/weights.ts layouts).
//
// Y[o] = (accumulate ? Y[o] : 0) + sum_c X[t, c] * W[r, c] (+ bias[row_offset + r])
//   for t < n_tokens, r < rows (one weight part), o = y_offset + t*y_stride + row_offset + r.
//   X is [n_tokens, cols] row-major f32. Reference: src/gpu/ref/matvec.ts matvecRef (same maths).
//
// Design (prefill is compute-bound): register tiling. A workgroup of 16×16 invocations owns a
// BM × 64 output tile (BM = 16*TM tokens, 64 rows); invocation (tx, ty) accumulates TM tokens ×
// 4 rows in registers. The K loop walks 32 columns at a time (one quant block): X and the
// dequantized W tile are staged in workgroup memory, k-major, so each k step reads one vec4 of
// four rows and TM scalars of X. Out-of-range tokens, rows and columns load as zero (columns) or
// repeat the last row (rows), and are never written, so any T, N and K work (K % 32 == 0 for the
// 32-element block types, K % 256 == 0 for the K-quants, even K for F16 and BF16). Every block
// type is dequantized exactly as ggml does (d*q, d*q + m, (d*sc)*q - dmin*m); a K-quant's K step
// is one 32-element sub-block (Q6_K: two of 16), whose quant words also hold the neighbouring
// sub-block in their other nibbles: half of each quant word loaded is used, in a kernel bound by
// arithmetic rather than loads.
//
// Dispatch: (ceil(rows / 64), ceil(n_tokens / BM), 1).
// Bindings: 0 uniform Params; 1 read x (array<f32>); 2 read_write y (array<f32>);
//   3 read bias (array<f32>, [row_offset + rows]); 4 read w (array<u32>: one weight part).
// Params (elements unless noted): n_tokens, rows, cols, row_offset, scale_offset (u32 words: where
//   the quants end), y_stride, y_offset, flags (bit 0: accumulate into y, bit 1: add bias).
// Constants: WTYPE override (ggml type ids: 0 F32, 1 F16, 30 BF16, 8 Q8_0, 2 Q4_0, 3 Q4_1, 6 Q5_0,
//   7 Q5_1, 12 Q4_K, 13 Q5_K, 14 Q6_K); placeholder TM (1, 2 or 4).

struct Params {
  n_tokens: u32,
  rows: u32,
  cols: u32,
  row_offset: u32,
  scale_offset: u32,
  y_stride: u32,
  y_offset: u32,
  flags: u32,
}

override WTYPE: u32 = 0u;
const TM: u32 = {{TM}}u;
const BM: u32 = 16u * TM; // tokens per tile
const BN: u32 = 64u; // rows per tile
const BK: u32 = 32u; // columns per K step
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
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> w: array<u32>;

var<workgroup> xs: array<f32, BK * BM>; // [k][token]
var<workgroup> ws: array<vec4<f32>, BK * BN / 4u>; // [k][row / 4], dequantized

// f16 number i of a run of f16 pairs starting at word `at` (number 2k in the low half of word k).
fn half_at(at: u32, i: u32) -> f32 {
  let pair = unpack2x16float(w[at + (i >> 1u)]);
  return select(pair.x, pair.y, (i & 1u) == 1u);
}

fn block_scale(b: u32) -> f32 {
  return half_at(p.scale_offset, b);
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

// Bits [s, s + mask width) of byte j (0..7) of the two words q.
fn bits_at(q: vec2<u32>, j: u32, s: u32, mask: u32) -> u32 {
  return (q[j / 4u] >> (8u * (j % 4u) + s)) & mask;
}

fn i8x4(q: u32) -> vec4<f32> {
  return vec4<f32>((vec4<i32>(bitcast<i32>(q)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

fn put_w(k: u32, n: u32, v: f32) {
  ws[k * (BN / 4u) + n / 4u][n % 4u] = v;
}

// Dequantizes 8 values of row n of the tile (weight row r) at columns k0 .. k0+32 into ws.
// Unit `sub` (0..3) is columns k0 + 8*sub .. +8, except for the 4- and 5-bit 32-element blocks,
// where it is quant word `sub` of the block: columns 4*sub .. +4 and 16 + 4*sub .. +4.
fn load_w_unit(n: u32, r: u32, k0: u32, sub: u32) {
  let K = p.cols;
  let so = p.scale_offset;
  if (WTYPE == T_Q4_0 || WTYPE == T_Q4_1 || WTYPE == T_Q5_0 || WTYPE == T_Q5_1) {
    // value = (q - off) * d + m, with q's fifth bit from the block's qh word (bit j: element j).
    let q = w[r * (K / 8u) + k0 / 8u + sub];
    let nb = p.rows * (K / 32u);
    let b = r * (K / 32u) + k0 / 32u;
    var d = 0.0;
    var m = 0.0;
    var off = 0.0;
    var qh = 0u;
    if (WTYPE == T_Q4_0) {
      d = block_scale(b);
      off = 8.0;
    } else if (WTYPE == T_Q5_0) {
      qh = w[so + b];
      d = half_at(so + nb, b);
      off = 16.0;
    } else {
      var dm_at = so + b;
      if (WTYPE == T_Q5_1) {
        qh = w[so + b];
        dm_at = so + nb + b;
      }
      let dm = unpack2x16float(w[dm_at]);
      d = dm.x;
      m = dm.y;
    }
    for (var j = 0u; j < 4u; j++) {
      let lo = ((q >> (8u * j)) & 15u) | (((qh >> (4u * sub + j)) & 1u) << 4u);
      let hi = ((q >> (8u * j + 4u)) & 15u) | (((qh >> (16u + 4u * sub + j)) & 1u) << 4u);
      put_w(4u * sub + j, n, (f32(lo) - off) * d + m);
      put_w(16u + 4u * sub + j, n, (f32(hi) - off) * d + m);
    }
    return;
  }
  if (WTYPE == T_Q4_K || WTYPE == T_Q5_K) {
    // Columns k0 .. k0+32 are sub-block s of super-block sb: bytes 32*(s/2) .. +32 of its quants,
    // low nibbles for even s, high for odd; the fifth bits (Q5_K) are bit s of qh bytes 0 .. 32.
    let nsb = p.rows * (K / 256u);
    let sb = r * (K / 256u) + k0 / 256u;
    let s = (k0 % 256u) / 32u;
    let qi = sb * 32u + 8u * (s / 2u) + 2u * sub;
    let q = vec2<u32>(w[qi], w[qi + 1u]);
    var qh = vec2<u32>();
    var head = so + 4u * sb;
    if (WTYPE == T_Q5_K) {
      qh = vec2<u32>(w[so + 8u * sb + 2u * sub], w[so + 8u * sb + 2u * sub + 1u]);
      head = so + 8u * nsb + 4u * sb;
    }
    let dm = unpack2x16float(w[head]);
    let sm = scale_min_k4(vec3<u32>(w[head + 1u], w[head + 2u], w[head + 3u]), s);
    let d1 = dm.x * sm.x;
    let m1 = dm.y * sm.y;
    for (var j = 0u; j < 8u; j++) {
      let v = bits_at(q, j, 4u * (s % 2u), 15u) + 16u * bits_at(qh, j, s, 1u);
      put_w(8u * sub + j, n, d1 * f32(v) - m1);
    }
    return;
  }
  if (WTYPE == T_Q6_K) {
    // Columns k0 .. k0+32 are quarter c of half h of super-block sb: ql bytes 64h + 32*(c%2) ..
    // +32 (low nibbles for c < 2, high for c >= 2), qh bytes 32h .. +32 (bits 2c, 2c+1); unit sub
    // is 8 of them, in 16-element sub-block 8h + 2c + sub/2.
    let nsb = p.rows * (K / 256u);
    let sb = r * (K / 256u) + k0 / 256u;
    let h = (k0 % 256u) / 128u;
    let c = ((k0 % 256u) / 32u) % 4u;
    let qi = sb * 32u + 16u * h + 8u * (c % 2u) + 2u * sub;
    let ql = vec2<u32>(w[qi], w[qi + 1u]);
    let hi = so + 16u * sb + 8u * h + 2u * sub;
    let qh = vec2<u32>(w[hi], w[hi + 1u]);
    let si = 8u * h + 2u * c + sub / 2u;
    let sc = f32((bitcast<i32>(w[so + 16u * nsb + 4u * sb + si / 4u]) << (24u - 8u * (si % 4u))) >> 24u);
    let d1 = half_at(so + 20u * nsb, sb) * sc;
    for (var j = 0u; j < 8u; j++) {
      let v = bits_at(ql, j, 4u * (c / 2u), 15u) | (bits_at(qh, j, 2u * c, 3u) << 4u);
      put_w(8u * sub + j, n, d1 * (f32(v) - 32.0));
    }
    return;
  }
  if (WTYPE == T_Q8_0) {
    let wi = r * (K / 4u) + k0 / 4u + 2u * sub;
    let d = block_scale(r * (K / 32u) + k0 / 32u);
    let a = i8x4(w[wi]) * d;
    let b = i8x4(w[wi + 1u]) * d;
    for (var j = 0u; j < 4u; j++) {
      put_w(8u * sub + j, n, a[j]);
      put_w(8u * sub + 4u + j, n, b[j]);
    }
    return;
  }
  let c0 = k0 + 8u * sub;
  if (WTYPE == T_F16 || WTYPE == T_BF16) {
    // K is even, so a pair of halves is either wholly inside the row or wholly past its end.
    for (var j = 0u; j < 4u; j++) {
      var v = vec2<f32>();
      if (c0 + 2u * j < K) {
        let pair = w[(r * K + c0) / 2u + j];
        if (WTYPE == T_F16) {
          v = unpack2x16float(pair);
        } else {
          v = vec2<f32>(bitcast<f32>(pair << 16u), bitcast<f32>(pair & 0xffff0000u));
        }
      }
      put_w(8u * sub + 2u * j, n, v.x);
      put_w(8u * sub + 2u * j + 1u, n, v.y);
    }
    return;
  }
  for (var j = 0u; j < 8u; j++) {
    var v = 0.0;
    if (c0 + j < K) {
      v = bitcast<f32>(w[r * K + c0 + j]);
    }
    put_w(8u * sub + j, n, v);
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let tx = li % 16u; // rows 4*tx .. +4 of the tile
  let ty = li / 16u; // tokens TM*ty .. +TM of the tile
  let n0 = wg.x * BN;
  let t0 = wg.y * BM;
  let K = p.cols;

  var acc: array<vec4<f32>, TM>;
  for (var k0 = 0u; k0 < K; k0 += BK) {
    // X tile: consecutive invocations read consecutive columns of a token.
    for (var e = li; e < BM * BK; e += 256u) {
      let m = e / BK;
      let k = e % BK;
      var v = 0.0;
      if (t0 + m < p.n_tokens && k0 + k < K) {
        v = x[(t0 + m) * K + k0 + k];
      }
      xs[k * BM + m] = v;
    }
    // W tile: 64 rows × 4 units of 8 values, one unit per invocation.
    load_w_unit(li / 4u, min(n0 + li / 4u, p.rows - 1u), k0, li % 4u);
    workgroupBarrier();

    for (var k = 0u; k < BK; k++) {
      let b = ws[k * (BN / 4u) + tx];
      for (var i = 0u; i < TM; i++) {
        acc[i] += xs[k * BM + ty * TM + i] * b;
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < TM; i++) {
    let t = t0 + ty * TM + i;
    if (t >= p.n_tokens) {
      break;
    }
    for (var j = 0u; j < 4u; j++) {
      let rl = n0 + 4u * tx + j;
      if (rl < p.rows) {
        let r = p.row_offset + rl;
        let o = p.y_offset + t * p.y_stride + r;
        var v = acc[i][j];
        if ((p.flags & FLAG_BIAS) != 0u) {
          v += bias[r];
        }
        if ((p.flags & FLAG_ACCUMULATE) != 0u) {
          v += y[o];
        }
        y[o] = v;
      }
    }
  }
}
