// FOUNDING: the configuration at index 0 of this cluster's log, kept in the data directory for good
// (the log's own copy goes with the first compaction). A node joining with an empty log records the
// same configuration at its index 0 (bootstrap.ts), so that its log agrees with every member's from
// the start: a leader may replicate to it from entry 1, and a snapshot it takes before its first
// configuration entry records the configuration at index 0. Founders write it when they found;
// joining nodes copy it from the member they ask (GET /cluster/members, `bootstrapMembership`).
// `membership: null` says this cluster's log never had a configuration at index 0 (a cluster
// restored from a backup starts from a snapshot point): every joining node then gets a snapshot.
//
// FOUNDING is UTF-8 text: a first line "raft-kv founding 1" (magic and format version), then one line
// of JSON {clusterId, membership}. Written to a temp file, fdatasynced, renamed, and the directory
// fsynced.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeFileSystem, writeFileAtomically } from '../storage/file-system.js';
import type { Member, Membership } from '../raft/types.js';
import { StartupError } from './startup-error.js';

export const FOUNDING_FILE = 'FOUNDING';
const MAGIC_LINE = 'raft-kv founding 1';

export interface FoundingRecord {
  readonly clusterId: string;
  readonly membership: Membership | null;
}

/** The record, or null when the directory has none (it predates the record, or a crash came first). */
export async function readFoundingRecord(dataDir: string): Promise<FoundingRecord | null> {
  let text: string;
  try {
    text = await readFile(join(dataDir, FOUNDING_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const [magic, json] = text.split('\n', 2);
  let parsed: unknown;
  try {
    parsed = magic === MAGIC_LINE ? JSON.parse(json) : undefined;
  } catch {
    parsed = undefined;
  }
  const record = parsed as Partial<FoundingRecord> | undefined;
  const membership = record?.membership === null ? null : parseMembership(record?.membership);
  if (record === undefined || typeof record.clusterId !== 'string' || membership === undefined) {
    throw new StartupError(`${join(dataDir, FOUNDING_FILE)} is damaged (it should hold the configuration this cluster's log starts from): the data directory cannot be trusted`);
  }
  return { clusterId: record.clusterId, membership };
}

export async function writeFoundingRecord(dataDir: string, record: FoundingRecord): Promise<void> {
  await writeFileAtomically(nodeFileSystem, dataDir, FOUNDING_FILE, Buffer.from(`${MAGIC_LINE}\n${JSON.stringify(record)}\n`, 'utf8'));
}

/** A membership from JSON written by another node (or another version), checked field by field;
 * undefined when malformed. */
export function parseMembership(value: unknown): Membership | undefined {
  const members = (value as { members?: unknown } | null | undefined)?.members;
  if (typeof value !== 'object' || value === null || !Array.isArray(members)) return undefined;
  const parsed: Member[] = [];
  for (const item of members as unknown[]) {
    const member = item as Partial<Member> | null;
    if (member === null || typeof member !== 'object') return undefined;
    const { id, role, peerAddr, httpAddr } = member;
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) return undefined;
    if (role !== 'voter' && role !== 'learner') return undefined;
    if (typeof peerAddr !== 'string' || peerAddr === '' || typeof httpAddr !== 'string') return undefined;
    if (parsed.some((other) => other.id === id)) return undefined;
    parsed.push({ id, role, peerAddr, httpAddr });
  }
  return { members: parsed };
}
