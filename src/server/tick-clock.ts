// How many Raft ticks a timer callback owes the core. Timers of a busy event loop fire late: a
// leader whose loop turns every 65 ms under 256 clients, ticking once per callback, sent its
// heartbeats (every 5 ticks of 10 ms) about every 325 ms of wall time, and its idle followers,
// whose timers run on time, held elections (150-300 ms timeouts) in the middle of a read-only
// load. So a callback replays the ticks it missed, but at most `maxTicks` of them: after a long
// stall (a paused process, a slow disk holding the loop) the timers of the core do not jump ahead in
// one burst, before the messages that arrived meanwhile are read.

export class TickClock {
  private lastMs: number;

  constructor(private readonly tickMs: number, private readonly maxTicks: number, nowMs: number) {
    if (!(tickMs > 0) || !Number.isInteger(maxTicks) || maxTicks < 1) throw new RangeError(`bad tick clock: tickMs ${tickMs}, maxTicks ${maxTicks}`);
    this.lastMs = nowMs;
  }

  /** Ticks due at `nowMs` (0 if the timer fired early), remembering them as done. */
  due(nowMs: number): number {
    const owed = Math.floor((nowMs - this.lastMs) / this.tickMs);
    if (owed <= 0) return 0;
    if (owed > this.maxTicks) {
      this.lastMs = nowMs; // what is beyond the cap is dropped, not owed later
      return this.maxTicks;
    }
    this.lastMs += owed * this.tickMs;
    return owed;
  }
}
