// Deferred engine work done while the node is idle: KvStateMachine.runMaintenance() removes history
// that a compaction made unreachable and sweeps expired client sessions, in one bounded write
// transaction that changes no answer (so replicas may run it at different moments). Applies do a
// bounded amount of the same work, so under write load it keeps up by itself; when writes stop,
// the leftovers would wait for the next write. This does them instead.
//
// "Idle" means nothing was applied since the last look and the Ready loop is not running (a
// maintenance transaction never interleaves with an apply, a log compaction or a snapshot
// install). Each look spends at most WORK_MS_MAX of the event loop, in calls of bounded size, and
// writes nothing when there is nothing to do (each maintenance commit costs a flush).

import type { Logger } from '../common/logger.js';

export const IDLE_CHECK_MS = 250;
/** Event-loop time one idle look may spend on maintenance calls. */
export const WORK_MS_MAX = 10;
/** History records and sessions per maintenance call. */
export const COMPACTION_RECORDS_PER_CALL = 4096;
export const SESSIONS_PER_CALL = 256;

export interface MaintainableState {
  readonly appliedIndex: number;
  runMaintenance(compactionRecords: number, sessions: number): { readonly compactionPending: boolean };
  stats(): { readonly compactionPending: boolean };
}

export interface IdleMaintenanceDeps {
  readonly state: MaintainableState;
  /** True while the runtime processes a Ready or installs a snapshot. */
  readonly busy: () => boolean;
  readonly logger: Logger;
  readonly nowMs?: () => number;
}

export class IdleMaintenance {
  private lastAppliedIndex: number;
  /** Entries were applied since the last sweep: the session clock moved, a sweep may find work. */
  private sweepOwed = true;
  private timer: NodeJS.Timeout | null = null;
  private calls = 0;

  constructor(private readonly deps: IdleMaintenanceDeps) {
    this.lastAppliedIndex = deps.state.appliedIndex;
  }

  start(intervalMs = IDLE_CHECK_MS): void {
    this.timer = setInterval(() => this.look(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One look: do bounded maintenance if the node is idle and there is work. Public for tests. */
  look(): void {
    const applied = this.deps.state.appliedIndex;
    if (applied !== this.lastAppliedIndex) {
      this.lastAppliedIndex = applied;
      this.sweepOwed = true;
      return; // not idle: applies do their share of the work
    }
    if (this.deps.busy()) return;
    try {
      let pending = this.deps.state.stats().compactionPending;
      if (!pending && !this.sweepOwed) return;
      const now = this.deps.nowMs ?? (() => performance.now());
      const started = now();
      do {
        pending = this.deps.state.runMaintenance(COMPACTION_RECORDS_PER_CALL, SESSIONS_PER_CALL).compactionPending;
        this.calls++;
        this.sweepOwed = false;
      } while (pending && now() - started < WORK_MS_MAX && !this.deps.busy());
      if (!pending) this.deps.logger.debug('idle maintenance: nothing left to compact');
    } catch (error) {
      // The apply path decides whether the engine is still usable (and stops the node if not).
      this.deps.logger.warn('idle maintenance failed; retried at the next idle look', { error: (error as Error).message });
    }
  }

  /** Maintenance calls made so far (tests). */
  get maintenanceCalls(): number {
    return this.calls;
  }
}
