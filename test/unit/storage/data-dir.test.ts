// The data directory: one holder at a time, stale locks of dead processes taken over, and an
// identity that survives restarts and refuses to be read when damaged.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../../src/common/logger.js';
import { openDataDir, type Identity } from '../../../src/storage/data-dir.js';
import { DataDirLockedError, StorageFatalError } from '../../../src/storage/errors.js';
import { recordingLogger, withTempDir } from './support.js';

const IDENTITY: Identity = { clusterId: 'c0ffee42', nodeId: 3, createdAt: '2025-01-02T03:04:05.000Z' };

/** The PID of a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  assert.equal(typeof child.pid, 'number');
  return child.pid as number;
}

test('a second open of a held directory is refused, naming the path and the PID; release frees it', async () => {
  await withTempDir(async (parent) => {
    const path = join(parent, 'node-1');
    const first = await openDataDir(path, silentLogger);
    assert.equal(first.path, path);
    assert.equal((await readFile(join(path, 'LOCK'), 'utf8')).trim(), String(process.pid));
    await assert.rejects(openDataDir(path, silentLogger), (error: unknown) => {
      assert.ok(error instanceof DataDirLockedError);
      assert.ok(error.message.includes(path) && error.message.includes(String(process.pid)), error.message);
      return true;
    });
    await first.release();
    assert.deepEqual(await readdir(path), []);
    const second = await openDataDir(path, silentLogger);
    await second.release();
    await second.release(); // idempotent
  });
});

test('another process holding the directory: refused while it lives, taken over once it is killed', async () => {
  await withTempDir(async (path) => {
    const moduleUrl = new URL('../../../src/storage/data-dir.js', import.meta.url).href;
    const script = `const m = await import(${JSON.stringify(moduleUrl)}); const quiet = { debug() {}, info() {}, warn() {}, error() {}, child() { return quiet; } };
      await m.openDataDir(${JSON.stringify(path)}, quiet); process.stdout.write('held\\n'); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const held = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the child did not take the lock within 10 s')), 10_000);
        child.stdout.on('data', (chunk: Buffer) => { if (chunk.toString().includes('held')) { clearTimeout(timer); resolve(); } });
        child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`the child exited early (${code})`)); });
      });
      await held;
      await assert.rejects(openDataDir(path, silentLogger), (error: unknown) => {
        assert.ok(error instanceof DataDirLockedError);
        assert.ok(error.message.includes(path) && error.message.includes(`process ${child.pid}`), error.message);
        return true;
      });
    } finally {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
    // SIGKILL left the LOCK behind, naming a dead process: it is taken over.
    const dir = await openDataDir(path, silentLogger);
    assert.equal((await readFile(join(path, 'LOCK'), 'utf8')).trim(), String(process.pid));
    await dir.release();
  });
});

test('a LOCK held by another live process is refused', async () => {
  await withTempDir(async (path) => {
    // PID 1 always exists (EPERM counts as alive).
    await writeFile(join(path, 'LOCK'), '1\n');
    await assert.rejects(openDataDir(path, silentLogger), (error: unknown) => error instanceof DataDirLockedError && error.message.includes('process 1 ') && error.message.includes(path));
  });
});

test('a stale LOCK of a dead process is taken over with a warning', async () => {
  await withTempDir(async (path) => {
    const stale = deadPid();
    await writeFile(join(path, 'LOCK'), `${stale}\n`);
    const logger = recordingLogger();
    const dir = await openDataDir(path, logger);
    assert.equal((await readFile(join(path, 'LOCK'), 'utf8')).trim(), String(process.pid));
    assert.ok(logger.lines.some((line) => line.level === 'warn' && line.fields.stalePid === stale));
    await dir.release();
  });
});

test('a LOCK with our own PID that this process does not hold is stale (a container restarted with the same PID)', async () => {
  await withTempDir(async (path) => {
    await writeFile(join(path, 'LOCK'), `${process.pid}\n`);
    const dir = await openDataDir(path, silentLogger);
    await assert.rejects(openDataDir(path, silentLogger), DataDirLockedError);
    await dir.release();
  });
});

test('identity: absent at first, written atomically, read back after a restart', async () => {
  await withTempDir(async (path) => {
    const first = await openDataDir(path, silentLogger);
    assert.equal(first.readIdentity(), null);
    await first.writeIdentity(IDENTITY);
    assert.deepEqual(first.readIdentity(), IDENTITY);
    await first.release();
    assert.deepEqual((await readdir(path)).sort(), ['identity'], 'no temp file or lock left behind');
    const second = await openDataDir(path, silentLogger);
    assert.deepEqual(second.readIdentity(), IDENTITY);
    const bytes = await readFile(join(path, 'identity'));
    assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x52, 0x4b, 0x56, 0x49, 0x44, 0x0d, 0x0a], 'magic');
    assert.equal(bytes.readUInt32LE(8), 1, 'format version');
    await second.release();
  });
});

test('a damaged identity file is refused with StorageFatalError, and the lock is released', async () => {
  await withTempDir(async (path) => {
    const dir = await openDataDir(path, silentLogger);
    await dir.writeIdentity(IDENTITY);
    await dir.release();
    const identityPath = join(path, 'identity');
    const pristine = await readFile(identityPath);
    for (let at = 0; at < pristine.length; at++) {
      const damaged = Buffer.from(pristine);
      damaged[at] ^= 0x20;
      await writeFile(identityPath, damaged);
      await assert.rejects(openDataDir(path, silentLogger), (error: unknown) => error instanceof StorageFatalError && error.message.includes(identityPath), `byte ${at}`);
    }
    await writeFile(identityPath, pristine);
    const again = await openDataDir(path, silentLogger);
    assert.deepEqual(again.readIdentity(), IDENTITY);
    await again.release();
  });
});
