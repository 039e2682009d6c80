// Scenario 5 (five nodes): a 2/3 split with the leader on the side of two. The two acknowledge
// nothing, the three elect and serve, and after the heal all five converge.

import { test } from 'node:test';
import { faultTestOptions, scenario } from '../fault-kit.js';
import { partitionRound } from '../partition-kit.js';

test('five nodes split 2/3 with the leader among the two: the three serve, all converge', faultTestOptions(),
  (t) => scenario(t, { name: 'partition-five-2-3', cluster: { nodes: 5 } }, (s) => partitionRound(s, 'leader-in-minority-of-two')));
