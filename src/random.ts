// The project's one seeded PRNG: xorshift32 (Marsaglia). Fast, reproducible per seed, and good
// enough for synthetic weights, test inputs and benchmark sampling; not for anything secret.

/** A xorshift32 stream: each call returns the next state, a u32 (never 0). Seed 0 starts from a fixed non-zero state. */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Uniform values in [0, 1) from xorshift32. */
export function seededRandom(seed: number): () => number {
  const next = xorshift32(seed);
  return () => next() / 4294967296;
}
