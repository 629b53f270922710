// rmsnorm.wgsl: RMS normalization of rows, out of place (main) or in place (main_in_place).
//
// out[r*out_stride + c] = x[r*x_stride + c] / sqrt(mean_c(x[r, c]^2) + eps) * w[c]
//   for r < n_rows, c < cols. Reference: src/gpu/ref/rmsnorm.ts rmsnormRef.
//
// One workgroup per row: invocations stride over the columns summing squares, the sums are
// reduced with subgroupAdd and then across subgroups in workgroup memory (slot
// local_invocation_index / subgroup_size, assuming subgroups are consecutive ranges of
// invocations, as matvec.wgsl does); without subgroups each invocation is its own slot and the
// same code is a shared-memory tree.
//
// Dispatch: (gx, gy, 1) with gx*gy >= n_rows (grid1d); row = wg.y*gx + wg.x.
// Bindings: 0 uniform Params; 1 read_write x (array<f32>; written only by main_in_place);
//   2 read w (array<f32>, [cols]); 3 read_write out (array<f32>; main only).
// Params: n_rows, cols, x_stride, out_stride (elements), eps (f32).
// Constants (placeholders): WG, and SG ('' with subgroups, '//' without: it comments out the subgroup lines).

{{ENABLE_SUBGROUPS}}

struct Params {
  n_rows: u32,
  cols: u32,
  x_stride: u32,
  out_stride: u32,
  eps: f32,
}

const WG: u32 = {{WG}}u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, WG>;

// 1 / sqrt(mean(x[row]^2) + eps), the same in every invocation.
fn inv_rms(row: u32, li: u32, slot: u32, writer: bool, slots: u32) -> f32 {
  var s = 0.0;
  for (var c = li; c < p.cols; c += WG) {
    let v = x[row * p.x_stride + c];
    s += v * v;
  }
{{SG}}  s = subgroupAdd(s);
  if (writer) {
    red[slot] = s;
  }
  workgroupBarrier();
  var n = slots;
  while (n > 8u) {
    let h = n / 2u;
    if (li < h) {
      red[li] += red[li + h];
    }
    workgroupBarrier();
    n = h;
  }
  if (li == 0u) {
    var total = red[0];
    for (var j = 1u; j < n; j++) {
      total += red[j];
    }
    red[0] = total;
  }
  workgroupBarrier();
  return inverseSqrt(red[0] / f32(p.cols) + p.eps);
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
{{SG}}  @builtin(subgroup_size) sg_size: u32, @builtin(subgroup_invocation_id) sg_lane: u32,
) {
  let row = wg.y * nwg.x + wg.x;
  if (row >= p.n_rows) {
    return;
  }
  var slots = WG;
  var slot = li;
  var writer = true;
{{SG}}  slots = (WG + sg_size - 1u) / sg_size; slot = li / sg_size; writer = sg_lane == 0u;
  let scale = inv_rms(row, li, slot, writer, slots);
  for (var c = li; c < p.cols; c += WG) {
    out[row * p.out_stride + c] = x[row * p.x_stride + c] * scale * w[c];
  }
}

@compute @workgroup_size(WG)
fn main_in_place(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
{{SG}}  @builtin(subgroup_size) sg_size: u32, @builtin(subgroup_invocation_id) sg_lane: u32,
) {
  let row = wg.y * nwg.x + wg.x;
  if (row >= p.n_rows) {
    return;
  }
  var slots = WG;
  var slot = li;
  var writer = true;
{{SG}}  slots = (WG + sg_size - 1u) / sg_size; slot = li / sg_size; writer = sg_lane == 0u;
  let scale = inv_rms(row, li, slot, writer, slots);
  for (var c = li; c < p.cols; c += WG) {
    let i = row * p.x_stride + c;
    x[i] = x[i] * scale * w[c];
  }
}
