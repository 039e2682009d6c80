// The simulator's clock and agenda: a binary min-heap of timed actions. Time is an integer count of
// simulated microseconds; two actions due at the same time run in the order they were scheduled
// (a sequence number breaks the tie), so a run never depends on heap internals.

export type Micros = number;

export const MICROS_PER_MS = 1000;

export function ms(milliseconds: number): Micros {
  return Math.round(milliseconds * MICROS_PER_MS);
}

/** "123.456ms", for traces. */
export function formatTime(time: Micros): string {
  return `${(time / MICROS_PER_MS).toFixed(3)}ms`;
}

interface Scheduled {
  readonly time: Micros;
  readonly sequence: number;
  readonly action: () => void;
}

function before(left: Scheduled, right: Scheduled): boolean {
  return left.time < right.time || (left.time === right.time && left.sequence < right.sequence);
}

export class EventQueue {
  private readonly heap: Scheduled[] = [];
  private sequenceNext = 0;

  get size(): number {
    return this.heap.length;
  }

  push(time: Micros, action: () => void): void {
    const item: Scheduled = { time, sequence: this.sequenceNext++, action };
    const heap = this.heap;
    heap.push(item);
    let child = heap.length - 1;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      const parentItem = heap[parent] as Scheduled;
      if (!before(item, parentItem)) break;
      heap[child] = parentItem;
      child = parent;
    }
    heap[child] = item;
  }

  peekTime(): Micros | undefined {
    return this.heap[0]?.time;
  }

  pop(): Scheduled | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined) return undefined;
    const last = heap.pop() as Scheduled;
    if (heap.length > 0) {
      let parent = 0;
      for (;;) {
        const left = 2 * parent + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        let smallest = left;
        if (right < heap.length && before(heap[right] as Scheduled, heap[left] as Scheduled)) smallest = right;
        if (!before(heap[smallest] as Scheduled, last)) break;
        heap[parent] = heap[smallest] as Scheduled;
        parent = smallest;
      }
      heap[parent] = last;
    }
    return top;
  }
}

/** The clock plus the agenda. Actions scheduled in the past run "now" (time never goes back). */
export class Simulation {
  private readonly queue = new EventQueue();
  private nowTime: Micros = 0;
  private eventsRun = 0;
  private stopped = false;

  get now(): Micros {
    return this.nowTime;
  }

  get eventCount(): number {
    return this.eventsRun;
  }

  get pending(): number {
    return this.queue.size;
  }

  at(time: Micros, action: () => void): void {
    this.queue.push(Math.max(time, this.nowTime), action);
  }

  after(delay: Micros, action: () => void): void {
    this.at(this.nowTime + Math.max(0, delay), action);
  }

  /** Ends the current `runUntil` after the running action. */
  stop(): void {
    this.stopped = true;
  }

  /** Runs one action; false when nothing is scheduled. */
  step(): boolean {
    const item = this.queue.pop();
    if (item === undefined) return false;
    this.nowTime = item.time;
    this.eventsRun++;
    item.action();
    return true;
  }

  /** Runs every action due at or before `time` (or until `stop()`), then sets the clock to `time`. */
  runUntil(time: Micros): void {
    this.stopped = false;
    for (;;) {
      if (this.stopped) return;
      const next = this.queue.peekTime();
      if (next === undefined || next > time) break;
      this.step();
    }
    if (time > this.nowTime) this.nowTime = time;
  }
}
