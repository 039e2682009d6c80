// A linearizable read that reaches a node before any leader is known (it has just started, or an
// election is running) waits within its request deadline for one, instead of refusing at once
// after an election timeout. Found by the backup/restore test: the first read of a restored node.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../../src/common/errors.js';
import { silentLogger } from '../../../src/common/logger.js';
import type { ClusterAdmin } from '../../../src/server/cluster-admin.js';
import { NodeBackend } from '../../../src/server/node-backend.js';
import type { NodeConfig } from '../../../src/server/node-config.js';
import type { PeerClientPool } from '../../../src/server/peer-client-pool.js';
import type { RaftRuntime } from '../../../src/server/raft-runtime.js';

/** The part of RaftRuntime a read uses; leaders appear when the test says so. */
class RuntimeStub {
  leaderId = 0;
  readonly barrierTimeouts: number[] = [];
  private readonly waiters = new Set<() => void>();
  readonly stateMachine = {
    get: (key: string) => ({ kv: { key, value: `value of ${key}`, createRevision: 2, modRevision: 2, version: 1 }, revision: 7 }),
  };

  waitForLeader(timeoutMs: number): Promise<number> {
    if (this.leaderId !== 0) return Promise.resolve(this.leaderId);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve(this.leaderId);
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
    });
  }

  elect(id: number): void {
    this.leaderId = id;
    for (const waiter of [...this.waiters]) waiter();
  }

  linearizableBarrier(timeoutMs: number): Promise<void> {
    this.barrierTimeouts.push(timeoutMs);
    return Promise.resolve();
  }
}

const ELECTION_TIMEOUT_MS_MAX = 20;

function backendOver(runtime: RuntimeStub, requestTimeoutMs: number): NodeBackend {
  const config = { nodeId: 2, requestTimeoutMs, electionTimeoutMsMax: ELECTION_TIMEOUT_MS_MAX, maxValueBytes: 1024 } as NodeConfig;
  return new NodeBackend(runtime as unknown as RaftRuntime, config, {} as PeerClientPool, silentLogger, {} as ClusterAdmin);
}

test('a read waits past an election timeout for a leader, within its deadline, and is served', async () => {
  const runtime = new RuntimeStub();
  const backend = backendOver(runtime, 5000);
  const read = backend.get('a', 'linearizable', undefined);
  // The leader becomes known well after an election timeout, well before the request deadline.
  setTimeout(() => runtime.elect(1), 5 * ELECTION_TIMEOUT_MS_MAX);
  const record = await read;
  assert.equal(record?.value, 'value of a');
  assert.equal(runtime.barrierTimeouts.length, 1, 'then the ReadIndex barrier');
  const [barrierMs] = runtime.barrierTimeouts;
  assert.ok(barrierMs > 0 && barrierMs <= 5000 - 5 * ELECTION_TIMEOUT_MS_MAX, `the barrier gets the time left, not a fresh timeout: ${barrierMs}`);
});

test('a read with no leader by its deadline answers NO_LEADER, without a barrier', async () => {
  const runtime = new RuntimeStub();
  const backend = backendOver(runtime, 100);
  const startedMs = performance.now();
  await assert.rejects(backend.get('a', 'linearizable', undefined), (error: unknown) => error instanceof ApiError && error.code === 'NO_LEADER');
  assert.ok(performance.now() - startedMs >= 90, 'it waited for the request deadline, not an election timeout');
  assert.deepEqual(runtime.barrierTimeouts, []);
});

test('a stale read needs no leader', async () => {
  const runtime = new RuntimeStub();
  const record = await backendOver(runtime, 100).get('b', 'stale', undefined);
  assert.equal(record?.value, 'value of b');
});
