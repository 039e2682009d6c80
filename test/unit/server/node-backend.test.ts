// NodeBackend's forwarding of writes from a follower to the leader, against a scripted
// PeerClientPool: once an attempt may have been proposed, no later "not proposed" failure may reach
// the client as such (it becomes OUTCOME_UNKNOWN); a stamped write is resent under the same stamp,
// in short attempts that follow the leader; an unstamped one is sent once; definite errors pass.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClientStamp, KvRecord } from '../../../src/api/backend.js';
import { ApiError, type ErrorCode } from '../../../src/common/errors.js';
import { silentLogger } from '../../../src/common/logger.js';
import type { Membership } from '../../../src/raft/types.js';
import type { ClusterAdmin } from '../../../src/server/cluster-admin.js';
import { NodeBackend } from '../../../src/server/node-backend.js';
import type { NodeConfig } from '../../../src/server/node-config.js';
import type { PeerClientPool } from '../../../src/server/peer-client-pool.js';
import type { RaftRuntime } from '../../../src/server/raft-runtime.js';
import type { RpcRequest, RpcResponse } from '../../../src/server/rpc-protocol.js';

const SELF = 2;
const REQUEST_TIMEOUT_MS = 400;
/** node-backend.ts's FORWARD_ATTEMPT_MS: a stamped write's attempt is at most this long. */
const FORWARD_ATTEMPT_MS = 1500;

const membership: Membership = {
  members: [1, 2, 3].map((id) => ({ id, role: 'voter' as const, peerAddr: `n${id}:7000`, httpAddr: `n${id}:8000` })),
};

/** The part of RaftRuntime the forwarding path reads: who leads, and this node's role. */
class FakeRuntime {
  leader = 1;
  readonly node = {
    role: 'follower' as const,
    transferee: 0,
    membership,
    leaderId: 1,
  };

  async waitForLeader(): Promise<number> {
    this.node.leaderId = this.leader;
    return this.leader;
  }

  propose(): never {
    throw new Error('a follower must not propose; it forwards');
  }
}

interface Call {
  readonly address: string;
  readonly request: RpcRequest;
  readonly timeoutMs: number;
}

type Step = (call: Call) => RpcResponse | Error;

/** Answers each request with the next scripted step; once the script is used up, with `rest`. */
class ScriptedPool {
  readonly calls: Call[] = [];
  constructor(private readonly steps: Step[], private readonly rest: Step = () => new Error('the script ran out')) {}

  async request(address: string, request: RpcRequest, timeoutMs: number): Promise<RpcResponse> {
    const call = { address, request: structuredClone(request), timeoutMs };
    this.calls.push(call);
    const answer = (this.steps.shift() ?? this.rest)(call);
    if (answer instanceof Error) throw answer;
    return answer;
  }
}

const record = (key: string, value: string): KvRecord => ({ key, value, createRevision: 5, modRevision: 9, version: 2, revision: 9 });
const ok = (key = 'k', value = 'v'): Step => () => ({ ok: true, result: record(key, value) });
const answers = (code: ErrorCode): Step => () => ({ ok: false, code, message: `the leader says ${code}` });
/** What the pool throws: NO_LEADER when nothing was sent, OUTCOME_UNKNOWN when sent and unanswered. */
const throws = (code: ErrorCode): Step => () => new ApiError(code, `pool: ${code}`);

function backend(pool: ScriptedPool, runtime = new FakeRuntime()): NodeBackend {
  const config = { nodeId: SELF, requestTimeoutMs: REQUEST_TIMEOUT_MS, electionTimeoutMsMax: 300, tickMs: 5, maxValueBytes: 1024 } as unknown as NodeConfig;
  return new NodeBackend(runtime as unknown as RaftRuntime, config, pool as unknown as PeerClientPool, silentLogger, {} as ClusterAdmin);
}

const stamp: ClientStamp = { clientId: 'client-a', seq: 7, ackedSeq: 6 };

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ApiError, `an ApiError, not ${String(error)}`);
    return error;
  }
  assert.fail('expected the write to fail');
}

test('a stamped write whose attempt went unanswered is resent under the same stamp and succeeds', async () => {
  const pool = new ScriptedPool([throws('OUTCOME_UNKNOWN'), ok('k', 'v')]);
  assert.deepEqual(await backend(pool).put('k', 'v', stamp), record('k', 'v'));
  assert.equal(pool.calls.length, 2);
  for (const call of pool.calls) {
    assert.deepEqual(call.request, { type: 'put', key: 'k', value: 'v', client: stamp }, 'the same request, same stamp');
    assert.equal(call.address, 'n1:7000');
    assert.ok(call.timeoutMs <= FORWARD_ATTEMPT_MS, `an attempt is short (${call.timeoutMs} ms)`);
  }
});

test('a stamped delete follows a new leader under the same stamp', async () => {
  const runtime = new FakeRuntime();
  const pool = new ScriptedPool([
    (call) => {
      runtime.leader = 3; // the old leader vanished meanwhile; node 3 was elected
      return throws('OUTCOME_UNKNOWN')(call);
    },
    () => ({ ok: true, result: { key: 'k', deleted: true, revision: 10 } }),
  ]);
  assert.deepEqual(await backend(pool, runtime).delete('k', stamp), { key: 'k', deleted: true, revision: 10 });
  assert.deepEqual(pool.calls.map((call) => call.address), ['n1:7000', 'n3:7000']);
  assert.deepEqual(pool.calls[1].request, pool.calls[0].request);
  assert.deepEqual(pool.calls[1].request, { type: 'delete', key: 'k', client: stamp });
});

test('after an attempt that may have been proposed, a later "not proposed" answer is reported as OUTCOME_UNKNOWN', async () => {
  // Each later failure on its own would say "not proposed, safe to retry anywhere": 503, 429, 507.
  for (const later of ['NO_QUORUM', 'NO_LEADER', 'OVERLOADED', 'DISK_FULL', 'SHUTTING_DOWN'] as const) {
    const pool = new ScriptedPool([throws('OUTCOME_UNKNOWN'), answers(later)], answers('NO_LEADER'));
    const error = await failure(backend(pool).put('k', 'v', stamp));
    assert.equal(error.code, 'OUTCOME_UNKNOWN', `${later} after an unanswered attempt`);
    assert.equal(error.status, 504);
    assert.ok(pool.calls.length >= 2);
  }
});

test('after an attempt that may have been proposed, a later failure to reach any leader is OUTCOME_UNKNOWN too', async () => {
  // The leader is unreachable from then on (the pool cannot connect: NO_LEADER, nothing sent) until
  // the deadline; the earlier attempt may still commit.
  const pool = new ScriptedPool([throws('OUTCOME_UNKNOWN')], throws('NO_LEADER'));
  const error = await failure(backend(pool).put('k', 'v', stamp));
  assert.equal(error.code, 'OUTCOME_UNKNOWN');
  assert.ok(pool.calls.length >= 2, 'it kept trying until the deadline');
});

test('without an earlier uncertain attempt, "not proposed" passes through as such', async () => {
  for (const code of ['NO_QUORUM', 'OVERLOADED', 'DISK_FULL'] as const) {
    const pool = new ScriptedPool([answers(code)]);
    const error = await failure(backend(pool).put('k', 'v', stamp));
    assert.equal(error.code, code);
  }
  const unreachable = new ScriptedPool([], throws('NO_LEADER'));
  assert.equal((await failure(backend(unreachable).put('k', 'v', stamp))).code, 'NO_LEADER');
});

test('an unstamped write is sent exactly once: an unanswered attempt is OUTCOME_UNKNOWN, not resent', async () => {
  const pool = new ScriptedPool([throws('OUTCOME_UNKNOWN')], ok());
  const error = await failure(backend(pool).put('k', 'v', undefined));
  assert.equal(error.code, 'OUTCOME_UNKNOWN');
  assert.equal(pool.calls.length, 1);
  assert.deepEqual(pool.calls[0].request, { type: 'put', key: 'k', value: 'v' });
});

test('definite errors from the leader pass through unchanged, also after an uncertain attempt', async () => {
  for (const code of ['STALE_SEQUENCE', 'BAD_REQUEST', 'INVALID_KEY', 'TOO_LARGE', 'CONFLICT', 'OUTCOME_UNKNOWN', 'INTERNAL'] as const) {
    const direct = new ScriptedPool([answers(code)]);
    assert.equal((await failure(backend(direct).put('k', 'v', stamp))).code, code, `${code} at once`);
    assert.equal(direct.calls.length, 1, `${code} is not retried`);
    const later = new ScriptedPool([throws('OUTCOME_UNKNOWN'), answers(code)]);
    const error = await failure(backend(later).put('k', 'v', stamp));
    assert.equal(error.code, code, `${code} after an unanswered attempt`);
    assert.equal(error.message, `the leader says ${code}`);
  }
});

test('a refused key or value is refused here, never forwarded', async () => {
  const pool = new ScriptedPool([], ok());
  assert.equal((await failure(backend(pool).put('', 'v', stamp))).code, 'INVALID_KEY');
  assert.equal((await failure(backend(pool).put('k', 'v'.repeat(2048), stamp))).code, 'TOO_LARGE');
  assert.equal(pool.calls.length, 0);
});

test('a relay-marked write on the peer port is forwarded to the leader once, without the mark', async () => {
  const pool = new ScriptedPool([ok('k', 'v')]);
  const answer = await backend(pool).handleRpc({ type: 'put', key: 'k', value: 'v', client: stamp, relay: true });
  assert.deepEqual(answer, { ok: true, result: record('k', 'v') });
  assert.equal(pool.calls.length, 1);
  assert.equal(pool.calls[0].address, 'n1:7000', 'sent to the leader');
  const forwarded = pool.calls[0].request as { type: string; relay?: true; client?: ClientStamp };
  assert.equal(forwarded.type, 'put');
  assert.equal(forwarded.relay, undefined, 'the leader gets a plain forwarded write: it proposes or refuses, never forwards again');
  assert.deepEqual(forwarded.client, stamp, 'under the client\'s own stamp');
});

test('an unmarked write forwarded to a node that does not lead is refused with the leader\'s id, not forwarded again', async () => {
  const pool = new ScriptedPool([]);
  const answer = await backend(pool).handleRpc({ type: 'delete', key: 'k', client: stamp });
  assert.equal(answer.ok, false);
  assert.equal((answer as { code: string }).code, 'NO_LEADER');
  assert.equal((answer as { leaderId?: number }).leaderId, 1);
  assert.equal(pool.calls.length, 0, 'nothing was forwarded');
});

test('a relay mark that is not exactly true is a malformed request', async () => {
  const pool = new ScriptedPool([]);
  const answer = await backend(pool).handleRpc({ type: 'put', key: 'k', value: 'v', relay: 'yes' });
  assert.deepEqual({ ok: answer.ok, code: (answer as { code: string }).code }, { ok: false, code: 'BAD_REQUEST' });
  assert.equal(pool.calls.length, 0);
});
