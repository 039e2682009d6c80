// Payloads of the snapshot connection besides the chunks themselves: the end marker, which
// carries the totals so the receiver can tell a complete stream from a truncated one, and the
// receiver's verdict.

import { CodecError } from '../codec/raft-codec.js';

export interface SnapshotEnd {
  readonly bytes: number;
  readonly chunks: number;
}

export type SnapshotResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function count(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new CodecError(`snapshot end: ${field} is not a count`);
  return value;
}

export function checkSnapshotEnd(value: unknown): SnapshotEnd {
  if (!isRecord(value)) throw new CodecError('snapshot end is not a record');
  return { bytes: count(value.bytes, 'bytes'), chunks: count(value.chunks, 'chunks') };
}

export function checkSnapshotResult(value: unknown): SnapshotResult {
  if (!isRecord(value) || typeof value.ok !== 'boolean') throw new CodecError('snapshot result has no ok field');
  if (value.ok) return { ok: true };
  return { ok: false, reason: typeof value.reason === 'string' ? value.reason : 'no reason given' };
}
