// What the figures were measured on: cores, memory, the disk under the data, versions, load, and the
// disk's raw fdatasync rate (from bench/wal/group-commit.js, which both systems' durability rests on).

import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { distPath } from './paths.js';

export interface MachineInfo {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly memoryBytes: number;
  readonly kernel: string;
  readonly disk: string;
  readonly node: string;
  readonly etcd: string;
  readonly loadAverageAtStart: readonly number[];
  loadAverageAtEnd: readonly number[];
  readonly rawFdatasyncPerSecond: number | null;
  readonly rawFdatasyncP50Ms: number | null;
  readonly gitCommit: string;
}

function command(file: string, args: readonly string[]): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    return 'unknown';
  }
}

function describeDisk(path: string): string {
  const df = command('df', ['-h', '--output=source,fstype,size,avail', path]).split('\n')[1]?.trim().split(/\s+/);
  if (df === undefined || df.length < 4) return 'unknown';
  const device = df[0].replace('/dev/', '');
  let rotational = '';
  try {
    rotational = readFileSync(`/sys/block/${device}/queue/rotational`, 'utf8').trim() === '1' ? ', rotational per sysfs' : ', non-rotational per sysfs';
  } catch {
    // Not a whole-disk device, or no sysfs.
  }
  return `${df[0]} (${df[1]}${rotational}), ${df[2]} total, ${df[3]} free, data in ${path}`;
}

function rawFdatasync(): { perSecond: number | null; p50Ms: number | null } {
  const run = spawnSync(process.execPath, [distPath('bench/wal/group-commit.js'), '--seconds', '1', '--proposers', '1', '--json'], { encoding: 'utf8', timeout: 30_000 });
  try {
    const lastLine = run.stdout.trim().split('\n').pop() ?? '';
    const parsed = JSON.parse(lastLine) as { rawFdatasync?: { syncsPerSecond?: number; p50Ms?: number } };
    return { perSecond: parsed.rawFdatasync?.syncsPerSecond ?? null, p50Ms: parsed.rawFdatasync?.p50Ms ?? null };
  } catch {
    return { perSecond: null, p50Ms: null };
  }
}

export function describeMachine(dataPath: string, etcdVersion: string): MachineInfo {
  const fsync = rawFdatasync();
  return {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    kernel: release(),
    disk: describeDisk(dataPath),
    node: process.version,
    etcd: etcdVersion,
    loadAverageAtStart: loadavg(),
    loadAverageAtEnd: [],
    rawFdatasyncPerSecond: fsync.perSecond,
    rawFdatasyncP50Ms: fsync.p50Ms,
    gitCommit: command('git', ['-C', join(dirname(fileURLToPath(import.meta.url)), '../../..'), 'rev-parse', '--short', 'HEAD']),
  };
}
