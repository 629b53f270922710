// embedding.wgsl: token embedding lookup with dequantization (src/gpu/weights.ts layouts).
//
// out[out_offset + t*out_stride + c] = E[ids[ids_offset + t], c] for t < n_tokens, c < cols,
// for the tokens whose id falls in this weight part's rows [row_start, row_start + rows); tokens
// of other parts are left to those parts' dispatches. Ids are validated on the CPU before they
// are uploaded (or come from the GPU sampler); an id in no part leaves its output untouched and
// never causes an out-of-bounds read. Reference: src/gpu/ref/embedding.ts embeddingRef.
//
// Dispatch: (ceil(cols / WG), n_tokens, 1); one invocation per output element.
// Bindings: 0 uniform Params; 1 read ids (array<u32>); 2 read w (array<u32>: one weight part);
//   3 read_write out (array<f32>).
// Params (elements unless noted): n_tokens, cols, row_start, rows, scale_offset (u32 words),
//   out_stride, out_offset, ids_offset.
// Constants: WTYPE override (0 F32, 1 F16, 8 Q8_0, 2 Q4_0: ggml type ids), WG override.

struct Params {
  n_tokens: u32,
  cols: u32,
  row_start: u32,
  rows: u32,
  scale_offset: u32,
  out_stride: u32,
  out_offset: u32,
  ids_offset: u32,
}

override WTYPE: u32 = 0u;
override WG: u32 = 256u;
const T_F32: u32 = 0u;
const T_F16: u32 = 1u;
const T_Q4_0: u32 = 2u;
const T_Q8_0: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn block_scale(b: u32) -> f32 {
  let pair = unpack2x16float(w[p.scale_offset + (b >> 1u)]);
  return select(pair.x, pair.y, (b & 1u) == 1u);
}

// Element e (= r*cols + c) of the part.
fn element(e: u32) -> f32 {
  if (WTYPE == T_F32) {
    return bitcast<f32>(w[e]);
  }
  if (WTYPE == T_F16) {
    let pair = unpack2x16float(w[e / 2u]);
    return select(pair.x, pair.y, (e & 1u) == 1u);
  }
  let b = e / 32u;
  let j = e % 32u;
  if (WTYPE == T_Q8_0) {
    let q = (bitcast<i32>(w[e / 4u]) << (24u - 8u * (j % 4u))) >> 24u; // sign-extended byte j % 4
    return f32(q) * block_scale(b);
  }
  // Q4_0: byte j % 16 of the block's 16; element j < 16 in its low nibble, j >= 16 in its high.
  let byte_index = j % 16u;
  let q = (w[b * 4u + byte_index / 4u] >> (8u * (byte_index % 4u) + select(0u, 4u, j >= 16u))) & 15u;
  return (f32(q) - 8.0) * block_scale(b);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let c = wg.x * WG + li;
  let t = wg.y;
  if (c >= p.cols || t >= p.n_tokens) {
    return;
  }
  let id = ids[p.ids_offset + t];
  if (id < p.row_start || id - p.row_start >= p.rows) {
    return;
  }
  let r = min(id - p.row_start, p.rows - 1u);
  out[p.out_offset + t * p.out_stride + c] = element(r * p.cols + c);
}
