// A server that does nothing: node:http on loopback, reads each body and answers 200 with a body the
// size of our store's answer (key, value of VALUE_BYTES, revisions). The load generator's rate against
// it, in the same run and with the same processes, is its headroom: how far above the store's rates
// it can drive when the other end costs (almost) nothing.
//
//   PORT=N VALUE_BYTES=100 node dist/bench/suite/trivial-server.js     (stops by itself after MAX_SECONDS)

import { createServer } from 'node:http';
import { valueOfSize } from './requests.js';

const port = Number(process.env.PORT ?? 0);
const valueBytes = Number(process.env.VALUE_BYTES ?? 100);
const maxSeconds = Number(process.env.MAX_SECONDS ?? 600);
const answer = JSON.stringify({ key: 'bench-000000', value: valueOfSize(valueBytes), createRevision: 1, modRevision: 2, version: 2, revision: 3 });
const answerBytes = Buffer.byteLength(answer);

const server = createServer({ keepAliveTimeout: 65_000 }, (request, response) => {
  request.resume();
  request.on('end', () => {
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': answerBytes });
    response.end(answer);
  });
});
server.listen(port, '127.0.0.1', () => {
  const address = server.address() as { port: number };
  process.stdout.write(`listening ${address.port}\n`);
});
setTimeout(() => process.exit(0), maxSeconds * 1000).unref();
process.on('SIGTERM', () => process.exit(0));
