// Rate-limited warnings. A misbehaving or flapping peer can trigger the same warning hundreds of
// times a second; one line per key (a peer, a remote address) per interval keeps the log readable
// and the disk safe, and the next line says how many were suppressed in between.

import { performance } from 'node:perf_hooks';
import type { Logger } from '../common/logger.js';

export const DEFAULT_WARN_INTERVAL_MS = 5000;
/** Bounds the memory of the limiter when many distinct remote addresses misbehave. */
const MAX_KEYS = 4096;

interface KeyState {
  lastLoggedMs: number;
  suppressed: number;
}

export class WarnLimiter {
  private readonly keys = new Map<string, KeyState>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs: number = DEFAULT_WARN_INTERVAL_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Logs a warning unless one with the same key was logged within the interval. */
  warn(key: string, msg: string, fields: Record<string, unknown> = {}): void {
    const nowMs = this.now();
    const state = this.keys.get(key);
    if (state !== undefined && nowMs - state.lastLoggedMs < this.intervalMs) {
      state.suppressed += 1;
      return;
    }
    const suppressed = state?.suppressed ?? 0;
    if (state === undefined && this.keys.size >= MAX_KEYS) this.forgetOld(nowMs);
    this.keys.set(key, { lastLoggedMs: nowMs, suppressed: 0 });
    this.logger.warn(msg, suppressed > 0 ? { ...fields, suppressedSinceLast: suppressed } : fields);
  }

  private forgetOld(nowMs: number): void {
    for (const [key, state] of this.keys) {
      if (nowMs - state.lastLoggedMs >= this.intervalMs) this.keys.delete(key);
    }
    // Still full: everything is recent, so drop the oldest entry (Map keeps insertion order).
    if (this.keys.size >= MAX_KEYS) {
      const oldest = this.keys.keys().next();
      if (oldest.done !== true) this.keys.delete(oldest.value);
    }
  }
}
