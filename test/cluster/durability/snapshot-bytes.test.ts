// Snapshot points by log size on a real process: with the entry trigger out of reach, large values
// still make the node record snapshot points (reason "bytes") and compact its write-ahead log,
// and a restart from the compacted log and the engine serves every value.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCluster, http } from '../harness.js';

const VALUE_BYTES = 8 * 1024;
const WRITES = 120; // about 1 MiB of values in the log
const EVERY_BYTES = 128 * 1024;

test('the write-ahead log is compacted by bytes when values are large', async () => {
  const cluster = await LocalCluster.start({
    nodes: 1, gateway: false,
    extraEnv: { SNAPSHOT_EVERY_ENTRIES: '1000000', SNAPSHOT_EVERY_BYTES: String(EVERY_BYTES), SNAPSHOT_KEEP_TAIL_ENTRIES: '5' },
  });
  try {
    const port = cluster.handle(1).httpPort;
    await cluster.waitForLeader();
    for (let i = 0; i < WRITES; i++) {
      const answer = await http(port, 'PUT', `/kv/big-${i}`, JSON.stringify({ value: String(i % 10).repeat(VALUE_BYTES) }));
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    }
    const points = cluster.logsOf(1).split('\n').filter((line) => line.includes('snapshot point recorded')).map((line) => JSON.parse(line) as { reason: string; walBytes: number });
    // About 1 MiB written with a 128 KiB trigger: several points, all for bytes.
    assert.ok(points.length >= 4, `${points.length} snapshot points`);
    assert.ok(points.every((point) => point.reason === 'bytes'), JSON.stringify(points.map((p) => p.reason)));
    await cluster.signal(1, 'SIGKILL');
    cluster.startNode(1);
    await cluster.waitForLeader(30_000);
    for (let i = 0; i < WRITES; i += 7) {
      const answer = await http(port, 'GET', `/kv/big-${i}`);
      assert.equal(answer.status, 200);
      assert.equal((answer.body as { value: string }).value, String(i % 10).repeat(VALUE_BYTES));
    }
    console.log(`# snapshot by bytes: ${WRITES} writes of ${VALUE_BYTES} bytes, ${points.length} snapshot points (reason bytes), all values served after a SIGKILL restart`);
  } finally {
    await cluster.stop();
  }
});
