// elementwise.wgsl: the residual add, a scale, the GELU-tanh gate of GEGLU and a logit softcap.
//
// main (add):  x[i] += y[i]                                   reference: src/gpu/ref/elementwise.ts addRef
// scale:       x[i] *= p.s                                    reference: scaleRef (gemma3's embedding scale)
// gelu_mul:    x[i] = gelu_tanh(x[i]) * y[i], with             reference: geluMulRef (gemma3's gated FFN: x is
//              gelu_tanh(a) = 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)))   the gate product, y the up product)
// softcap:     x[i] = p.s * tanh(x[i] / p.s)                  reference: softcapRef (final logit softcapping)
// for i < p.n. tanh's argument is clamped to ±15 (where tanh is ±1 in f32) so no implementation's
// exp can overflow into NaN. Separate kernels where a fused one is possible later: the gate could
// fold into the gate/up matmul epilogue as matvec.wgsl's main_gated does for SiLU.
// Dispatch: (ceil(n / WG), 1, 1) workgroups, split over y when above the limit
//   (index = (wg.y * num_workgroups.x + wg.x) * WG + local).
// Bindings: 0 uniform Params; 1 read_write x (array<f32>); 2 read y (array<f32>; main and gelu_mul only).
// Params (in elements): n, s (f32; scale and softcap).

struct Params {
  n: u32,
  s: f32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_COEF_A: f32 = 0.044715;

fn index(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
  return (wg.y * nwg.x + wg.x) * WG + li;
}

fn tanh_clamped(a: f32) -> f32 {
  return tanh(clamp(a, -15.0, 15.0));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = index(wg, nwg, li);
  if (i < p.n) {
    x[i] = x[i] + y[i];
  }
}

@compute @workgroup_size(WG)
fn scale(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = index(wg, nwg, li);
  if (i < p.n) {
    x[i] = x[i] * p.s;
  }
}

@compute @workgroup_size(WG)
fn gelu_mul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = index(wg, nwg, li);
  if (i < p.n) {
    let a = x[i];
    x[i] = 0.5 * a * (1.0 + tanh_clamped(SQRT_2_OVER_PI * a * (1.0 + GELU_COEF_A * a * a))) * y[i];
  }
}

@compute @workgroup_size(WG)
fn softcap(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = index(wg, nwg, li);
  if (i < p.n) {
    x[i] = p.s * tanh_clamped(x[i] / p.s);
  }
}
