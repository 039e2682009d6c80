// Scenario 5 (three nodes): the leader is cut off, symmetrically or in one direction only. The cut-off
// leader stops acknowledging writes and linearizable reads, the majority elects a leader and
// serves, and after the heal everything converges.

import { test } from 'node:test';
import { faultTestOptions, scenario } from '../fault-kit.js';
import { partitionRound } from '../partition-kit.js';

test('the leader isolated in a minority: it acknowledges nothing, the majority serves, all converge', faultTestOptions(),
  (t) => scenario(t, { name: 'partition-leader-isolated' }, (s) => partitionRound(s, 'leader-isolated')));

test('one-way: the leader cannot send: the others elect, the old leader acknowledges nothing', faultTestOptions(),
  (t) => scenario(t, { name: 'partition-leader-cannot-send' }, (s) => partitionRound(s, 'leader-cannot-send')));

test('one-way: the leader cannot receive: it steps down, the others elect, all converge', faultTestOptions(),
  (t) => scenario(t, { name: 'partition-leader-cannot-receive' }, (s) => partitionRound(s, 'leader-cannot-receive')));
