// rope.wgsl: rotary position embedding applied in place to the query rows of a batch.
//
// For token t (absolute position pos = positions[t]), head h < n_heads, pair i < rope_dim/2:
//   norm (llama):  dims (a, b) = (2i, 2i+1)
//   neox (qwen2):  dims (a, b) = (i, i + rope_dim/2)
//   (cos, sin) = rope_cs[pos * rope_dim/2 + i]
//   x[a], x[b] = x[a]*cos - x[b]*sin, x[a]*sin + x[b]*cos
// with x = the head's values at x[offset + t*stride + h*head_dim ..]. Dims >= rope_dim are left alone.
// Keys are not rotated here: they are stored before RoPE and rotated inside attention.
// Reference: src/gpu/ref/rope.ts ropeRef.
//
// Dispatch: (ceil(n_tokens * n_heads * rope_dim/2 / WG), 1, 1), split over y above the limit.
// Bindings: 0 uniform Params; 1 read_write x (array<f32>); 2 read positions (array<u32>, [n_tokens]);
//   3 read rope_cs (array<vec2<f32>>, [max_pos, rope_dim/2] of (cos, sin), from buildRopeTable).
// Params (in elements): n_tokens, n_heads, head_dim, rope_dim, neox (0 or 1), max_pos (positions at or
//   beyond it are clamped to the last table row; the wrapper's caller keeps them below), stride (elements
//   between consecutive tokens' rows), offset (element index of token 0, head 0).

struct Params {
  n_tokens: u32,
  n_heads: u32,
  head_dim: u32,
  rope_dim: u32,
  neox: u32,
  max_pos: u32,
  stride: u32,
  offset: u32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read> rope_cs: array<vec2<f32>>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let half = p.rope_dim / 2u;
  let idx = (wg.y * nwg.x + wg.x) * WG + li;
  if (idx >= p.n_tokens * p.n_heads * half) {
    return;
  }
  let i = idx % half;
  let h = (idx / half) % p.n_heads;
  let t = idx / (half * p.n_heads);
  let pos = min(positions[t], p.max_pos - 1u);
  let cs = rope_cs[pos * half + i];
  let base = p.offset + t * p.stride + h * p.head_dim;
  var a = base + 2u * i;
  var b = a + 1u;
  if (p.neox != 0u) {
    a = base + i;
    b = a + half;
  }
  let xa = x[a];
  let xb = x[b];
  x[a] = xa * cs.x - xb * cs.y;
  x[b] = xa * cs.y + xb * cs.x;
}
