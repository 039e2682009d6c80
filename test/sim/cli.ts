// The simulator's command line (`npm run sim -- ...`, i.e. `node dist/test/sim/cli.js ...`):
//
//   --seeds N [--from S]   run seeds S..S+N-1 (S = 1) over worker threads
//   --seed S [--trace]     run one seed in this thread; --trace prints a line per event
//   --failover N           measure failover time over N trials
//   --transfer N           measure the client-visible pause of a leadership transfer over N trials
//   --read-rounds N        count ReadIndex heartbeat rounds per 1,000 reads under load (N seeds for
//                          each of 1, 4, 16 and 64 clients)
//   --stats                also print throughput and totals
//   --workers W            worker threads (default 2: the machines have 2 cores)
//   --nodes 3|5, --chaos-ms MS   override the seed's cluster size / the length of the fault phase
//   --membership off|steady|aggressive   override the seed's membership changes
//   --join-bootstrap founding|fromLeader|selfLearner|empty   what a joining node's empty disk says
//                          at index 0 (default founding, what src/server does)
//
// A violation prints its seed, property, detail and the command that replays it. The last line is
// always `sim: seeds=N violations=V`, and the exit status is 1 when V > 0.

import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { JoinBootstrap } from './cluster.js';
import { runFailover } from './failover.js';
import type { MembershipMode } from './membership.js';
import { runReadRounds } from './readrounds.js';
import { runTransfers } from './transfer.js';
import { runSeed, type RunViolation } from './run.js';
import { summarize, Totals, type SeedRequest, type SeedSummary, type WorkerOptions } from './summary.js';

interface Arguments {
  seeds: number | null;
  from: number;
  seed: number | null;
  trace: boolean;
  failover: number | null;
  transfer: number | null;
  readRounds: number | null;
  stats: boolean;
  workers: number;
  options: WorkerOptions;
}

function usage(problem: string): never {
  process.stderr.write(
    `sim: ${problem}\nusage: cli.js --seeds N [--from S] [--stats] | --seed S [--trace] | --failover N | --transfer N | --read-rounds N ` +
      `[--nodes 3|5] [--membership off|steady|aggressive]\n`,
  );
  process.exit(2);
}

function parseArguments(argv: readonly string[]): Arguments {
  const parsed: Arguments = {
    seeds: null, from: 1, seed: null, trace: false, failover: null, transfer: null, readRounds: null, stats: false, workers: 2, options: {},
  };
  const options: { -readonly [K in keyof WorkerOptions]: WorkerOptions[K] } = {};
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k];
    const number = (): number => {
      const text = argv[++k];
      const value = Number(text);
      if (text === undefined || !Number.isSafeInteger(value)) usage(`${flag} needs an integer`);
      return value;
    };
    switch (flag) {
      case '--seeds': parsed.seeds = number(); break;
      case '--from': parsed.from = number(); break;
      case '--seed': parsed.seed = number(); break;
      case '--trace': parsed.trace = true; break;
      case '--failover': parsed.failover = number(); break;
      case '--transfer': parsed.transfer = number(); break;
      case '--read-rounds': parsed.readRounds = number(); break;
      case '--membership': {
        const mode = argv[++k];
        if (mode !== 'off' && mode !== 'steady' && mode !== 'aggressive') usage('--membership needs off, steady or aggressive');
        options.membership = mode as MembershipMode;
        break;
      }
      case '--join-bootstrap': {
        const mode = argv[++k];
        if (mode !== 'fromLeader' && mode !== 'founding' && mode !== 'selfLearner' && mode !== 'empty') usage('--join-bootstrap needs founding, fromLeader, selfLearner or empty');
        options.joinBootstrap = mode as JoinBootstrap;
        break;
      }
      case '--stats': parsed.stats = true; break;
      case '--workers': parsed.workers = Math.max(1, number()); break;
      case '--nodes': options.nodeCount = number(); break;
      case '--chaos-ms': options.chaosMs = number(); break;
      case '--no-lincheck': options.lincheck = false; break;
      default: usage(`unknown argument ${String(flag)}`);
    }
  }
  parsed.options = options;
  return parsed;
}

function replayCommand(seed: number, options: WorkerOptions): string {
  const extra = [
    options.nodeCount !== undefined ? ` --nodes ${options.nodeCount}` : '',
    options.chaosMs !== undefined ? ` --chaos-ms ${options.chaosMs}` : '',
    options.membership !== undefined ? ` --membership ${options.membership}` : '',
    options.joinBootstrap !== undefined ? ` --join-bootstrap ${options.joinBootstrap}` : '',
    options.lincheck === false ? ' --no-lincheck' : '',
  ].join('');
  return `npm run sim -- --seed ${seed}${extra} --trace`;
}

function printViolations(seed: number, violations: readonly RunViolation[], options: WorkerOptions): void {
  if (violations.length === 0) return;
  for (const violation of violations) {
    process.stdout.write(`VIOLATION seed=${seed} property=${violation.property} at=${violation.atMs.toFixed(3)}ms\n`);
    process.stdout.write(`  ${violation.detail.split('\n').join('\n  ')}\n`);
  }
  process.stdout.write(`  replay: ${replayCommand(seed, options)}\n`);
}

function printStats(totals: Totals, elapsedMs: number): void {
  const recovery = totals.recovery();
  process.stdout.write(
    `sim: stats seeds/s=${(totals.seeds / (elapsedMs / 1000)).toFixed(1)} wall=${(elapsedMs / 1000).toFixed(1)}s ` +
      `simulated=${(totals.simulatedMs / 1000).toFixed(0)}s events=${totals.events} ` +
      `ops ok=${totals.operationsOk} unknown=${totals.operationsUnknown} fail=${totals.operationsFail} ` +
      `elections=${totals.elections} crashes=${totals.crashes} snapshotsInstalled=${totals.snapshotsInstalled} ` +
      `lincheckUnknown=${totals.lincheckUnknown} recovery median=${recovery.medianMs.toFixed(1)}ms max=${recovery.maxMs.toFixed(1)}ms ` +
      `slowest seed=${totals.wallMsMaxSeed} (${totals.wallMsMax.toFixed(0)}ms)\n`,
  );
  const roundsPerThousand = totals.readsServed === 0 ? NaN : (1000 * totals.readRounds) / totals.readsServed;
  process.stdout.write(
    `sim: stats membership changes=${totals.membershipChanges} nodesAdded=${totals.nodesAdded} nodesRetired=${totals.nodesRetired} ` +
      `leaderRemovals=${totals.leaderRemovals} transfers=${totals.transfers} compactions=${totals.compactions} ` +
      `snapshotStreams=${totals.snapshotStreams} brokenOff=${totals.snapshotStreamsBrokenOff} ` +
      `readIndex reads=${totals.readsServed} (on followers ${totals.readsServedOnFollower}) rounds=${totals.readRounds} ` +
      `(${roundsPerThousand.toFixed(0)} per 1000 reads)\n`,
  );
}

function runOne(args: Arguments, seed: number): number {
  const started = performance.now();
  const result = runSeed(seed, { ...args.options, trace: args.trace });
  if (args.trace) process.stdout.write(`${result.trace.join('\n')}\n`);
  printViolations(seed, result.violations, args.options);
  const totals = new Totals();
  totals.add(summarize(result));
  if (args.stats || args.trace) {
    process.stdout.write(`sim: seed ${seed} stats ${JSON.stringify(result.stats)}\n`);
    printStats(totals, performance.now() - started);
  }
  const violations = result.violations.length > 0 ? 1 : 0;
  process.stdout.write(`sim: seeds=1 violations=${violations}\n`);
  return violations;
}

/** Hands seeds out in small batches to whichever worker is free, so slow seeds do not stall one. */
async function runMany(args: Arguments, count: number): Promise<number> {
  const started = performance.now();
  const seeds = Array.from({ length: count }, (_, k) => args.from + k);
  const batchSize = Math.max(1, Math.min(20, Math.floor(count / (args.workers * 8))));
  let next = 0;
  const summaries: SeedSummary[] = [];
  const workerCount = Math.min(args.workers, count);
  const workers = Array.from({ length: workerCount }, () =>
    new Worker(new URL('./worker.js', import.meta.url), { workerData: args.options }),
  );
  await Promise.all(workers.map((worker) => new Promise<void>((resolve, reject) => {
    const feed = (): void => {
      if (next >= seeds.length) {
        worker.postMessage(null);
        return;
      }
      const request: SeedRequest = { seeds: seeds.slice(next, next + batchSize) };
      next += batchSize;
      worker.postMessage(request);
    };
    worker.on('message', (batch: SeedSummary[]) => {
      for (const summary of batch) {
        summaries.push(summary);
        printViolations(summary.seed, summary.violations, args.options);
      }
      feed();
    });
    worker.on('error', reject);
    worker.on('exit', () => resolve());
    feed();
  })));
  const totals = new Totals();
  for (const summary of summaries.sort((a, b) => a.seed - b.seed)) totals.add(summary);
  if (args.stats) printStats(totals, performance.now() - started);
  const failing = summaries.filter((summary) => summary.violations.length > 0).map((summary) => summary.seed);
  if (failing.length > 0) process.stdout.write(`sim: failing seeds: ${failing.join(' ')}\n`);
  process.stdout.write(`sim: seeds=${totals.seeds} violations=${totals.seedsWithViolations}\n`);
  return totals.seedsWithViolations;
}

function failover(args: Arguments, trials: number): void {
  const started = performance.now();
  const nodeCount = args.options.nodeCount ?? 3;
  const summary = runFailover(trials, { nodeCount });
  const elapsedMs = performance.now() - started;
  process.stdout.write(
    `failover: nodes=${nodeCount} trials=${summary.trials} failed=${summary.failed} ` +
      `median=${summary.medianMs.toFixed(1)}ms p99=${summary.p99Ms.toFixed(1)}ms max=${summary.maxMs.toFixed(1)}ms ` +
      `mean=${summary.meanMs.toFixed(1)}ms rounds/election=${summary.roundsPerElection.toFixed(3)} ` +
      `split-vote elections=${summary.splitVoteElections} (${(elapsedMs / 1000).toFixed(1)}s)\n`,
  );
}

function transfer(args: Arguments, trials: number): void {
  const started = performance.now();
  const nodeCount = args.options.nodeCount ?? 3;
  const summary = runTransfers(trials, { nodeCount });
  const elapsedMs = performance.now() - started;
  process.stdout.write(
    `transfer: nodes=${nodeCount} trials=${summary.trials} failed=${summary.failed} missedTarget=${summary.missedTarget} ` +
      `client-visible pause median=${summary.pause.medianMs.toFixed(1)}ms p99=${summary.pause.p99Ms.toFixed(1)}ms ` +
      `max=${summary.pause.maxMs.toFixed(1)}ms; new leader committed median=${summary.leaderReady.medianMs.toFixed(1)}ms ` +
      `max=${summary.leaderReady.maxMs.toFixed(1)}ms (${(elapsedMs / 1000).toFixed(1)}s)\n`,
  );
}

function readRounds(args: Arguments, seeds: number): void {
  const nodeCount = args.options.nodeCount ?? 3;
  for (const clientCount of [1, 4, 16, 64]) {
    let reads = 0;
    let rounds = 0;
    let writes = 0;
    let onFollowers = 0;
    for (let seed = 1; seed <= seeds; seed++) {
      const result = runReadRounds(seed, { nodeCount, clientCount });
      reads += result.readsServed;
      rounds += result.readRounds;
      writes += result.writesAcknowledged;
      onFollowers += result.readsServedOnFollower;
    }
    process.stdout.write(
      `read-rounds: nodes=${nodeCount} clients=${clientCount} seeds=${seeds} reads=${reads} (on followers ${onFollowers}) ` +
        `writes=${writes} rounds=${rounds} ` +
        `rounds per 1000 reads=${((1000 * rounds) / reads).toFixed(0)}\n`,
    );
  }
}

async function main(): Promise<void> {
  // `... --trace | head` closes the pipe early: that is not an error worth a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  const args = parseArguments(process.argv.slice(2));
  if (args.failover !== null) {
    failover(args, args.failover);
    return;
  }
  if (args.transfer !== null) {
    transfer(args, args.transfer);
    return;
  }
  if (args.readRounds !== null) {
    readRounds(args, args.readRounds);
    return;
  }
  let violations: number;
  if (args.seed !== null) violations = runOne(args, args.seed);
  else if (args.seeds !== null) violations = await runMany(args, args.seeds);
  else usage('say --seeds N, --seed S, --failover N, --transfer N or --read-rounds N');
  process.exitCode = violations > 0 ? 1 : 0;
}

main().catch((error: unknown) => {
  process.stderr.write(`sim: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.stdout.write('sim: seeds=0 violations=1\n');
  process.exitCode = 1;
});
