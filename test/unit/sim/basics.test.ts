// The simulator's building blocks: seeded randomness, the event queue, the network.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventQueue, ms, Simulation } from '../../sim/events.js';
import { SimNetwork, type DropReason } from '../../sim/network.js';
import { Rng, rootRng } from '../../sim/rng.js';

test('an Rng is a pure function of its key: same key, same stream', () => {
  const a = new Rng('seed:7/network');
  const b = new Rng('seed:7/network');
  const drawsA = Array.from({ length: 50 }, () => a.nextUint32());
  const drawsB = Array.from({ length: 50 }, () => b.nextUint32());
  assert.deepEqual(drawsA, drawsB);
  assert.notDeepEqual(drawsA, Array.from({ length: 50 }, () => new Rng('seed:8/network').nextUint32()));
});

test('forks do not depend on how much the parent has drawn', () => {
  const fresh = rootRng(3);
  const used = rootRng(3);
  for (let k = 0; k < 1000; k++) used.nextFloat();
  const x = fresh.fork('node/1');
  const y = used.fork('node/1');
  assert.deepEqual(Array.from({ length: 20 }, () => x.nextInt(1000)), Array.from({ length: 20 }, () => y.nextInt(1000)));
  assert.notDeepEqual(
    Array.from({ length: 20 }, () => rootRng(3).fork('node/1').nextUint32()),
    Array.from({ length: 20 }, () => rootRng(3).fork('node/2').nextUint32()),
  );
});

test('Rng draws stay in range and cover it', () => {
  const rng = rootRng(1);
  const seen = new Set<number>();
  for (let k = 0; k < 2000; k++) {
    const value = rng.intBetween(3, 7);
    assert.ok(value >= 3 && value <= 7);
    seen.add(value);
    const f = rng.nextFloat();
    assert.ok(f >= 0 && f < 1);
  }
  assert.deepEqual([...seen].sort(), [3, 4, 5, 6, 7]);
  assert.throws(() => rng.nextInt(0), RangeError);
  assert.equal(rng.chance(0), false);
  assert.deepEqual(rng.shuffled([1, 2, 3, 4]).sort(), [1, 2, 3, 4]);
});

test('the event queue pops by time, and by scheduling order on ties', () => {
  const queue = new EventQueue();
  const order: string[] = [];
  const times = [50, 10, 30, 10, 20, 10, 50, 0];
  times.forEach((time, k) => queue.push(time, () => order.push(`${time}:${k}`)));
  for (let item = queue.pop(); item !== undefined; item = queue.pop()) item.action();
  assert.deepEqual(order, ['0:7', '10:1', '10:3', '10:5', '20:4', '30:2', '50:0', '50:6']);
});

test('the event queue stays ordered under random load', () => {
  const rng = rootRng(99);
  const queue = new EventQueue();
  for (let k = 0; k < 5000; k++) queue.push(rng.nextInt(1000), () => undefined);
  let last = -1;
  for (let item = queue.pop(); item !== undefined; item = queue.pop()) {
    assert.ok(item.time >= last);
    last = item.time;
  }
});

test('the simulation runs actions in time order, never goes back, and stops when told', () => {
  const sim = new Simulation();
  const seen: number[] = [];
  sim.at(ms(5), () => {
    seen.push(sim.now);
    sim.after(ms(1), () => seen.push(sim.now));
    sim.at(0, () => seen.push(sim.now)); // in the past: runs now
  });
  sim.at(ms(20), () => {
    seen.push(sim.now);
    sim.stop();
  });
  sim.at(ms(30), () => seen.push(sim.now));
  sim.runUntil(ms(100));
  assert.deepEqual(seen, [5000, 5000, 6000, 20000]);
  sim.runUntil(ms(100));
  assert.deepEqual(seen, [5000, 5000, 6000, 20000, 30000]);
  assert.equal(sim.now, ms(100));
});

interface Delivery {
  readonly from: number;
  readonly to: number;
  readonly payload: string;
  readonly at: number;
}

function makeNetwork(options: ConstructorParameters<typeof SimNetwork<string>>[3] = {}) {
  const sim = new Simulation();
  const delivered: Delivery[] = [];
  const dropped: { payload: string; reason: DropReason }[] = [];
  const network = new SimNetwork<string>(sim, rootRng(1).fork('network'), [1, 2, 3], options, {
    deliver: (from, to, payload) => delivered.push({ from, to, payload, at: sim.now }),
    dropped: (_from, _to, payload, reason) => dropped.push({ payload, reason }),
  });
  return { sim, network, delivered, dropped };
}

test('messages arrive after 1-5 ms by default, and reorder', () => {
  const { sim, network, delivered } = makeNetwork();
  for (let k = 0; k < 200; k++) network.send(1, 2, `m${k}`);
  sim.runUntil(ms(100));
  assert.equal(delivered.length, 200);
  for (const delivery of delivered) assert.ok(delivery.at >= ms(1) && delivery.at <= ms(5));
  const order = delivered.map((d) => Number(d.payload.slice(1)));
  assert.notDeepEqual(order, [...order].sort((a, b) => a - b), 'random delays reorder messages');
});

test('a partition cuts both ways between groups, not inside them; heal restores it', () => {
  const { sim, network, delivered, dropped } = makeNetwork();
  network.partition([[1], [2, 3]]);
  network.send(1, 2, 'a');
  network.send(2, 1, 'b');
  network.send(2, 3, 'c');
  sim.runUntil(ms(10));
  assert.deepEqual(delivered.map((d) => d.payload), ['c']);
  assert.deepEqual(dropped, [{ payload: 'a', reason: 'cut' }, { payload: 'b', reason: 'cut' }]);
  network.heal();
  network.send(1, 2, 'd');
  sim.runUntil(ms(20));
  assert.deepEqual(delivered.map((d) => d.payload), ['c', 'd']);
});

test('a one-way cut drops one direction only; isolate cuts a node from everyone', () => {
  const { sim, network, delivered } = makeNetwork();
  network.cutOneWay(1, 2);
  network.send(1, 2, 'lost');
  network.send(2, 1, 'kept');
  sim.runUntil(ms(10));
  assert.deepEqual(delivered.map((d) => d.payload), ['kept']);
  network.heal();
  network.isolate(3);
  network.send(3, 1, 'x');
  network.send(2, 3, 'y');
  network.send(1, 2, 'z');
  sim.runUntil(ms(20));
  assert.deepEqual(delivered.map((d) => d.payload), ['kept', 'z']);
});

test('a message in flight when its link is cut is lost', () => {
  const { sim, network, delivered, dropped } = makeNetwork({ delayMicrosMin: ms(5), delayMicrosMax: ms(5) });
  network.send(1, 2, 'in flight');
  sim.runUntil(ms(2));
  network.cut(1, 2);
  sim.runUntil(ms(10));
  assert.equal(delivered.length, 0);
  assert.deepEqual(dropped, [{ payload: 'in flight', reason: 'cut' }]);
});

test('loss drops messages and duplication delivers twice, at the configured rates', () => {
  const lossy = makeNetwork({ lossProbability: 1 });
  lossy.network.send(1, 2, 'gone');
  lossy.sim.runUntil(ms(10));
  assert.equal(lossy.delivered.length, 0);
  assert.equal(lossy.network.stats.lost, 1);

  const doubled = makeNetwork({ duplicateProbability: 1 });
  doubled.network.send(1, 2, 'twice');
  doubled.sim.runUntil(ms(10));
  assert.deepEqual(doubled.delivered.map((d) => d.payload), ['twice', 'twice']);

  const some = makeNetwork({ lossProbability: 0.3 });
  for (let k = 0; k < 1000; k++) some.network.send(1, 2, 'x');
  some.sim.runUntil(ms(10));
  assert.ok(some.delivered.length > 600 && some.delivered.length < 800, `delivered ${some.delivered.length} of 1000`);
});
