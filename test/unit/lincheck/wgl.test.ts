// The search on its own, with a toy model, so its contract (a valid witness, optional unknown
// operations, the deepest stuck point) is tested apart from the key-value layer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { searchLinearization, type SearchInput } from '../../lincheck/wgl.js';
import { prng, randInt } from './support.js';

/** Toy model: state is a counter; op i requires the counter to equal need[i], then sets it to set[i]. */
function counterProblem(ops: readonly { call: number; ret: number; need: number; set: number }[]): SearchInput {
  return {
    intervals: ops,
    initialState: 0,
    step: (s, i) => (ops[i].need === s ? ops[i].set : -1),
    outOfTime: () => false,
  };
}

function assertValidWitness(input: SearchInput, order: readonly number[]): void {
  const pos = new Map(order.map((op, k) => [op, k] as const));
  assert.equal(pos.size, order.length, 'an operation appears twice');
  input.intervals.forEach((iv, op) => {
    if (Number.isFinite(iv.ret)) assert.ok(pos.has(op), `completed operation ${String(op)} missing from witness`);
  });
  let s = input.initialState;
  for (const op of order) {
    s = input.step(s, op);
    assert.ok(s >= 0, `witness applies ${String(op)} in an illegal state`);
  }
  for (const a of order) {
    for (const b of order) {
      if (input.intervals[a].ret < input.intervals[b].call) assert.ok(pos.get(a)! < pos.get(b)!, `real-time order ${String(a)} < ${String(b)} broken`);
    }
  }
}

test('finds the only order that works among overlapping operations', () => {
  // Three fully concurrent operations that only fit as 2, 0, 1.
  const input = counterProblem([
    { call: 0, ret: 10, need: 1, set: 2 },
    { call: 0, ret: 10, need: 2, set: 3 },
    { call: 0, ret: 10, need: 0, set: 1 },
  ]);
  const out = searchLinearization(input);
  assert.equal(out.kind, 'linearizable');
  if (out.kind === 'linearizable') assert.deepEqual(out.order, [2, 0, 1]);
});

test('an unknown operation may be left out, or used when needed', () => {
  const skip = counterProblem([
    { call: 0, ret: Infinity, need: 5, set: 6 }, // can never apply
    { call: 1, ret: 2, need: 0, set: 1 },
  ]);
  const a = searchLinearization(skip);
  assert.equal(a.kind, 'linearizable');
  if (a.kind === 'linearizable') assert.deepEqual(a.order, [1]);

  const use = counterProblem([
    { call: 0, ret: Infinity, need: 0, set: 1 },
    { call: 50, ret: 60, need: 1, set: 2 }, // needs the unknown one first
  ]);
  const b = searchLinearization(use);
  assert.equal(b.kind, 'linearizable');
  if (b.kind === 'linearizable') assert.deepEqual(b.order, [0, 1]);
});

test('reports the deepest stuck point on a violation', () => {
  const out = searchLinearization(
    counterProblem([
      { call: 0, ret: 1, need: 0, set: 1 },
      { call: 2, ret: 3, need: 1, set: 2 },
      { call: 4, ret: 5, need: 7, set: 8 }, // impossible
      { call: 4, ret: 9, need: 2, set: 3 },
    ]),
  );
  assert.equal(out.kind, 'violation');
  if (out.kind !== 'violation') return;
  assert.deepEqual(out.stuck.prefix, [0, 1, 3]);
  assert.equal(out.stuck.state, 3);
  assert.equal(out.stuck.blocked, 2);
});

test('gives up when told it is out of time', () => {
  // 16 concurrent increments of distinct values and one impossible op: huge space, and a clock that is always late.
  const ops = Array.from({ length: 16 }, (_, i) => ({ call: 0, ret: 10, need: -5, set: i }));
  const input: SearchInput = {
    intervals: [...ops, { call: 20, ret: 30 }],
    initialState: 0,
    step: (_s, i) => (i < 16 ? i : -1),
    outOfTime: () => true,
  };
  const out = searchLinearization(input);
  assert.equal(out.kind, 'gave-up');
});

test('random feasible problems yield valid witnesses', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const rand = prng(seed);
    // A chain of state transitions 0 -> 1 -> 2 ..., each op overlapping its own point in time.
    const n = randInt(rand, 1, 40);
    const ops = Array.from({ length: n }, (_, i) => {
      const point = i * 3;
      const unknown = rand() < 0.1;
      return { call: point - randInt(rand, 0, 12), ret: unknown ? Infinity : point + randInt(rand, 0, 12), need: i, set: i + 1 };
    });
    const input = counterProblem(ops);
    const out = searchLinearization(input);
    assert.equal(out.kind, 'linearizable', `seed ${String(seed)}`);
    if (out.kind === 'linearizable') assertValidWitness(input, out.order);
  }
});
