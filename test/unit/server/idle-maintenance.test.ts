// Idle maintenance: history freed by a compaction is removed once the node is idle, never while
// the Ready loop is busy or entries are being applied, and nothing is written when there is no work.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/logger.js';
import { IdleMaintenance } from '../../../src/server/idle-maintenance.js';
import { freshMachine, LogBuilder } from '../kvstore/helpers.js';

test('compaction leftovers are removed when idle, and only then', async () => {
  const { sm, done } = await freshMachine({ unsafeNoSync: true });
  try {
    const log = new LogBuilder();
    // Far more history than one apply compacts (4,096 records), then a compaction of all of it.
    for (let batch = 0; batch < 10; batch++) {
      const entries = [];
      for (let i = 0; i < 2000; i++) entries.push(log.put(`key/${i % 100}`, `v${batch}-${i}`));
      sm.apply(entries);
    }
    sm.apply([log.compact(sm.revision)]);
    assert.equal(sm.stats().compactionPending, true);
    let busy = true;
    const maintenance = new IdleMaintenance({ state: sm, busy: () => busy, logger: silentLogger });
    const before = sm.stats().historyRecords;
    maintenance.look();
    assert.equal(maintenance.maintenanceCalls, 0, 'busy: nothing done');
    busy = false;
    sm.apply([log.noop()]);
    maintenance.look();
    assert.equal(maintenance.maintenanceCalls, 0, 'entries were applied since the last look: not idle');
    for (let looks = 0; looks < 100 && sm.stats().compactionPending; looks++) maintenance.look();
    assert.equal(sm.stats().compactionPending, false, 'all leftovers removed');
    assert.ok(sm.stats().historyRecords < before, 'history shrank');
    assert.ok(sm.stats().historyRecords <= 100, `one record per live key is left (${sm.stats().historyRecords})`);
    const calls = maintenance.maintenanceCalls;
    maintenance.look();
    maintenance.look();
    assert.equal(maintenance.maintenanceCalls, calls, 'no work: no maintenance transaction');
  } finally {
    await done();
  }
});
