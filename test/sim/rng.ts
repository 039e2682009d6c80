// Seeded randomness for the simulator. Every source of randomness in a run is an Rng derived from
// the run's seed and a label naming its purpose ("network", "node/3", "faults"), so adding a draw in
// one place never reshuffles the draws of another. The generator is sfc32 (Chris Doty-Humphrey's
// Small Fast Counting generator): 128 bits of state, fast, and good enough for simulation.

import type { RandomSource } from '../../src/raft/types.js';

/** cyrb128: a 128-bit string hash, used only to turn (seed, label) into generator state. */
function hash128(text: string): [number, number, number, number] {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < text.length; i++) {
    const k = text.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

export class Rng implements RandomSource {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /** The name this stream was derived from; forks derive from it, not from the stream's position. */
  readonly key: string;

  constructor(key: string) {
    this.key = key;
    [this.a, this.b, this.c, this.d] = hash128(key);
    // The first outputs of sfc32 are correlated with the seed words: discard a few.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** An independent stream for `label`; the same label always gives the same stream. */
  fork(label: string): Rng {
    return new Rng(`${this.key}/${label}`);
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A float in [0, 1). */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer in [0, maxExclusive). */
  nextInt(maxExclusive: number): number {
    if (!(maxExclusive >= 1)) throw new RangeError(`nextInt(${maxExclusive})`);
    return Math.floor(this.nextFloat() * maxExclusive);
  }

  /** An integer in [min, max], both included. */
  intBetween(min: number, max: number): number {
    return min + this.nextInt(max - min + 1);
  }

  /** True with probability `probability`. */
  chance(probability: number): boolean {
    return probability > 0 && this.nextFloat() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.nextInt(items.length)] as T;
  }

  /** A shuffled copy (Fisher-Yates). */
  shuffled<T>(items: readonly T[]): T[] {
    const copy = items.slice();
    for (let i = copy.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const held = copy[i] as T;
      copy[i] = copy[j] as T;
      copy[j] = held;
    }
    return copy;
  }
}

/** The root stream of a run. */
export function rootRng(seed: number): Rng {
  return new Rng(`seed:${seed}`);
}
