// kv_write.wgsl: stores the new tokens' K (before RoPE) and V rows in their paged-cache slots.
//
// For t < n_tokens with s = slots[t] != 0xffffffff, and c < kv4 (4-value columns of one row):
//   k_pool[s * kv4 + c] = store(k_new[t * kv4 + c]);  v_pool[s * kv4 + c] = store(v_new[t * kv4 + c])
// A slot is page * 16 + offset within the page. store() is the identity for f32 pools and
// pack2x16float on both halves of the vec4 for f16 pools (core WGSL, no shader-f16 needed): value 2i
// of a row in the low half of word i, exactly a little-endian Uint16Array of halves.
// Reference: the slot mapping of src/kv/paged-cache.ts (Sequence.appendSlots) and, for f16, the
// halves of src/gpu/ref/f16.ts (packF16Words); both are checked word for word in test/gpu/kv.test.ts.
//
// Dispatch: (ceil(n_tokens * kv4 / WG), 1, 1), split over y above the limit.
// Bindings: 0 uniform Params;
//   1 read_write k_pool, 2 read_write v_pool ([n_pages*16, kv4] of kv_quad: array<vec4<f32>> for f32
//     pools, array<vec2<u32>> (4 halves) for f16 pools);
//   3 read k_new, 4 read v_new (array<vec4<f32>>, [n_tokens, kv4]); 5 read slots (array<u32>, [n_tokens]).
// Params (in elements): n_tokens, kv4 (= n_kv_heads * head_dim / 4).
// Constants: WG (override); KV_DTYPE (placeholder: f32 or f16) picks the pool element type and store().

struct Params {
  n_tokens: u32,
  kv4: u32,
}

override WG: u32 = 256;

alias kv_quad_f32 = vec4<f32>; // 4 values
alias kv_quad_f16 = vec2<u32>; // 4 halves
fn kv_store_f32(x: vec4<f32>) -> vec4<f32> {
  return x;
}
fn kv_store_f16(x: vec4<f32>) -> vec2<u32> {
  return vec2<u32>(pack2x16float(x.xy), pack2x16float(x.zw));
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> k_pool: array<kv_quad_{{KV_DTYPE}}>;
@group(0) @binding(2) var<storage, read_write> v_pool: array<kv_quad_{{KV_DTYPE}}>;
@group(0) @binding(3) var<storage, read> k_new: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> v_new: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> slots: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let idx = (wg.y * nwg.x + wg.x) * WG + li;
  if (idx >= p.n_tokens * p.kv4) {
    return;
  }
  let t = idx / p.kv4;
  let c = idx % p.kv4;
  let s = slots[t];
  if (s == 0xffffffffu) {
    return;
  }
  k_pool[s * p.kv4 + c] = kv_store_{{KV_DTYPE}}(k_new[idx]);
  v_pool[s * p.kv4 + c] = kv_store_{{KV_DTYPE}}(v_new[idx]);
}
