// elementwise.wgsl: residual add and a plain copy (the bandwidth baseline for benchmarks).
//
// add:  x[i] += y[i] for i < p.n                       reference: src/gpu/ref/elementwise.ts addRef
// copy: dst4[i] = src4[i] for i < p.n / 4 (vec4 words)  reference: identity
// Dispatch: (ceil(n / WG / PER_THREAD), 1, 1) workgroups, split over y when above the limit
//   (index = (wg.y * num_workgroups.x + wg.x) * WG + local).
// Bindings: 0 uniform Params; 1 read_write x / dst (array<f32> / array<vec4<u32>>); 2 read y / src.
// Params (in elements): n.

struct Params {
  n: u32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * WG + li;
  if (i < p.n) {
    x[i] = x[i] + y[i];
  }
}
