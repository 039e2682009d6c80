// TickClock: a late timer callback replays the ticks it missed, up to a cap; an early one owes none.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TickClock } from '../../../src/server/tick-clock.js';

test('on-time callbacks tick once each; early ones not at all', () => {
  const clock = new TickClock(10, 5, 0);
  assert.equal(clock.due(10), 1);
  assert.equal(clock.due(19), 0, 'early: the next tick is due at 20');
  assert.equal(clock.due(20.5), 1);
  assert.equal(clock.due(30.4), 1, 'the remainder is kept: ticks stay on a 10 ms grid');
});

test('a late callback replays the missed ticks, so a busy loop keeps its wall-clock tick rate', () => {
  const clock = new TickClock(10, 5, 0);
  let ticks = 0;
  // A loop turning every 65 ms: 10 ms ticks at 65, 130, 195, ... replay 6 or 7 ticks each, but the
  // cap is 5, so 5 per turn, and the heartbeat (every 5 ticks) still goes out every turn.
  for (let now = 65; now <= 650; now += 65) ticks += clock.due(now);
  assert.equal(ticks, 50);
  const onTime = new TickClock(10, 5, 0);
  let onTimeTicks = 0;
  for (let now = 30; now <= 630; now += 30) onTimeTicks += onTime.due(now);
  assert.equal(onTimeTicks, 63, 'under the cap every missed tick is replayed');
});

test('after a long stall at most the cap is replayed, and nothing is owed later', () => {
  const clock = new TickClock(10, 5, 0);
  assert.equal(clock.due(10_000), 5);
  assert.equal(clock.due(10_005), 0);
  assert.equal(clock.due(10_010), 1);
});

test('bad settings are refused', () => {
  assert.throws(() => new TickClock(0, 5, 0), RangeError);
  assert.throws(() => new TickClock(10, 0, 0), RangeError);
});
