// How many heartbeat rounds ReadIndex costs under load (thesis 6.4): a calm cluster serves many
// clients whose gets all go through ReadIndex, on the leader or (for clients that route at random)
// on followers, which ask the leader. The leader queues reads that arrive while a round is in
// flight and serves them all with the next one, so rounds grow slower than reads. We count the
// rounds leaders started (heartbeat broadcasts carrying a new context) and the reads served.

import { Cluster } from './cluster.js';
import { ms } from './events.js';
import { rootRng } from './rng.js';
import { Workload } from './workload.js';

export interface ReadRoundsOptions {
  readonly nodeCount?: number;
  readonly clientCount: number;
  readonly durationMs?: number;
  /** Share of clients sending to a random node (ReadIndex on a follower). */
  readonly randomRoutingProbability?: number;
  /** Share of operations that are puts (the rest are gets; no deletes). */
  readonly putProbability?: number;
}

export interface ReadRoundsResult {
  readonly readsServed: number;
  readonly readsServedOnFollower: number;
  readonly readRounds: number;
  readonly writesAcknowledged: number;
  readonly roundsPerThousandReads: number;
}

export function runReadRounds(seed: number, options: ReadRoundsOptions): ReadRoundsResult {
  const rng = rootRng(seed).fork('read-rounds');
  const cluster = new Cluster({
    nodeCount: options.nodeCount ?? 3, rng, trace: false, network: { delayMicrosMin: ms(1), delayMicrosMax: ms(5) },
  });
  const workload = new Workload(cluster, rng.fork('workload'), {
    clientCount: options.clientCount,
    readIndexProbability: 1,
    putProbability: options.putProbability ?? 0.2,
    deleteProbability: 0,
    randomRoutingProbability: options.randomRoutingProbability ?? 0.5,
  });
  cluster.startAll();
  workload.start();
  cluster.sim.runUntil(ms(options.durationMs ?? 5000));
  workload.stopIssuing();
  let readsServed = 0;
  let readsServedOnFollower = 0;
  let readRounds = 0;
  for (const runtime of cluster.all) {
    readsServed += runtime.stats.readsServed;
    readsServedOnFollower += runtime.stats.readsServedOnFollower;
    readRounds += runtime.stats.readRounds;
  }
  return {
    readsServed,
    readsServedOnFollower,
    readRounds,
    writesAcknowledged: workload.acknowledged.length,
    roundsPerThousandReads: readsServed === 0 ? NaN : (1000 * readRounds) / readsServed,
  };
}
