// A worker thread of the CLI: runs the seeds it is sent and answers with a summary of each.

import { parentPort, workerData } from 'node:worker_threads';
import { summarize, type SeedRequest, type WorkerOptions } from './summary.js';
import { runSeed } from './run.js';

const port = parentPort;
if (port === null) throw new Error('worker.js must run as a worker thread');
const options = workerData as WorkerOptions;

port.on('message', (request: SeedRequest | null) => {
  if (request === null) {
    port.close();
    return;
  }
  const summaries = request.seeds.map((seed) => {
    try {
      return summarize(runSeed(seed, options));
    } catch (error) {
      // runSeed catches what the core throws; anything here is the simulator's own bug.
      const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
      return summarize({ seed, crashed: detail });
    }
  });
  port.postMessage(summaries);
});
