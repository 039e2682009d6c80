// The suite's settings: the full run by default, --quick for a smoke run (under 3 minutes), and flags
// to narrow either down.

import type { Workload } from './loadgen-protocol.js';

export type Phase = 'headroom' | 'cases' | 'failover' | 'restart' | 'profile';
export const PHASES: readonly Phase[] = ['headroom', 'cases', 'failover', 'restart', 'profile'];
export type SystemName = 'ours' | 'etcd';
const WORKLOADS: readonly Exclude<Workload, 'fill'>[] = ['write', 'read', 'stale', 'mixed'];

export interface SuiteOptions {
  readonly quick: boolean;
  readonly runs: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly workloads: readonly Exclude<Workload, 'fill'>[];
  readonly valueSizes: readonly number[];
  readonly clientCounts: readonly number[];
  readonly keyCount: number;
  readonly systems: readonly SystemName[];
  readonly phases: ReadonlySet<Phase>;
  readonly headroomClients: readonly number[];
  readonly failoverRepetitions: number;
  readonly failoverClients: number;
  readonly failoverSteadyMs: number;
  readonly failoverAfterKillMs: number;
  /** Per-request timeout of the failover clients: a write stuck on a dead leader is given up and
   * retried on the next member after this long. */
  readonly failoverRequestTimeoutMs: number;
  readonly restartKeys: number;
  readonly profileMs: number;
  readonly loadProcesses: number;
  readonly etcdDefaultTimeouts: boolean;
  /** The whole suite stops starting new work after this long (what is left is reported as skipped). */
  readonly timeLimitMs: number;
  readonly baseline: boolean;
  readonly note: string;
  readonly keepData: boolean;
}

export const USAGE = `npm run bench -- [--quick] [flags]

  --quick                   smoke run, under 3 minutes: 1 run, 2 s cases, 100-byte values, 1 and 64
                            clients, 2 failovers, 20,000 keys for the restart, a 3 s profile
  --runs N                  runs of every case, alternated with etcd; medians reported (full: 3)
  --seconds S               measured seconds per case, after warm-up (full: 10)
  --warmup S                warm-up seconds per case, on a freshly started cluster (quick: 1, full: 3)
  --workloads LIST          of write,read,stale,mixed (all)
  --values LIST             value sizes in bytes (full: 100,10240)
  --clients LIST            concurrent closed-loop clients (full: 1,16,64,256)
  --keys N                  key space (10000)
  --systems LIST            ours,etcd (both)
  --only LIST / --skip LIST phases: headroom,cases,failover,restart,profile
  --failover-reps N         leader kills per system (full: 5)
  --failover-timeout-ms N   failover clients give a write up and retry elsewhere after N ms (500)
  --restart-keys N          keys held by the restarted nodes (full: 1000000)
  --profile-seconds S       measured seconds of the profiled case (full: 10)
  --load-processes N        load generator processes (1)
  --etcd-default-timeouts   etcd with its own 100 ms / 1000 ms instead of our 50 / 300 ms
  --time-limit S            start no new work after S seconds (quick: 165, full: 10800)
  --baseline                also write bench/BASELINE.md from this run
  --note TEXT               a line for the report (say where and how it ran)
  --keep-data               keep the data directories (printed at the end)
`;

function list(value: string, what: string): string[] {
  const items = value.split(',').map((item) => item.trim()).filter((item) => item !== '');
  if (items.length === 0) throw new Error(`${what} needs at least one item`);
  return items;
}

function positiveIntegers(value: string, what: string): number[] {
  return list(value, what).map((item) => {
    const number = Number(item);
    if (!Number.isSafeInteger(number) || number < 1) throw new Error(`${what}: ${item} is not a positive integer`);
    return number;
  });
}

function positiveNumber(value: string | undefined, what: string): number {
  const number = Number(value);
  if (!(number > 0) || !Number.isFinite(number)) throw new Error(`${what} needs a positive number, not ${value}`);
  return number;
}

export function parseOptions(argv: readonly string[]): SuiteOptions | 'help' {
  const quick = argv.includes('--quick');
  const options = {
    quick,
    runs: quick ? 1 : 3,
    warmupMs: quick ? 1000 : 3000,
    durationMs: quick ? 2000 : 10_000,
    workloads: [...WORKLOADS] as Exclude<Workload, 'fill'>[],
    valueSizes: quick ? [100] : [100, 10_240],
    clientCounts: quick ? [1, 64] : [1, 16, 64, 256],
    keyCount: 10_000,
    systems: ['ours', 'etcd'] as SystemName[],
    phases: new Set<Phase>(PHASES),
    headroomClients: quick ? [64] : [64, 256],
    failoverRepetitions: quick ? 2 : 5,
    failoverClients: 16,
    failoverSteadyMs: quick ? 1000 : 3000,
    failoverAfterKillMs: quick ? 2000 : 4000,
    failoverRequestTimeoutMs: 500,
    restartKeys: quick ? 20_000 : 1_000_000,
    profileMs: quick ? 3000 : 10_000,
    loadProcesses: 1,
    etcdDefaultTimeouts: false,
    timeLimitMs: (quick ? 165 : 10_800) * 1000,
    baseline: false,
    note: '',
    keepData: false,
  };
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k];
    const next = (): string => {
      const value = argv[++k];
      if (value === undefined) throw new Error(`${flag} needs a value`);
      return value;
    };
    switch (flag) {
      case '--quick': break;
      case '--help': case '-h': return 'help';
      case '--runs': options.runs = positiveIntegers(next(), flag)[0]; break;
      case '--seconds': options.durationMs = Math.round(positiveNumber(next(), flag) * 1000); break;
      case '--warmup': options.warmupMs = Math.round(Number(next()) * 1000); break;
      case '--workloads': {
        const chosen = list(next(), flag);
        for (const item of chosen) if (!(WORKLOADS as readonly string[]).includes(item)) throw new Error(`unknown workload ${item} (${WORKLOADS.join(', ')})`);
        options.workloads = chosen as Exclude<Workload, 'fill'>[];
        break;
      }
      case '--values': options.valueSizes = positiveIntegers(next(), flag); break;
      case '--clients': options.clientCounts = positiveIntegers(next(), flag); break;
      case '--keys': options.keyCount = positiveIntegers(next(), flag)[0]; break;
      case '--systems': {
        const chosen = list(next(), flag);
        for (const item of chosen) if (item !== 'ours' && item !== 'etcd') throw new Error(`unknown system ${item} (ours, etcd)`);
        options.systems = chosen as SystemName[];
        break;
      }
      case '--only': case '--skip': {
        const chosen = list(next(), flag);
        for (const item of chosen) if (!(PHASES as readonly string[]).includes(item)) throw new Error(`unknown phase ${item} (${PHASES.join(', ')})`);
        if (flag === '--only') options.phases = new Set(chosen as Phase[]);
        else for (const item of chosen) options.phases.delete(item as Phase);
        break;
      }
      case '--failover-reps': options.failoverRepetitions = positiveIntegers(next(), flag)[0]; break;
      case '--failover-timeout-ms': options.failoverRequestTimeoutMs = positiveIntegers(next(), flag)[0]; break;
      case '--restart-keys': options.restartKeys = positiveIntegers(next(), flag)[0]; break;
      case '--profile-seconds': options.profileMs = Math.round(positiveNumber(next(), flag) * 1000); break;
      case '--load-processes': options.loadProcesses = positiveIntegers(next(), flag)[0]; break;
      case '--etcd-default-timeouts': options.etcdDefaultTimeouts = true; break;
      case '--time-limit': options.timeLimitMs = Math.round(positiveNumber(next(), flag) * 1000); break;
      case '--baseline': options.baseline = true; break;
      case '--note': options.note = next(); break;
      case '--keep-data': options.keepData = true; break;
      default: throw new Error(`unknown flag ${flag}\n\n${USAGE}`);
    }
  }
  if (!(options.warmupMs >= 0)) throw new Error('--warmup must be 0 or more');
  return options;
}
