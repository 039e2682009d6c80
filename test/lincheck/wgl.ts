// The Wing & Gong linearizability search with Lowe's memoization (the "WGL" algorithm, as in
// Porcupine and Knossos), for one independent sub-history (one key).
//
// Call and return events sit in a doubly linked list sorted by time. Walking the list from the
// front, each call met is a candidate to linearize next: if the model accepts it and the
// resulting (linearized set, state) was never seen, it is removed ("lifted") from the list with
// its return, and the walk restarts from the front. Meeting a return event means that operation
// has completed without having been linearized, which is impossible in this configuration, so
// the search backtracks: the last linearized operation is put back and the walk resumes just
// after its call. The search succeeds once every operation with a known return is linearized.
//
// An operation whose return is unknown (Infinity) has no return event: it never forces a
// backtrack, it may be linearized anywhere after its call, or left out entirely. Trying each
// pending one at every step, as plain WGL does, blows up: the search linearizes every subset of
// the lost writes before the read that needs none of them. So the search only linearizes an
// unknown operation when the very next operation observes the state (is not a blind write),
// and does not memoize the in-between configuration. This loses no linearization: in any
// valid order, an unknown operation followed by a blind write (a put, an unconfirmed delete),
// or by nothing, can be removed, since that write sets the state regardless; removing it drops
// only real-time constraints. Repeating this leaves every unknown operation right before an
// observer (a read, a confirmed delete), which is exactly the shape searched.
//
// This file knows nothing about keys or values: states are integers and the model is a step
// function, so the search can be tested and reasoned about on its own.

import { CacheFullError, ConfigCache, LinearizedSet } from './cache.js';
import { DeadEndRecorder, type StuckPoint } from './deadend.js';

export interface SearchInput {
  /** One interval per operation, indexed like the operations; ret may be Infinity. */
  readonly intervals: readonly { readonly call: number; readonly ret: number }[];
  readonly initialState: number;
  /** The model: the state after applying operation `op` in `state`, or a negative number if illegal. */
  readonly step: (state: number, op: number) => number;
  /**
   * True for an operation that is legal in every state and whose next state does not depend on
   * the current one. Optional: without it no operation is assumed blind, which is always sound,
   * just slower when there are many unknown operations.
   */
  readonly isBlindWrite?: (op: number) => boolean;
  /** Polled now and then; true makes the search give up. Keeps clocks out of this file. */
  readonly outOfTime: () => boolean;
  /** Bound on memoized configurations; defaults to a memory-friendly figure. */
  readonly maxCacheEntries?: number;
}

export type { StuckPoint };

export type SearchOutcome =
  | { readonly kind: 'linearizable'; readonly order: readonly number[] }
  | { readonly kind: 'violation'; readonly stuck: StuckPoint }
  | { readonly kind: 'gave-up'; readonly reason: string };

/** How many loop iterations between two outOfTime() polls: clocks are slow next to one step. */
const POLL_EVERY = 1024;
/** No event (end of list, no return event). */
const NONE = -1;
/** What `step` returns for an operation that cannot happen; any negative number would do. */
const ILLEGAL = -1;

export function searchLinearization(input: SearchInput): SearchOutcome {
  const events = buildEventList(input.intervals);
  const { next, prev, isCall, opOf, returnOf } = events;
  const n = input.intervals.length;
  const finite = input.intervals.map((iv) => Number.isFinite(iv.ret));
  const blind = input.intervals.map((_, op) => input.isBlindWrite?.(op) ?? false);
  const finiteCount = finite.filter((f) => f).length;
  let remaining = finiteCount;

  const byInvocation = Array.from(input.intervals.keys()).sort((a, b) => input.intervals[a].call - input.intervals[b].call || a - b);
  const linearized = new LinearizedSet(
    n,
    byInvocation.filter((op) => finite[op]),
    byInvocation.filter((op) => !finite[op]),
  );
  const cache = new ConfigCache(input.maxCacheEntries ?? DEFAULT_CACHE_ENTRIES);
  // The backtracking stack: the call event linearized at each depth, the state before it, and
  // whether it was chosen while an unknown operation awaited its observer.
  const stackEvent = new Int32Array(n);
  const stackState = new Int32Array(n);
  const stackObserving = new Uint8Array(n);
  let depth = 0;
  let state = input.initialState;
  // True right after an unknown operation was linearized: the next one must observe the state.
  let observing = false;
  const deadEnds = new DeadEndRecorder(n);

  // Removing a call and its return, and putting them back in reverse order (dancing links):
  // the neighbours' pointers still name the removed events, so restoring is O(1).
  const unlink = (e: number): void => {
    next[prev[e]] = next[e];
    if (next[e] !== NONE) prev[next[e]] = prev[e];
  };
  const relink = (e: number): void => {
    next[prev[e]] = e;
    if (next[e] !== NONE) prev[next[e]] = e;
  };
  const lift = (call: number): void => {
    unlink(call);
    if (returnOf[call] !== NONE) unlink(returnOf[call]);
  };
  const unlift = (call: number): void => {
    if (returnOf[call] !== NONE) relink(returnOf[call]);
    relink(call);
  };

  let entry = next[HEAD];
  let iterations = 0;
  try {
    for (;;) {
      if (remaining === 0) {
        return { kind: 'linearizable', order: Array.from(stackEvent.subarray(0, depth), (e) => opOf[e]) };
      }
      if (++iterations % POLL_EVERY === 0 && input.outOfTime()) {
        return { kind: 'gave-up', reason: `time budget exhausted after ${String(iterations)} search steps` };
      }
      // Some known-return operation is still unlinearized, so its return event lies ahead.
      if (entry === NONE) throw new Error('lincheck: event list ended before a pending return');

      if (isCall[entry] === 1) {
        const op = opOf[entry];
        const after = observing && blind[op] ? ILLEGAL : input.step(state, op);
        if (after >= 0) {
          linearized.toggle(op);
          // An unknown operation is only a means to the observer that must follow it, so its
          // configuration is not memoized: the one after the observer is.
          const tentative = !finite[op];
          if (tentative || cache.addIfAbsent(linearized, after)) {
            stackEvent[depth] = entry;
            stackState[depth] = state;
            stackObserving[depth] = observing ? 1 : 0;
            depth++;
            state = after;
            if (!tentative) remaining--;
            observing = tentative;
            lift(entry);
            entry = next[HEAD];
            continue;
          }
          linearized.toggle(op); // seen before: that branch is already explored
        }
        entry = next[entry];
        continue;
      }

      // A return event: its operation completed without being linearized. Dead end.
      if (!observing) {
        const blockedReturn = entry;
        deadEnds.offer(stackEvent, depth, finiteCount - remaining, state, opOf[entry], () => pendingBefore(events, blockedReturn));
      }
      if (depth === 0) return { kind: 'violation', stuck: deadEnds.result((e) => opOf[e]) };
      depth--;
      deadEnds.popped(depth);
      const call = stackEvent[depth];
      const op = opOf[call];
      state = stackState[depth];
      observing = stackObserving[depth] === 1;
      linearized.toggle(op);
      if (finite[op]) remaining++;
      unlift(call);
      // Resume the scan that chose `call`, just after it.
      entry = next[call];
    }
  } catch (err) {
    if (err instanceof CacheFullError) return { kind: 'gave-up', reason: err.message };
    throw err;
  }
}

/** Far more than any healthy search needs; at roughly 40 bytes each, about 200 MiB at most. */
const DEFAULT_CACHE_ENTRIES = 5_000_000;

/** Event 0 is the list head (a sentinel); events 1..m are calls and returns sorted by time. */
const HEAD = 0;

interface EventList {
  readonly next: Int32Array;
  readonly prev: Int32Array;
  readonly isCall: Uint8Array;
  readonly opOf: Int32Array;
  /** For a call event, its return event, or NONE when the return time is unknown. */
  readonly returnOf: Int32Array;
}

function buildEventList(intervals: SearchInput['intervals']): EventList {
  interface Ev { readonly time: number; readonly call: boolean; readonly op: number }
  const evs: Ev[] = [];
  intervals.forEach((iv, op) => {
    evs.push({ time: iv.call, call: true, op });
    if (Number.isFinite(iv.ret)) evs.push({ time: iv.ret, call: false, op });
  });
  // At equal times calls go first: operations that merely touch are treated as concurrent,
  // the permissive reading when two clocks cannot tell the events apart.
  evs.sort((a, b) => a.time - b.time || Number(b.call) - Number(a.call) || a.op - b.op);

  const size = evs.length + 1;
  const next = new Int32Array(size);
  const prev = new Int32Array(size);
  const isCall = new Uint8Array(size);
  const opOf = new Int32Array(size).fill(NONE);
  const returnOf = new Int32Array(size).fill(NONE);
  const callEvent = new Int32Array(intervals.length);
  evs.forEach((ev, i) => {
    const e = i + 1;
    isCall[e] = ev.call ? 1 : 0;
    opOf[e] = ev.op;
    if (ev.call) callEvent[ev.op] = e;
    else returnOf[callEvent[ev.op]] = e; // a return sorts after its call, so the call is known
  });
  for (let e = 0; e < size; e++) {
    next[e] = e + 1 < size ? e + 1 : NONE;
    prev[e] = e - 1;
  }
  return { next, prev, isCall, opOf, returnOf };
}

/** The operations invoked, not linearized, before the return event `blockedReturn`. */
function pendingBefore(events: EventList, blockedReturn: number): number[] {
  const blocked = events.opOf[blockedReturn];
  const pending: number[] = [];
  for (let e = events.next[HEAD]; e !== blockedReturn && e !== NONE; e = events.next[e]) {
    if (events.isCall[e] === 1 && events.opOf[e] !== blocked) pending.push(events.opOf[e]);
  }
  return pending;
}
