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
// quantized types, even K for F16).
//
// Dispatch: (ceil(rows / 64), ceil(n_tokens / BM), 1).
// Bindings: 0 uniform Params; 1 read x (array<f32>); 2 read_write y (array<f32>);
//   3 read bias (array<f32>, [row_offset + rows]); 4 read w (array<u32>: one weight part).
// Params (elements unless noted): n_tokens, rows, cols, row_offset, scale_offset (u32 words),
//   y_stride, y_offset, flags (bit 0: accumulate into y, bit 1: add bias).
// Constants: WTYPE override (0 F32, 1 F16, 8 Q8_0, 2 Q4_0: ggml type ids); placeholder TM (1, 2 or 4).

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
const T_Q8_0: u32 = 8u;
const FLAG_ACCUMULATE: u32 = 1u;
const FLAG_BIAS: u32 = 2u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> w: array<u32>;

var<workgroup> xs: array<f32, BK * BM>; // [k][token]
var<workgroup> ws: array<vec4<f32>, BK * BN / 4u>; // [k][row / 4], dequantized

fn block_scale(b: u32) -> f32 {
  let pair = unpack2x16float(w[p.scale_offset + (b >> 1u)]);
  return select(pair.x, pair.y, (b & 1u) == 1u);
}

fn i8x4(q: u32) -> vec4<f32> {
  return vec4<f32>((vec4<i32>(bitcast<i32>(q)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

fn put_w(k: u32, n: u32, v: f32) {
  ws[k * (BN / 4u) + n / 4u][n % 4u] = v;
}

// Dequantizes 8 values of row n of the tile (weight row r) at columns k0 .. k0+32 into ws.
// Unit `sub` (0..3) is columns k0 + 8*sub .. +8, except for Q4_0, where it is quant word `sub`
// of the block: columns 4*sub .. +4 and 16 + 4*sub .. +4.
fn load_w_unit(n: u32, r: u32, k0: u32, sub: u32) {
  let K = p.cols;
  if (WTYPE == T_Q4_0) {
    let q = w[r * (K / 8u) + k0 / 8u + sub];
    let d = block_scale(r * (K / 32u) + k0 / 32u);
    for (var j = 0u; j < 4u; j++) {
      put_w(4u * sub + j, n, (f32((q >> (8u * j)) & 15u) - 8.0) * d);
      put_w(16u + 4u * sub + j, n, (f32((q >> (8u * j + 4u)) & 15u) - 8.0) * d);
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
  if (WTYPE == T_F16) {
    // K is even, so a pair of halves is either wholly inside the row or wholly past its end.
    for (var j = 0u; j < 4u; j++) {
      var v = vec2<f32>();
      if (c0 + 2u * j < K) {
        v = unpack2x16float(w[(r * K + c0) / 2u + j]);
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
