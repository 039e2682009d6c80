// The backup file format: a streamed round trip, and damage detected before anything is trusted.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backupBody, backupChunks, verifyBackupFile, type BackupMeta } from '../../../src/server/backup.js';

const meta: BackupMeta = {
  format: 'raft-kv-backup', clusterId: '0123456789abcdef', nodeId: 2, index: 42, term: 3, revision: 17,
  membership: { members: [{ id: 1, role: 'voter', peerAddr: 'a:1', httpAddr: 'a:2' }] }, createdAt: '2026-01-01T00:00:00.000Z',
};

async function* body(): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < 50; i++) yield new Uint8Array(1000).fill(i);
}

async function writeBackup(path: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of backupChunks(meta, body())) parts.push(Buffer.from(chunk));
  const bytes = Buffer.concat(parts);
  writeFileSync(path, bytes);
  return bytes;
}

test('a backup round-trips: header, body byte for byte, trailer checked', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'backup-test-'));
  try {
    const path = join(dir, 'b');
    await writeBackup(path);
    const verified = await verifyBackupFile(path);
    assert.deepEqual(verified.meta, meta);
    const read: number[] = [];
    for await (const chunk of backupBody(path, verified)) read.push(...chunk);
    assert.equal(read.length, 50_000);
    for (let i = 0; i < 50; i++) assert.equal(read[i * 1000 + 999], i);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a flipped byte anywhere, a cut-off file, or another file is refused with a reason', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'backup-test-'));
  try {
    const path = join(dir, 'b');
    const bytes = await writeBackup(path);
    for (const offset of [10, 30, 200, 25_000, bytes.length - 5]) {
      const damaged = Buffer.from(bytes);
      damaged[offset] ^= 0x01;
      writeFileSync(path, damaged);
      await assert.rejects(verifyBackupFile(path), /checksum mismatch|not a backup|header|trailer|version|does not fit/, `byte ${offset}`);
    }
    writeFileSync(path, bytes);
    truncateSync(path, bytes.length - 100);
    await assert.rejects(verifyBackupFile(path), /trailer is missing|checksum/);
    writeFileSync(path, 'hello');
    await assert.rejects(verifyBackupFile(path), /too short/);
    writeFileSync(path, Buffer.concat([Buffer.from('SOMETHING ELSE ENTIRELY'), bytes]));
    await assert.rejects(verifyBackupFile(path), /not a backup/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
