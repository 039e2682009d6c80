// Assembles one node: data directory, write-ahead log, state machine, peer transport, Raft runtime
// and HTTP API; and takes it apart again in the right order.

import { join } from 'node:path';
import { ApiHttpServer } from '../api/http-server.js';
import type { Logger } from '../common/logger.js';
import { KvStateMachine, NODE_ENGINE_COMMIT_INTERVAL_MS } from '../kvstore/state-machine.js';
import { findMember } from '../raft/membership.js';
import { openDataDir, type DataDir } from '../storage/data-dir.js';
import { RaftLogStore } from '../storage/wal.js';
import { PeerTransport } from '../transport/peer-transport.js';
import { bootstrap } from './bootstrap.js';
import { ClusterAdmin } from './cluster-admin.js';
import { askToBeAdded } from './join.js';
import { NodeBackend } from './node-backend.js';
import type { NodeConfig } from './node-config.js';
import { PeerClientPool } from './peer-client-pool.js';
import { RaftRuntime, type Removal } from './raft-runtime.js';
import { writeRemovalRecord } from './removal-marker.js';
import { replicaCheckpointFetcher } from './replica-hash-peers.js';

export { StartupError } from './startup-error.js';
export { foundingMembership, initialRaftState } from './bootstrap.js';

export interface RunningNode {
  readonly runtime: RaftRuntime;
  readonly backend: NodeBackend;
  readonly httpPort: number;
  readonly peerPort: number;
  readonly clusterId: string;
  /** Graceful stop: a leader hands over leadership (at most `transferTimeoutMs`), then all closes. */
  stop(transferTimeoutMs?: number): Promise<void>;
}

export interface NodeHooks {
  /** The node can no longer be trusted to run (failed fsync, broken invariant). */
  readonly onFatal: (error: Error) => void;
  /** A committed membership no longer holds this node; it has stopped taking part. */
  readonly onRemoved?: (removal: Removal) => void;
}

export async function startNode(config: NodeConfig, logger: Logger, hooks: NodeHooks | ((error: Error) => void)): Promise<RunningNode> {
  const { onFatal, onRemoved } = typeof hooks === 'function' ? { onFatal: hooks, onRemoved: undefined } : hooks;
  const dataDir: DataDir = await openDataDir(config.dataDir, logger);
  let stopped = false;
  let kv: KvStateMachine | null = null;
  let wal: RaftLogStore | null = null;
  try {
    const opened = await RaftLogStore.open(join(config.dataDir, 'wal'), { fsync: !config.unsafeNoFsync, logger });
    wal = opened.store;
    const { recovered } = opened;
    if (config.unsafeNoFsync) logger.warn('UNSAFE_NO_FSYNC is on: acknowledged writes can be lost if the machine crashes');
    kv = await KvStateMachine.open(join(config.dataDir, 'kv'), { logger, commitIntervalMs: NODE_ENGINE_COMMIT_INTERVAL_MS });
    const started = await bootstrap({ config, logger, dataDir, wal, recovered, kv, running: () => !stopped });
    const { initial, clusterId } = started;
    logger.info('recovered state', {
      mode: started.mode, clusterId, term: initial.hardState.term, commitIndex: initial.hardState.commitIndex, snapshotIndex: initial.snapshot.index,
      entries: initial.entries.length, engineAppliedIndex: kv.appliedIndex, tornBytesCut: recovered.tornBytesCut,
      members: started.appliedMembership.members.map((m) => `${m.id}:${m.role}`).join(','),
    });
    const stateMachine = kv;
    const log = wal;
    const addressBook = new Map<number, string>();
    const learnPeers = (members: readonly { readonly id: number; readonly peerAddr: string }[]): void => {
      for (const member of members) if (member.id !== config.nodeId && typeof member.peerAddr === 'string' && member.peerAddr !== '') addressBook.set(member.id, member.peerAddr);
    };
    learnPeers(started.knownPeers);

    let runtime: RaftRuntime | null = null;
    let backend: NodeBackend | null = null;
    const transport = new PeerTransport({
      selfId: config.nodeId,
      clusterId,
      listenHost: config.peerListen.host,
      listenPort: config.peerListen.port,
      // The membership first; a joining node also answers the members it was told of before its
      // own configuration entry reaches it (else the leader could never hear it acknowledge).
      peerAddress: (id) => runtime?.node.membership.members.find((member) => member.id === id)?.peerAddr ?? addressBook.get(id),
      onMessage: (message) => runtime?.onMessage(message),
      onSnapshot: async (request, chunks) => {
        if (runtime === null) throw new Error('not started');
        await runtime.onSnapshot(request, chunks);
      },
      onClientRequest: async (body) => (backend === null ? { ok: false, code: 'SHUTTING_DOWN', message: 'Starting up.' } : backend.handleRpc(body)),
      // Refused like a body the HTTP API cannot read as text: nothing is proposed.
      onInvalidClientText: (reason) => ({ ok: false, code: 'INVALID_JSON', message: `The request was refused, nothing was done: ${reason}.` }),
      logger: logger.child({ component: 'transport' }),
    });
    const removedHook = (removal: Removal): void => {
      void writeRemovalRecord(config.dataDir, { clusterId, nodeId: config.nodeId, index: removal.index, how: removal.how, removedAt: new Date().toISOString() })
        .catch((error: unknown) => logger.error('could not record the removal in the data directory', { error: (error as Error).message }))
        .then(() => onRemoved?.(removal));
    };
    runtime = new RaftRuntime({ config, logger, wal: log, kv: stateMachine, transport, initial, appliedMembership: started.appliedMembership, onFatal, onRemoved: removedHook });
    const peers = new PeerClientPool(clusterId, logger);
    const admin = new ClusterAdmin(runtime, config, peers, logger.child({ component: 'membership' }), clusterId, started.bootstrapMembership);
    backend = new NodeBackend(runtime, config, peers, logger, admin);
    const peerAddress = await transport.start();
    runtime.start();
    runtime.storageUpkeep.startReplicaComparison(replicaCheckpointFetcher(runtime, peers, config.nodeId));
    admin.start();
    const http = new ApiHttpServer(backend, { host: config.httpListen.host, port: config.httpListen.port, logger });
    const httpAddress = await http.listen();
    logger.info('node started', { clusterId, peerAddr: config.peerAdvertise, httpAddr: config.httpAdvertise, dataDir: config.dataDir, mode: started.mode });

    const startedRuntime = runtime;
    const startedBackend = backend;
    if (started.joining && config.join !== null) {
      const isMember = (): boolean => findMember(startedRuntime.node.membership, config.nodeId) !== undefined;
      void askToBeAdded({ joinUrls: config.join, logger, stopped: () => stopped, self: { id: config.nodeId, peerAddr: config.peerAdvertise, httpAddr: config.httpAdvertise } }, null, isMember, learnPeers)
        .catch((error: Error) => onFatal(error));
    }
    let stopping: Promise<void> | null = null;
    return {
      runtime: startedRuntime,
      backend: startedBackend,
      httpPort: httpAddress.port,
      peerPort: peerAddress.port,
      clusterId,
      stop: (transferTimeoutMs = 1000) => {
        stopped = true;
        stopping ??= (async () => {
          if (startedRuntime.node.role === 'leader' && startedRuntime.removed === null) {
            const handedOver = await startedRuntime.transferLeadershipAway(transferTimeoutMs);
            logger.info(handedOver ? 'leadership handed over' : 'leadership not handed over in time', { term: startedRuntime.node.term });
          }
          admin.stop();
          await http.close();
          await startedRuntime.stop();
          peers.close();
          await transport.stop();
          await log.close();
          await stateMachine.close();
          await dataDir.release();
          logger.info('node stopped');
        })();
        return stopping;
      },
    };
  } catch (error) {
    stopped = true;
    await wal?.close().catch(() => {});
    await kv?.close().catch(() => {});
    await dataDir.release();
    throw error;
  }
}
