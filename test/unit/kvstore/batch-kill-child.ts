// Child process of engine-batch.test.ts: a state machine with batched engine commits applies
// entries, calls sync() after some of them, applies more, then dies by SIGKILL without closing, as a
// crashed node would. Usage: node batch-kill-child.js <path> <entries before sync> <entries after>
// Each entry is applied on its own (one apply, one child transaction), so fewer than
// BATCH_MAX_TRANSACTS entries after the sync stay in the uncommitted batch.

import { encodeCommand } from '../../../src/kvstore/commands.js';
import { KvStateMachine } from '../../../src/kvstore/state-machine.js';

const [path, beforeText, afterText] = process.argv.slice(2);
// `node --test <dir>` also runs every file under a test/ directory: without arguments, do nothing.
if (path !== undefined && beforeText !== undefined && afterText !== undefined) await run(path, Number(beforeText), Number(afterText));

/** The value entry `index` writes: batch-kill tests rebuild the expected state from it. */
export function batchKillEntry(index: number): { readonly key: string; readonly value: string } {
  return { key: `key-${index % 97}`, value: `value-${index}` };
}

async function run(path: string, before: number, after: number): Promise<void> {
  // An interval no test outlives: only sync() and the transact cap commit.
  const sm = await KvStateMachine.open(path, { commitIntervalMs: 600_000 });
  for (let index = 1; index <= before + after; index++) {
    const { key, value } = batchKillEntry(index);
    sm.apply([{ kind: 'command', term: 1, index, data: encodeCommand({ v: 1, op: 'put', key, value, proposedAtMs: 1 }) }]);
    if (index === before) await sm.sync();
  }
  process.kill(process.pid, 'SIGKILL');
}
