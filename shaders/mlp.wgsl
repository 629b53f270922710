// mlp.wgsl: the SiLU gate of the MLP for batches (decode uses main_gated in matvec.wgsl, which
// fuses it into the gate and up products).
//
// gate[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i]   for i < n
//   (in place: gate and up are the [T, ffn] outputs of the gate and up matmuls).
//   Reference: src/gpu/ref/mlp.ts siluMulRef.
// Dispatch: (ceil(n / WG), 1, 1), split over y when above the limit
//   (index = (wg.y * num_workgroups.x + wg.x) * WG + local).
// Bindings: 0 uniform Params; 1 read_write gate (array<f32>); 2 read up (array<f32>).
// Params (in elements): n.
// Constants: WG override.

struct Params {
  n: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * WG + li;
  if (i < p.n) {
    let g = gate[i];
    gate[i] = g / (1.0 + exp(-g)) * up[i];
  }
}
