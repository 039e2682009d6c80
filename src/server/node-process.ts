// Assembles one node: data directory, write-ahead log, state machine, peer transport, Raft runtime
// and HTTP API; and takes it apart again in the right order.

import { join } from 'node:path';
import { ApiHttpServer } from '../api/http-server.js';
import type { Logger } from '../common/logger.js';
import { KvStateMachine } from '../kvstore/state-machine.js';
import type { Membership, RaftInitialState } from '../raft/types.js';
import { openDataDir, type DataDir } from '../storage/data-dir.js';
import { RaftLogStore, type RecoveredLog } from '../storage/wal.js';
import { PeerTransport } from '../transport/peer-transport.js';
import { NodeBackend } from './node-backend.js';
import type { NodeConfig } from './node-config.js';
import { PeerClientPool } from './peer-client-pool.js';
import { RaftRuntime } from './raft-runtime.js';

export class StartupError extends Error {
  override readonly name = 'StartupError';
}

export interface RunningNode {
  readonly runtime: RaftRuntime;
  readonly backend: NodeBackend;
  readonly httpPort: number;
  readonly peerPort: number;
  /** Graceful stop: a leader hands over leadership (at most `transferTimeoutMs`), then all closes. */
  stop(transferTimeoutMs?: number): Promise<void>;
}

/** The founding membership, identical on every founding member (addresses as listed). */
export function foundingMembership(config: NodeConfig): Membership {
  return {
    members: [...config.clusterNodes.entries()].sort(([a], [b]) => a - b).map(([id, peerAddr]) => ({
      id, role: 'voter' as const, peerAddr, httpAddr: '',
    })),
  };
}

export function initialRaftState(recovered: RecoveredLog, founding: Membership, stateMachineAppliedIndex: number): RaftInitialState {
  const snapshot = recovered.snapshot ?? { index: 0, term: 0, membership: founding };
  const lastIndex = recovered.entries.length > 0 ? recovered.entries[recovered.entries.length - 1].index : snapshot.index;
  const commitIndex = Math.min(Math.max(recovered.hardState.commitIndex, snapshot.index), Math.max(lastIndex, snapshot.index));
  // The engine may be ahead of the log's commit (a snapshot installed just before a crash): the core
  // then hands those entries out again and the engine skips what it already applied.
  const appliedIndex = Math.max(snapshot.index, Math.min(stateMachineAppliedIndex, commitIndex));
  return { hardState: { ...recovered.hardState, commitIndex }, snapshot, entries: recovered.entries, appliedIndex };
}

export async function startNode(config: NodeConfig, logger: Logger, onFatal: (error: Error) => void): Promise<RunningNode> {
  const dataDir: DataDir = await openDataDir(config.dataDir, logger);
  try {
    checkIdentity(dataDir, config);
    const { store: wal, recovered } = await RaftLogStore.open(join(config.dataDir, 'wal'), { fsync: !config.unsafeNoFsync, logger });
    if (config.unsafeNoFsync) logger.warn('UNSAFE_NO_FSYNC is on: acknowledged writes can be lost if the machine crashes');
    const kv = await KvStateMachine.open(join(config.dataDir, 'kv'), { logger });
    if (dataDir.readIdentity() === null) {
      await dataDir.writeIdentity({ clusterId: config.clusterId, nodeId: config.nodeId, createdAt: new Date().toISOString() });
    }
    const initial = initialRaftState(recovered, foundingMembership(config), kv.appliedIndex);
    logger.info('recovered state', {
      term: initial.hardState.term, commitIndex: initial.hardState.commitIndex, snapshotIndex: initial.snapshot.index,
      entries: initial.entries.length, engineAppliedIndex: kv.appliedIndex, tornBytesCut: recovered.tornBytesCut,
    });

    let runtime: RaftRuntime | null = null;
    let backend: NodeBackend | null = null;
    const transport = new PeerTransport({
      selfId: config.nodeId,
      clusterId: config.clusterId,
      listenHost: config.peerListen.host,
      listenPort: config.peerListen.port,
      peerAddress: (id) => runtime?.node.membership.members.find((member) => member.id === id)?.peerAddr,
      onMessage: (message) => runtime?.onMessage(message),
      onSnapshot: async (request, chunks) => {
        if (runtime === null) throw new Error('not started');
        await runtime.onSnapshot(request, chunks);
      },
      onClientRequest: async (body) => (backend === null ? { ok: false, code: 'SHUTTING_DOWN', message: 'Starting up.' } : backend.handleRpc(body)),
      logger: logger.child({ component: 'transport' }),
    });
    runtime = new RaftRuntime({ config, logger, wal, kv, transport, initial, onFatal });
    const peers = new PeerClientPool(config.clusterId, logger);
    backend = new NodeBackend(runtime, config, peers, logger);
    const peerAddress = await transport.start();
    runtime.start();
    const http = new ApiHttpServer(backend, { host: config.httpListen.host, port: config.httpListen.port, logger });
    const httpAddress = await http.listen();
    logger.info('node started', { peerAddr: config.peerAdvertise, httpAddr: config.httpAdvertise, dataDir: config.dataDir });

    const started = runtime;
    const startedBackend = backend;
    let stopping: Promise<void> | null = null;
    return {
      runtime: started,
      backend: startedBackend,
      httpPort: httpAddress.port,
      peerPort: peerAddress.port,
      stop: (transferTimeoutMs = 1000) => {
        stopping ??= (async () => {
          if (started.node.role === 'leader') {
            const handedOver = await started.transferLeadershipAway(transferTimeoutMs);
            logger.info(handedOver ? 'leadership handed over' : 'leadership not handed over in time', { term: started.node.term });
          }
          await http.close();
          await started.stop();
          peers.close();
          await transport.stop();
          await wal.close();
          await kv.close();
          await dataDir.release();
          logger.info('node stopped');
        })();
        return stopping;
      },
    };
  } catch (error) {
    await dataDir.release();
    throw error;
  }
}

/** A data directory belongs to one member of one cluster. */
function checkIdentity(dataDir: DataDir, config: NodeConfig): void {
  const identity = dataDir.readIdentity();
  if (identity === null) return;
  if (identity.nodeId !== config.nodeId) {
    throw new StartupError(`data directory ${config.dataDir} belongs to node ${identity.nodeId}, not NODE_ID ${config.nodeId}`);
  }
  if (identity.clusterId !== config.clusterId) {
    throw new StartupError(`data directory ${config.dataDir} belongs to cluster ${identity.clusterId}, but CLUSTER_NODES/CLUSTER_TOKEN give cluster ${config.clusterId}`);
  }
}
