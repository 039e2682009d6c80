// A readable line per simulator event, kept only when asked for (replaying one seed). Callers test
// `trace.enabled` before building a line, so a run without a trace pays for one branch per event.

import type { Entry, Message } from '../../src/raft/types.js';
import { formatTime, type Micros } from './events.js';

export class Trace {
  readonly lines: string[] = [];

  constructor(
    readonly enabled: boolean,
    private readonly clock: () => Micros,
    /** Lines kept at most; older lines are dropped from the front (the end is what explains a bug). */
    private readonly lineCountMax = 200_000,
  ) {}

  add(text: string): void {
    if (!this.enabled) return;
    if (this.lines.length >= this.lineCountMax) this.lines.splice(0, this.lines.length >> 1);
    this.lines.push(`${formatTime(this.clock()).padStart(12)} ${text}`);
  }
}

export function describeEntry(entry: Entry, decode: (data: Uint8Array) => string): string {
  switch (entry.kind) {
    case 'noop':
      return `${entry.index}/${entry.term}:noop`;
    case 'config':
      return `${entry.index}/${entry.term}:config[${entry.membership.members.map((m) => `${m.id}${m.role === 'learner' ? 'L' : ''}`).join(',')}]`;
    case 'command':
      return `${entry.index}/${entry.term}:${decode(entry.data)}`;
  }
}

function describeEntries(entries: readonly Entry[]): string {
  if (entries.length === 0) return '[]';
  const first = entries[0] as Entry;
  const last = entries[entries.length - 1] as Entry;
  return first === last ? `[${first.index}/${first.term}]` : `[${first.index}/${first.term}..${last.index}/${last.term}]`;
}

/** One message in a line: "appendRequest n1->n2 t3 prev=4/2 entries=[5/3..7/3] commit=4". */
export function describeMessage(message: Message): string {
  const head = `${message.type} n${message.from}->n${message.to} t${message.term}`;
  switch (message.type) {
    case 'voteRequest':
      return `${head}${message.preVote ? ' pre' : ''} last=${message.lastLogIndex}/${message.lastLogTerm}${message.transfer ? ' transfer' : ''}`;
    case 'voteResponse':
      return `${head}${message.preVote ? ' pre' : ''} ${message.granted ? 'granted' : 'rejected'}`;
    case 'appendRequest':
      return `${head} prev=${message.prevLogIndex}/${message.prevLogTerm} entries=${describeEntries(message.entries)} commit=${message.leaderCommit}`;
    case 'appendResponse':
      return message.success
        ? `${head} ok match=${message.matchIndex}`
        : `${head} reject at=${message.rejectedIndex} hint=${message.conflictIndex}/${message.conflictTerm}`;
    case 'heartbeatRequest':
      return `${head} commit=${message.commitIndex} ctx=${message.context}`;
    case 'heartbeatResponse':
      return `${head} ctx=${message.context}`;
    case 'snapshotRequest':
      return `${head} snapshot=${message.snapshot.index}/${message.snapshot.term}`;
    case 'timeoutNow':
      return head;
    case 'readIndexRequest':
      return `${head} ctx=${message.context}`;
    case 'readIndexResponse':
      return `${head} ctx=${message.context} index=${message.readIndex}`;
  }
}
