// A peer in a worker thread, so it keeps running (and sending) while the main thread's event loop
// is stalled on purpose. Used by stall.test.ts; does nothing when loaded any other way.

import { parentPort, workerData } from 'node:worker_threads';
import { silentLogger } from '../../../src/common/logger.js';
import { PeerTransport } from '../../../src/transport/peer-transport.js';
import { CLUSTER, heartbeat } from './helpers.js';

interface StallPeerData {
  readonly role: 'stall-peer';
  readonly selfId: number;
  readonly targetId: number;
  readonly targetAddress: string;
}

const data = workerData as StallPeerData | null;
const port = parentPort;
if (port !== null && data?.role === 'stall-peer') {
  const transport = new PeerTransport({
    selfId: data.selfId,
    clusterId: CLUSTER,
    listenHost: '127.0.0.1',
    listenPort: 0,
    peerAddress: (id) => (id === data.targetId ? data.targetAddress : undefined),
    onMessage: () => {},
    onSnapshot: async () => {},
    logger: silentLogger,
    pingIntervalMs: 50,
    livenessTimeoutMs: 300,
    reconnectBackoffMsMin: 20,
    reconnectBackoffMsMax: 100,
  });
  await transport.start();
  let context = 0;
  const sender = setInterval(() => transport.send([heartbeat(data.selfId, data.targetId, context++)]), 10);
  port.on('message', (message: unknown) => {
    if (message !== 'stop') return;
    clearInterval(sender);
    void transport.stop().then(() => port.close());
  });
  port.postMessage('ready');
}
