// Write-ahead log recovery time: how long RaftLogStore.open takes to replay a full segment (64 MiB
// by default) of 100-byte entries, wall clock and CPU. The segment is written with fsync off to build
// it quickly (the bytes are the same); recovery runs with fsync on, as a node starts.
//
//   node dist/bench/wal/recovery.js [--mib 64] [--runs 3]

import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.js';
import type { Entry } from '../../src/raft/types.js';
import { nodeFileSystem, type FileSystem } from '../../src/storage/file-system.js';
import { RaftLogStore } from '../../src/storage/wal.js';

/** The real file system, timing the reads, so a run can tell disk time from replay time. */
function timedReads(): { fileSystem: FileSystem; readMs: () => number } {
  let readMs = 0;
  const fileSystem: FileSystem = {
    ...nodeFileSystem,
    open: async (path, mode) => {
      const file = await nodeFileSystem.open(path, mode);
      return {
        path: file.path,
        read: async (buffer, position) => {
          const startedMs = performance.now();
          try {
            return await file.read(buffer, position);
          } finally {
            readMs += performance.now() - startedMs;
          }
        },
        writev: (buffers, position) => file.writev(buffers, position),
        writevDurable: (buffers, position) => file.writevDurable(buffers, position),
        datasync: () => file.datasync(),
        truncate: (sizeBytes) => file.truncate(sizeBytes),
        sizeBytes: () => file.sizeBytes(),
        close: () => file.close(),
      };
    },
  };
  return { fileSystem, readMs: () => readMs };
}

function parseOptions(argv: readonly string[]): { sizeMiB: number; runs: number } {
  let sizeMiB = 64;
  let runs = 3;
  for (let k = 0; k < argv.length; k++) {
    if (argv[k] === '--mib') sizeMiB = Number(argv[++k]);
    else if (argv[k] === '--runs') runs = Number(argv[++k]);
    else throw new Error(`unknown flag ${argv[k]}`);
  }
  if (!(sizeMiB > 0) || !(runs >= 1)) throw new Error('bad --mib or --runs');
  return { sizeMiB, runs };
}

async function writeLog(directory: string, sizeBytes: number): Promise<number> {
  const { store } = await RaftLogStore.open(directory, { logger: silentLogger, fsync: false, segmentSizeBytes: sizeBytes + 1024 * 1024 });
  const data = new Uint8Array(100).fill(0x42);
  let lastIndex = 0;
  while (store.stats().bytes < sizeBytes) {
    const entries: Entry[] = [];
    for (let k = 1; k <= 1000; k++) entries.push({ kind: 'command', term: 1, index: lastIndex + k, data });
    await store.save({ hardState: { term: 1, votedFor: 1, commitIndex: lastIndex }, entries, snapshot: null });
    lastIndex += entries.length;
  }
  await store.close();
  return lastIndex;
}

async function main(): Promise<void> {
  const { sizeMiB, runs } = parseOptions(process.argv.slice(2));
  const directory = await mkdtemp(join(tmpdir(), 'wal-recovery-'));
  try {
    const entries = await writeLog(directory, sizeMiB * 1024 * 1024);
    console.log(`WAL recovery of one ${sizeMiB} MiB segment, ${entries} entries of 100 bytes`);
    console.log(`node ${process.version}, ${cpus().length} CPUs, load average ${loadavg().map((load) => load.toFixed(2)).join(' ')}`);
    for (let run = 1; run <= runs; run++) {
      const timed = timedReads();
      const cpuBefore = process.cpuUsage();
      const startedMs = performance.now();
      const { store, recovered } = await RaftLogStore.open(directory, { logger: silentLogger, fileSystem: timed.fileSystem });
      const wallMs = performance.now() - startedMs;
      const cpu = process.cpuUsage(cpuBefore);
      if (recovered.entries.length !== entries) throw new Error(`recovered ${recovered.entries.length} entries, wrote ${entries}`);
      console.log(`run ${run}: ${wallMs.toFixed(0)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU (all threads), ${timed.readMs().toFixed(0)} ms of it reading the file, ${Math.round((entries * 1000) / wallMs)} entries/s`);
      await store.close();
    }
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

await main();
