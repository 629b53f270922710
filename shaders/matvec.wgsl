// matvec.wgsl: decode matrix-vector products against packed weights (src/gpu/weights.ts layouts).
//
// main:       y[o] = (accumulate ? y[o] : 0) + sum_c W[r, c] * x[t, c] (+ bias[row_offset + r])
// main_gated: y[o] = silu(sum_c G[r, c] x[t, c]) * sum_c U[r, c] x[t, c]   (the SiLU-gated MLP)
//   for r < rows (the rows of one weight part), t < n_tokens, o = y_offset + t*y_stride + row_offset + r.
//   References: src/gpu/ref/matvec.ts matvecRef, src/gpu/ref/mlp.ts gateUpRef.
//
// Design (decode is memory-bound): a workgroup owns ROWS consecutive rows; its WG invocations
// stride over the columns in units of 4 (F32, F16) or 8 (Q8_0, Q4_0) elements, loading each
// unit of x once into registers and reusing it for every row. Weight loads are 16 bytes (F32),
// 8 (F16, Q8_0) or 4 (Q4_0: one quant word per unit, four invocations per block); consecutive
// invocations read consecutive units, so every load is coalesced. Per-invocation sums are reduced with subgroupAdd, then across subgroups in
// workgroup memory; without subgroups every invocation is its own "subgroup" and the same code
// becomes a shared-memory tree. The cross-subgroup step puts subgroup k's sum in slot
// local_invocation_index / subgroup_size, which assumes subgroups are consecutive ranges of
// invocations: true on every implementation we know of for 1-D workgroups, though WGSL does not
// promise it.
//
// Dispatch: (gx, gy, n_tokens) with gx*gy >= ceil(rows / ROWS) (grid1d); row group g = wg.y*gx + wg.x.
// Bindings: 0 uniform Params; 1 read x (array<vec4<f32>>, [n_tokens, cols]); 2 read_write y (array<f32>);
//   3 read bias (array<f32>, [row_offset + rows]; main only)
//   4, 5, 6 read: one weight part viewed as array<vec4<u32>> (F32), array<vec2<u32>> (F16 and Q8_0
//     quants) and array<u32> (Q4_0 quants, Q8_0/Q4_0 scales): the same buffer bound three times;
//   7, 8, 9 read: the up weight part, viewed the same way (main_gated only).
// Params (elements unless noted): rows, cols, row_offset, scale_offset (u32 words), n_tokens,
//   y_stride, y_offset, flags (bit 0: accumulate into y, bit 1: add bias), up_scale_offset (u32 words).
// Constants: WTYPE override (0 F32, 1 F16, 8 Q8_0, 2 Q4_0: ggml type ids); placeholders WG
//   (64, 128 or 256), ROWS, and SG ('' with subgroups, '//' without: it comments out the subgroup lines).
// Requires cols % 4 == 0 (x is read as vec4); quantized types need cols % 32 == 0.

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
const T_Q8_0: u32 = 8u;
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

// The raw words of one unit (F32: 4 words, F16 and Q8_0: 2, Q4_0: 1) and its block's scale.
struct Unit {
  q: vec4<u32>,
  d: f32,
}

// Columns per unit of work.
fn unit_cols() -> u32 {
  if (WTYPE == T_F32 || WTYPE == T_F16) { return 4u; }
  return 8u;
}

// Scale of block b from an f16 pair word (block 2k in the low half).
fn pick_scale(pair_word: u32, b: u32) -> f32 {
  let pair = unpack2x16float(pair_word);
  return select(pair.x, pair.y, (b & 1u) == 1u);
}

// Unit u of row r of W (or the gate). Every type's unit is element u of its view, since a row
// holds cols / unit_cols() units of 16 (F32), 8 (F16, Q8_0) or 4 (Q4_0) bytes.
fn load_w(r: u32, u: u32) -> Unit {
  let i = r * (p.cols / unit_cols()) + u;
  if (WTYPE == T_F32) { return Unit(w_v4[i], 1.0); }
  if (WTYPE == T_F16) { return Unit(vec4<u32>(w_v2[i], 0u, 0u), 1.0); }
  let b = r * (p.cols / 32u) + u / 4u;
  let d = pick_scale(w_u32[p.scale_offset + (b >> 1u)], b);
  if (WTYPE == T_Q8_0) { return Unit(vec4<u32>(w_v2[i], 0u, 0u), d); }
  return Unit(vec4<u32>(w_u32[i], 0u, 0u, 0u), d);
}

// The same for the up matrix of main_gated (a separate function so that `main` does not bind it).
fn load_u(r: u32, u: u32) -> Unit {
  let i = r * (p.cols / unit_cols()) + u;
  if (WTYPE == T_F32) { return Unit(u_v4[i], 1.0); }
  if (WTYPE == T_F16) { return Unit(vec4<u32>(u_v2[i], 0u, 0u), 1.0); }
  let b = r * (p.cols / 32u) + u / 4u;
  let d = pick_scale(u_u32[p.up_scale_offset + (b >> 1u)], b);
  if (WTYPE == T_Q8_0) { return Unit(vec4<u32>(u_v2[i], 0u, 0u), d); }
  return Unit(vec4<u32>(u_u32[i], 0u, 0u, 0u), d);
}

// Four int8 in ggml byte order, sign-extended.
fn i8x4(q: u32) -> vec4<f32> {
  return vec4<f32>((vec4<i32>(bitcast<i32>(q)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

// x for unit u of token t: two vec4 (the second unused by F32/F16).
fn load_x(t: u32, u: u32) -> array<vec4<f32>, 2> {
  let xb = t * (p.cols / 4u);
  if (WTYPE == T_F32 || WTYPE == T_F16) {
    return array<vec4<f32>, 2>(x[xb + u], vec4<f32>());
  }
  if (WTYPE == T_Q8_0) {
    return array<vec4<f32>, 2>(x[xb + 2u * u], x[xb + 2u * u + 1u]);
  }
  // Q4_0: unit u is quant word u % 4 of block u / 4: elements 4*(u%4) .. +4 (low nibbles)
  // and 16 + 4*(u%4) .. +4 (high nibbles) of the block.
  let base = xb + (u / 4u) * 8u + (u % 4u);
  return array<vec4<f32>, 2>(x[base], x[base + 4u]);
}

// Dot product of one weight unit with its x.
fn dot_unit(k: Unit, xu: array<vec4<f32>, 2>) -> f32 {
  if (WTYPE == T_F32) {
    return dot(bitcast<vec4<f32>>(k.q), xu[0]);
  }
  if (WTYPE == T_F16) {
    return dot(vec4<f32>(unpack2x16float(k.q.x), unpack2x16float(k.q.y)), xu[0]);
  }
  if (WTYPE == T_Q8_0) {
    return k.d * (dot(i8x4(k.q.x), xu[0]) + dot(i8x4(k.q.y), xu[1]));
  }
  let q = k.q.x;
  let lo = vec4<f32>((vec4<u32>(q) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(15u));
  let hi = vec4<f32>((vec4<u32>(q) >> vec4<u32>(4u, 12u, 20u, 28u)) & vec4<u32>(15u));
  return k.d * (dot(lo - 8.0, xu[0]) + dot(hi - 8.0, xu[1]));
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
      acc[i] += dot_unit(load_w(min(row0 + i, p.rows - 1u), u), xu);
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
      acc_g[i] += dot_unit(load_w(r, u), xu);
      acc_u[i] += dot_unit(load_u(r, u), xu);
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
