// The storage housekeeping a running node does beside the Ready loop (issue 4), gathered so that
// the runtime has one object to create, one hook to call after each Ready, and one to stop:
//   - history retention (history-retention.ts): the leader proposes compactions;
//   - replica hash checkpoints (replica-hash-check.ts): every node hashes the same revisions and
//     compares them with its peers' (the comparison rounds start once the peer pool exists);
//   - idle maintenance (idle-maintenance.ts): deferred compaction and session sweeps when idle.
// Snapshot points stay in the runtime's maybeCompact() (snapshot-policy.ts decides when).

import type { Logger } from '../common/logger.js';
import type { KvCommand } from '../kvstore/commands.js';
import type { CommandResult, KvStateMachine } from '../kvstore/state-machine.js';
import { HistoryRetention } from './history-retention.js';
import { IdleMaintenance } from './idle-maintenance.js';
import { ReplicaHashCheck, type PeerCheckpoints } from './replica-hash-check.js';

/** How often a node compares its hash checkpoints with its peers'. */
export const REPLICA_HASH_COMPARE_MS = 3000;

export interface StorageUpkeepDeps {
  readonly nodeId: number;
  readonly historyRetentionRevisions: number;
  readonly replicaHashEveryRevisions: number;
  readonly logger: Logger;
  readonly kv: KvStateMachine;
  readonly isLeader: () => boolean;
  /** True while the runtime processes a Ready or installs a snapshot. */
  readonly busy: () => boolean;
  readonly propose: (command: KvCommand) => Promise<CommandResult>;
}

export class StorageUpkeep {
  readonly retention: HistoryRetention;
  readonly hashCheck: ReplicaHashCheck;
  readonly maintenance: IdleMaintenance;

  constructor(deps: StorageUpkeepDeps) {
    const { kv } = deps;
    this.retention = new HistoryRetention({
      retentionRevisions: deps.historyRetentionRevisions,
      logger: deps.logger.child({ component: 'retention' }),
      isLeader: deps.isLeader,
      state: () => ({ revision: kv.revision, compactedRevision: kv.compactedRevision }),
      compactionPending: () => kv.stats().compactionPending,
      propose: deps.propose,
      nowMs: () => Date.now(),
    });
    this.hashCheck = new ReplicaHashCheck({ nodeId: deps.nodeId, everyRevisions: deps.replicaHashEveryRevisions, state: kv, logger: deps.logger.child({ component: 'replica-hash' }) });
    this.maintenance = new IdleMaintenance({ state: kv, busy: deps.busy, logger: deps.logger.child({ component: 'maintenance' }) });
  }

  start(): void {
    this.maintenance.start();
  }

  /** The runtime's hook at the end of each Ready (after apply and any snapshot point). */
  afterReady(): void {
    this.retention.afterReady();
    this.hashCheck.afterApply();
  }

  /** Compare hash checkpoints with the other members every REPLICA_HASH_COMPARE_MS. */
  startReplicaComparison(fetchPeers: () => Promise<readonly PeerCheckpoints[]>): void {
    this.hashCheck.startComparing(fetchPeers, REPLICA_HASH_COMPARE_MS);
  }

  stop(): void {
    this.retention.stop();
    this.hashCheck.stop();
    this.maintenance.stop();
  }
}
