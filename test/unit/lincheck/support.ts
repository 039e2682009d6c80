// Shared helpers for the lincheck tests: a terse history builder, a seeded PRNG, a generator of
// histories recorded from a real sequential execution, and a brute-force reference checker.

import type { KvOperation, OpStatus } from '../../lincheck/history.js';

/** Deterministic PRNG (mulberry32) so a failing seed can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

type Interval = readonly [invoke: number, complete: number | null];

interface Common {
  readonly client?: number;
  readonly key?: string;
  /** [invoke, complete]; complete null means the outcome is unknown. */
  readonly at: Interval;
  readonly status?: OpStatus;
}

/** Builds histories with auto-assigned ids; the key defaults to "k" and the client to 1. */
export class HistoryBuilder {
  readonly ops: KvOperation[] = [];

  put(o: Common & { readonly value: string }): this {
    return this.add(o, { kind: 'put', value: o.value });
  }
  get(o: Common & { readonly output?: string | null }): this {
    return this.add(o, { kind: 'get', output: o.output });
  }
  del(o: Common & { readonly deleted?: boolean }): this {
    return this.add(o, { kind: 'delete', deleted: o.deleted });
  }

  private add(o: Common, rest: Pick<KvOperation, 'kind' | 'value' | 'output' | 'deleted'>): this {
    const [invokeTime, completeTime] = o.at;
    this.ops.push({
      id: this.ops.length + 1,
      clientId: o.client ?? 1,
      key: o.key ?? 'k',
      invokeTime,
      completeTime,
      status: o.status ?? (completeTime === null ? 'unknown' : 'ok'),
      ...rest,
    });
    return this;
  }
}

export interface RandomHistoryOptions {
  readonly seed: number;
  readonly clients: number;
  readonly keys: number;
  readonly opsPerClient: number;
  /** Probability that an operation's reply is lost (status unknown). */
  readonly unknownRate?: number;
  /** Probability that an operation is rejected (status fail, not applied). */
  readonly failRate?: number;
  /** Probability that an operation is a delete (reads and writes split the rest). */
  readonly deleteRate?: number;
  /** Upper bound of an operation's duration: larger means more overlap. */
  readonly maxDuration?: number;
}

/**
 * A history recorded from a real sequential execution: each applied operation takes effect at a
 * linearization point inside its interval (anywhere after the invocation for a lost reply), and
 * outputs come from executing in that order. Such a history is linearizable by construction.
 * Times are integers so that touching intervals and equal timestamps occur.
 */
export function randomHistory(opt: RandomHistoryOptions): KvOperation[] {
  const rand = prng(opt.seed);
  const maxDuration = opt.maxDuration ?? 20;
  interface Draft {
    id: number;
    clientId: number;
    key: string;
    kind: 'put' | 'get' | 'delete';
    value?: string;
    invokeTime: number;
    completeTime: number | null;
    status: OpStatus;
    point: number | null; // null: never applied
    output?: string | null;
    deleted?: boolean;
  }
  const drafts: Draft[] = [];
  let id = 0;
  for (let c = 1; c <= opt.clients; c++) {
    let t = randInt(rand, 0, 5);
    for (let i = 0; i < opt.opsPerClient; i++) {
      const invoke = t + randInt(rand, 0, 3);
      const complete = invoke + randInt(rand, 0, maxDuration);
      const r = rand();
      const kind = r < (opt.deleteRate ?? 0.1) ? 'delete' : rand() < 0.5 ? 'put' : 'get';
      const s = rand();
      const status: OpStatus = s < (opt.unknownRate ?? 0) ? 'unknown' : s < (opt.unknownRate ?? 0) + (opt.failRate ?? 0) ? 'fail' : 'ok';
      let point: number | null = randInt(rand, invoke, complete);
      if (status === 'fail') point = null;
      // A lost reply: applied much later than the client waited, or never.
      if (status === 'unknown') point = rand() < 0.5 ? null : randInt(rand, invoke, complete + 5 * maxDuration);
      id++;
      drafts.push({
        id,
        clientId: c,
        key: `key${String(randInt(rand, 0, opt.keys - 1))}`,
        kind,
        ...(kind === 'put' ? { value: `v${String(id)}` } : {}),
        invokeTime: invoke,
        completeTime: status === 'ok' ? complete : null,
        status,
        point,
      });
      t = complete; // the next call may start at the very instant this one returned
    }
  }
  const store = new Map<string, string>();
  const applied = drafts.filter((d) => d.point !== null).sort((a, b) => a.point! - b.point! || a.id - b.id);
  for (const d of applied) {
    const current = store.get(d.key) ?? null;
    if (d.kind === 'put') store.set(d.key, d.value!);
    else if (d.kind === 'get') d.output = current;
    else {
      d.deleted = current !== null;
      store.delete(d.key);
    }
  }
  return drafts
    .sort((a, b) => a.invokeTime - b.invokeTime || a.id - b.id)
    .map(({ point: _point, ...op }) => {
      if (op.status !== 'ok') return { ...op, output: undefined, deleted: undefined };
      return op;
    });
}

/**
 * Reference oracle for tiny single-key histories: tries every order (and, for unknown
 * operations, every choice of leaving them out). Exponential, obviously right.
 */
export function bruteForceLinearizable(history: readonly KvOperation[]): boolean {
  const ops = history.filter((op) => op.status === 'ok' || (op.status === 'unknown' && op.kind !== 'get'));
  const ret = (op: KvOperation): number => (op.status === 'ok' ? op.completeTime! : Infinity);
  const placed = new Array<boolean>(ops.length).fill(false);
  const search = (state: string | null): boolean => {
    const unplaced = ops.filter((_, i) => !placed[i]);
    if (unplaced.every((op) => op.status !== 'ok')) return true;
    for (let i = 0; i < ops.length; i++) {
      if (placed[i]) continue;
      const op = ops[i];
      // Real-time order: an operation that returned before op was invoked must come first.
      if (unplaced.some((p) => p !== op && ret(p) < op.invokeTime)) continue;
      let next: string | null;
      if (op.kind === 'put') next = op.value!;
      else if (op.kind === 'get') {
        if (op.output !== state) continue;
        next = state;
      } else {
        if (op.status === 'ok' && op.deleted !== (state !== null)) continue;
        next = null;
      }
      placed[i] = true;
      const found = search(next);
      placed[i] = false;
      if (found) return true;
    }
    return false;
  };
  return search(null);
}
