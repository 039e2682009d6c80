// Remembers the most advanced dead end of the WGL search: the evidence shown to a human when
// the history turns out not to be linearizable.
//
// "Most advanced" means the most operations with a known return placed; unknown ones only pad a
// prefix (and can mislead, e.g. "the key held x" where x's write may never have happened), so
// among equals the fewer the better. Dead ends are frequent even in linearizable histories, so
// recording one must not copy the whole stack: only the part pushed since the last recording
// (below its low-water mark the stack is unchanged) is copied, which keeps the total cost linear
// in the number of search steps.

/** Where the most advanced attempt got stuck: the best evidence we have for a human. */
export interface StuckPoint {
  /** Operations linearized, in linearization order: the longest linearizable prefix found. */
  readonly prefix: readonly number[];
  /** The model state after `prefix`. */
  readonly state: number;
  /** The operation whose return was reached before it could be linearized. */
  readonly blocked: number;
  /** The other operations already invoked and not linearized at that point (tried and failed). */
  readonly pending: readonly number[];
}

export class DeadEndRecorder {
  private readonly prefix: Int32Array;
  private length = 0;
  /** Stack entries below this depth have not changed since the last recording. */
  private unchangedBelow = 0;
  private bestScore = -Infinity;
  private state = 0;
  private blocked = -1;
  private pending: readonly number[] = [];

  constructor(private readonly size: number) {
    this.prefix = new Int32Array(size);
  }

  /** The search popped its stack down to `depth`. */
  popped(depth: number): void {
    if (depth < this.unchangedBelow) this.unchangedBelow = depth;
  }

  /**
   * A dead end: `stack[0, depth)` is linearized, leaving `state`, and `blocked` returned first.
   * `pending` is only called when this dead end is the best so far.
   */
  offer(stack: Int32Array, depth: number, placedFinite: number, state: number, blocked: number, pending: () => number[]): void {
    // Lexicographic: more completed operations first, then fewer unknown ones (at most size).
    const score = placedFinite * (this.size + 1) - (depth - placedFinite);
    if (score <= this.bestScore) return;
    this.bestScore = score;
    this.prefix.set(stack.subarray(this.unchangedBelow, depth), this.unchangedBelow);
    this.length = depth;
    this.unchangedBelow = depth;
    this.state = state;
    this.blocked = blocked;
    this.pending = pending();
  }

  /** The best dead end, with stack entries translated by `opOf`. */
  result(opOf: (entry: number) => number): StuckPoint {
    return {
      prefix: Array.from(this.prefix.subarray(0, this.length), opOf),
      state: this.state,
      blocked: this.blocked,
      pending: this.pending,
    };
  }
}
