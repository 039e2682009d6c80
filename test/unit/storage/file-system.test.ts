// The real file system's durable write: an O_DSYNC descriptor beside the ordinary one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeFileSystem } from '../../../src/storage/file-system.js';
import { withTempDir } from './support.js';

const openDescriptors = (): number => readdirSync('/proc/self/fd').length;

test('writevDurable writes where it is told, beside writev, and close releases both descriptors', async () => {
  await withTempDir(async (directory) => {
    const before = openDescriptors();
    const file = await nodeFileSystem.open(join(directory, 'segment'), 'createExclusive');
    await file.writev([Buffer.from('head-')], 0);
    await file.writevDurable([Buffer.from('one'), Buffer.from('-two')], 5);
    await file.writev([Buffer.from('+')], 12);
    await file.writevDurable([Buffer.from('+three')], 12);
    assert.equal(await file.sizeBytes(), 18);
    const back = Buffer.alloc(18);
    assert.equal(await file.read(back, 0), 18);
    assert.equal(back.toString(), 'head-one-two+three');
    assert.equal(openDescriptors(), before + 2, 'the ordinary descriptor and the O_DSYNC one');
    await file.close();
    assert.equal(openDescriptors(), before);
    assert.equal(readFileSync(join(directory, 'segment'), 'utf8'), 'head-one-two+three');
  });
});
