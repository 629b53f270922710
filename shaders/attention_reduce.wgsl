// attention_reduce.wgsl: merges the split-K partial results of attention.wgsl (direct = 0).
//
// For row (t, h) with splits s < n_splits holding (o_s, m_s, l_s) (o_s unnormalized):
//   M = max_s m_s;  out[t, h] = sum_s o_s * exp(m_s - M) / sum_s l_s * exp(m_s - M)   (0 when the sum is 0)
// Splits that saw no key hold m = -1e30, l = 0, o = 0 and drop out. Reference: the softmax of
// src/gpu/ref/attention.ts attentionPagedRef over all splits' keys at once.
//
// Dispatch: (n_heads, n_tokens, 1), WG threads each taking vec4 columns d4, d4+WG, ... of one row.
// Bindings: 0 uniform Params; 1 read part (array<vec4<f32>>, [n_tokens, n_heads, n_splits, HEAD_DIM/4 + 1]);
//   2 read_write out (array<vec4<f32>>, [n_tokens, n_heads*HEAD_DIM]).
// Params: n_heads, n_splits, hd4 (= HEAD_DIM / 4).

struct Params {
  n_heads: u32,
  n_splits: u32,
  hd4: u32,
}

override WG: u32 = 32;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wg.y * p.n_heads + wg.x;
  let stride = p.hd4 + 1u;
  let base = row * p.n_splits * stride;
  var m = -1.0e30;
  for (var s = 0u; s < p.n_splits; s++) {
    m = max(m, part[base + s * stride + p.hd4].x);
  }
  for (var d4 = li; d4 < p.hd4; d4 += WG) {
    var l = 0.0;
    var o = vec4<f32>(0.0);
    for (var s = 0u; s < p.n_splits; s++) {
      let ml = part[base + s * stride + p.hd4];
      let w = exp(ml.x - m);
      l += ml.y * w;
      o += part[base + s * stride + d4] * w;
    }
    out[row * p.hd4 + d4] = select(vec4<f32>(0.0), o / l, l > 0.0);
  }
}
