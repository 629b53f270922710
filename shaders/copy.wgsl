// copy.wgsl: dst[i] = src[i] over vec4<u32> words; the bandwidth baseline that benchmarks
// compare every kernel family against (bytes moved = 2 × size).
//
// Dispatch: (ceil(n4 / (WG * PER_THREAD)), y, 1), grid-stride over workgroups.
// Bindings: 0 uniform Params; 1 read_write dst array<vec4<u32>>; 2 read src array<vec4<u32>>.
// Params (in vec4 words): n4.
// Reference: identity.

struct Params {
  n4: u32,
}

override WG: u32 = 256;
const PER_THREAD: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> src: array<vec4<u32>>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let base = (wg.y * nwg.x + wg.x) * WG * PER_THREAD + li;
  for (var k = 0u; k < PER_THREAD; k++) {
    let i = base + k * WG;
    if (i < p.n4) {
      dst[i] = src[i];
    }
  }
}
