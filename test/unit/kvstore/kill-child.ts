// Child process of durability.test.ts: apply some batches, then die by SIGKILL without closing or
// syncing, as a crashed node would. Usage: node kill-child.js <path> <batches>

import { encodeCommand } from '../../../src/kvstore/commands.js';
import { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import type { Entry } from '../../../src/raft/types.js';

const [path, batchesText] = process.argv.slice(2);
// `node --test <dir>` also runs every file under a test/ directory: without arguments, do nothing.
if (path !== undefined && batchesText !== undefined) await applyThenDie(path, Number(batchesText));

async function applyThenDie(path: string, batches: number): Promise<void> {
  const sm = await KvStateMachine.open(path);
  let index = 0;
  for (let batch = 0; batch < batches; batch++) {
    const entries: Entry[] = [];
    for (let i = 0; i < 100; i++) {
      index += 1;
      const data = encodeCommand({ v: 1, op: 'put', key: `key-${index % 1000}`, value: `value-${index - 1}-batch-${batch}`, proposedAtMs: 1 });
      entries.push({ kind: 'command', term: 1, index, data });
    }
    sm.apply(entries);
  }
  process.kill(process.pid, 'SIGKILL');
}
