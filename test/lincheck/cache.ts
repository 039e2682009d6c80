// Memoization for the WGL search (Lowe's improvement): a configuration is the set of operations
// linearized so far plus the model state they produced. Reaching a configuration a second time
// cannot lead anywhere new, so the search records every configuration it enters.
//
// Two things keep this cheap on long histories:
// - The set is a bitset with a Zobrist hash (one random number per operation, XORed in and out),
//   so linearizing or undoing an operation updates the hash in O(1).
// - A stored set is compressed. Operations with a known return get bits in invocation order, and
//   the search always linearizes almost all of the early ones before any late one, so the bits
//   look like 111...111 [a few mixed words] 000...000. Storing only the position of the first
//   non-full word and the mixed words after it makes an entry a few words long, however long
//   the history. Operations with an unknown outcome may stay unlinearized forever and would
//   break that pattern, so they get their own bit range, stored in full.
// Entries live in flat typed arrays with an open-addressing table, rather than one object (and
// one boxed 53-bit Map key) per entry: a pathological search can store millions of them.

/** Deterministic 32-bit generator (splitmix32): the checker must not depend on Math.random. */
function splitmix32(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class LinearizedSet {
  /** Words [0, knownWords) hold operations with a known return, the rest the unknown ones. */
  readonly words: Uint32Array;
  readonly knownWords: number;
  private readonly bitOf: Int32Array;
  private readonly fullMask: Uint32Array;
  private readonly zobristLo: Uint32Array;
  private readonly zobristHi: Uint32Array;
  hashLo = 0;
  hashHi = 0;
  /** First known word that is not full: every word below it is all ones. */
  floor = 0;
  /** Last known word that is not zero (at least floor - 1): every word above it is zero. */
  top = -1;

  /**
   * @param known operations with a known return, in invocation order
   * @param unknown the other operations
   */
  constructor(size: number, known: readonly number[], unknown: readonly number[]) {
    this.knownWords = Math.ceil(known.length / 32);
    this.words = new Uint32Array(this.knownWords + Math.ceil(unknown.length / 32));
    this.bitOf = new Int32Array(size);
    known.forEach((op, i) => (this.bitOf[op] = i));
    unknown.forEach((op, i) => (this.bitOf[op] = this.knownWords * 32 + i));
    this.fullMask = new Uint32Array(this.knownWords).fill(0xffffffff);
    if (known.length % 32 !== 0) this.fullMask[this.knownWords - 1] = (1 << known.length % 32) - 1;
    this.zobristLo = new Uint32Array(size);
    this.zobristHi = new Uint32Array(size);
    const next = splitmix32(0x5eed);
    for (let op = 0; op < size; op++) {
      this.zobristLo[op] = next();
      this.zobristHi[op] = next();
    }
  }

  /** Adds or removes operation `op`; toggling is its own inverse for the bit and the hash. */
  toggle(op: number): void {
    const bit = this.bitOf[op];
    const w = bit >>> 5;
    this.words[w] ^= 1 << (bit & 31);
    const word = this.words[w]; // read back: the XOR expression itself is a signed int32
    this.hashLo = (this.hashLo ^ this.zobristLo[op]) >>> 0;
    this.hashHi = (this.hashHi ^ this.zobristHi[op]) >>> 0;
    if (w >= this.knownWords) return;
    if (word === this.fullMask[w]) {
      while (this.floor < this.knownWords && this.words[this.floor] === this.fullMask[this.floor]) this.floor++;
    } else if (w < this.floor) {
      this.floor = w;
    }
    if (word !== 0) {
      if (w > this.top) this.top = w;
    } else if (w === this.top) {
      while (this.top >= 0 && this.words[this.top] === 0) this.top--;
    }
  }
}

/** Why the cache refused to grow further: the search must then give up with "unknown". */
export class CacheFullError extends Error {
  override readonly name = 'CacheFullError';
}

/** Stored words beyond which the cache is full: 64 Mi words, 256 MiB. */
const MAX_ARENA_WORDS = 64 * 1024 * 1024;

export class ConfigCache {
  /** Open addressing: entry index + 1, or 0 for an empty slot. */
  private slots = new Int32Array(1 << 12);
  private count = 0;
  // Per entry: the 64-bit hash, the state, and where its compressed set lies in the arena.
  private hashLo = new Uint32Array(1 << 11);
  private hashHi = new Uint32Array(1 << 11);
  private state = new Int32Array(1 << 11);
  private floor = new Int32Array(1 << 11);
  private offset = new Int32Array(1 << 11);
  private length = new Int32Array(1 << 11);
  private arena = new Uint32Array(1 << 14);
  private arenaUsed = 0;

  constructor(
    /** Bound on stored configurations, so a hopeless search fails cleanly instead of exhausting memory. */
    private readonly maxEntries: number,
  ) {}

  get size(): number {
    return this.count;
  }

  /** Records (set, state); returns false when it was already recorded. */
  addIfAbsent(set: LinearizedSet, state: number): boolean {
    const mixed = Math.imul(state ^ 0x2545f491, 0x9e3779b1);
    const lo = (set.hashLo ^ mixed) >>> 0;
    const hi = (set.hashHi ^ Math.imul(mixed ^ (mixed >>> 15), 0x85ebca6b)) >>> 0;
    const span = set.top - set.floor + 1; // known words kept, possibly 0
    const len = span + (set.words.length - set.knownWords);

    const mask = this.slots.length - 1;
    let slot = lo & mask;
    for (let s = this.slots[slot]; s !== 0; s = this.slots[slot]) {
      const e = s - 1;
      if (this.hashLo[e] === lo && this.hashHi[e] === hi && this.state[e] === state && this.sameSet(e, set, span, len)) return false;
      slot = (slot + 1) & mask;
    }

    if (this.count >= this.maxEntries || this.arenaUsed + len > MAX_ARENA_WORDS) {
      throw new CacheFullError(`memory bound reached: ${String(this.count)} configurations memoized`);
    }
    const e = this.count++;
    this.growEntries();
    this.growArena(len);
    this.hashLo[e] = lo;
    this.hashHi[e] = hi;
    this.state[e] = state;
    this.floor[e] = set.floor;
    this.offset[e] = this.arenaUsed;
    this.length[e] = len;
    this.arena.set(set.words.subarray(set.floor, set.floor + span), this.arenaUsed);
    this.arena.set(set.words.subarray(set.knownWords), this.arenaUsed + span);
    this.arenaUsed += len;
    this.slots[slot] = e + 1;
    if (this.count * 2 > this.slots.length) this.rehash();
    return true;
  }

  private sameSet(e: number, set: LinearizedSet, span: number, len: number): boolean {
    if (this.floor[e] !== set.floor || this.length[e] !== len) return false;
    const base = this.offset[e];
    for (let i = 0; i < span; i++) if (this.arena[base + i] !== set.words[set.floor + i]) return false;
    for (let i = span; i < len; i++) if (this.arena[base + i] !== set.words[set.knownWords + i - span]) return false;
    return true;
  }

  private growEntries(): void {
    if (this.count <= this.state.length) return;
    const grow = <T extends Uint32Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(a.length * 2);
      b.set(a);
      return b;
    };
    this.hashLo = grow(this.hashLo, (n) => new Uint32Array(n));
    this.hashHi = grow(this.hashHi, (n) => new Uint32Array(n));
    this.state = grow(this.state, (n) => new Int32Array(n));
    this.floor = grow(this.floor, (n) => new Int32Array(n));
    this.offset = grow(this.offset, (n) => new Int32Array(n));
    this.length = grow(this.length, (n) => new Int32Array(n));
  }

  private growArena(extra: number): void {
    if (this.arenaUsed + extra <= this.arena.length) return;
    let size = this.arena.length * 2;
    while (size < this.arenaUsed + extra) size *= 2;
    const arena = new Uint32Array(Math.min(size, MAX_ARENA_WORDS));
    arena.set(this.arena.subarray(0, this.arenaUsed));
    this.arena = arena;
  }

  private rehash(): void {
    const slots = new Int32Array(this.slots.length * 2);
    const mask = slots.length - 1;
    for (let e = 0; e < this.count; e++) {
      let slot = this.hashLo[e] & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = e + 1;
    }
    this.slots = slots;
  }
}
