// The symbol-merge loop both tokenizers share, and the binary min-heap it queues pairs in.
export class MinHeap<T> {
  private items: T[] = [];
  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  push(x: T): void {
    const a = this.items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  pop(): T | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l], a[m])) m = l;
        if (r < a.length && this.less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}

interface Pair {
  left: number;
  right: number;
  key: number;
  /** Combined length when queued; a different length now means one side has changed. */
  size: number;
}

const byLowestKey = (a: Pair, b: Pair): boolean => a.key < b.key || (a.key === b.key && a.left < b.left);

/**
 * Merges adjacent symbols best pair first (lowest key; ties: the leftmost) until no adjacent pair
 * has a key: the loop both tokenizers share (BPE keys are merge ranks, SentencePiece's negated
 * scores). The symbols are `len.length` consecutive pieces whose lengths `len` holds; a merge adds
 * the right piece's length to the left one and sets the right one's to 0. `key(left, right)` sees
 * the current lengths and returns the pair's key, or undefined when it does not merge. Returns
 * `next`: from symbol 0, the index of the following surviving symbol (-1 after the last).
 */
export function mergeSymbols(len: Int32Array, key: (left: number, right: number) => number | undefined): Int32Array {
  const n = len.length;
  const prev = new Int32Array(n);
  const next = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  const queue = new MinHeap<Pair>(byLowestKey);
  const tryAdd = (left: number, right: number): void => {
    if (left < 0 || right < 0) return;
    const k = key(left, right);
    if (k !== undefined) queue.push({ left, right, key: k, size: len[left] + len[right] });
  };
  for (let i = 1; i < n; i++) tryAdd(i - 1, i);

  while (queue.size > 0) {
    const { left, right, size } = queue.pop()!;
    if (len[left] === 0 || len[right] === 0 || len[left] + len[right] !== size) continue;
    len[left] = size;
    len[right] = 0;
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    tryAdd(prev[left], left);
    tryAdd(left, next[left]);
  }
  return next;
}
