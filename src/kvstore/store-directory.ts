// The state machine's directory: one lmdb environment per generation, and a CURRENT file naming
// the live one. Installing a snapshot builds the next generation beside the live one and then
// replaces CURRENT by rename, so a crash at any moment leaves CURRENT naming either the old state
// or the new, never a half-written one (the same trick as LevelDB's CURRENT/MANIFEST).
//
//   <path>/CURRENT            "engine-000002\n"
//   <path>/engine-000002/     the live lmdb environment (data.mdb, lock.mdb)
//   <path>/engine-000003.tmp/ a snapshot import in progress; removed by open() after a crash

import { promises as fs } from 'node:fs';
import { join } from 'node:path';

const CURRENT = 'CURRENT';
const CURRENT_TEMP = 'CURRENT.tmp';
const GENERATION_PATTERN = /^engine-(\d{6,})(\.tmp)?$/;

export function generationName(generation: number): string {
  return `engine-${String(generation).padStart(6, '0')}`;
}

export class StoreDirectory {
  private constructor(readonly path: string, private generationNow: number) {}

  /**
   * Open (or create) the directory and clean up what a crash may have left: temp generations,
   * generations CURRENT does not name, a half-written CURRENT.tmp. Returns whether the state is new.
   */
  static async open(path: string): Promise<{ readonly directory: StoreDirectory; readonly created: boolean }> {
    await fs.mkdir(path, { recursive: true });
    const current = await readCurrent(path);
    const entries = await fs.readdir(path);
    if (current === null) {
      const foreign = entries.filter((name) => name !== CURRENT_TEMP && !GENERATION_PATTERN.test(name));
      if (foreign.length > 0) {
        throw new Error(`${path} holds no CURRENT file but other files (${foreign.slice(0, 3).join(', ')}); refusing to use it as a state directory`);
      }
      // Without CURRENT nothing was ever committed here: any generation is a leftover of a first
      // start that crashed before it wrote CURRENT.
      for (const name of entries) await fs.rm(join(path, name), { recursive: true, force: true });
      return { directory: new StoreDirectory(path, 0), created: true };
    }
    for (const name of entries) {
      if (name === CURRENT || name === generationName(current)) continue;
      if (name === CURRENT_TEMP || GENERATION_PATTERN.test(name)) await fs.rm(join(path, name), { recursive: true, force: true });
    }
    try {
      await fs.access(join(path, generationName(current)));
    } catch {
      throw new Error(`${join(path, CURRENT)} names ${generationName(current)}, which is missing: the state directory is damaged`);
    }
    return { directory: new StoreDirectory(path, current), created: false };
  }

  get generation(): number {
    return this.generationNow;
  }

  /** Where the live environment is (the generation CURRENT names). */
  get liveEngineDirectory(): string {
    return join(this.path, generationName(this.generationNow));
  }

  /** An empty directory for the next generation, to be filled and then committed. */
  async prepareNext(): Promise<{ readonly generation: number; readonly tempDirectory: string }> {
    const generation = this.generationNow + 1;
    const tempDirectory = join(this.path, `${generationName(generation)}.tmp`);
    await fs.rm(tempDirectory, { recursive: true, force: true });
    await fs.mkdir(tempDirectory);
    return { generation, tempDirectory };
  }

  /** Throw away a prepared generation (a failed import). */
  async discard(tempDirectory: string): Promise<void> {
    await fs.rm(tempDirectory, { recursive: true, force: true });
  }

  /**
   * Make a prepared generation the live one. Its files must already be flushed. The order matters:
   * the data directory is renamed and its entry made durable before CURRENT names it.
   */
  async commit(generation: number, tempDirectory: string): Promise<string> {
    const finalDirectory = join(this.path, generationName(generation));
    await fsyncPath(tempDirectory);
    await fs.rename(tempDirectory, finalDirectory);
    await fsyncPath(this.path);
    const temp = join(this.path, CURRENT_TEMP);
    const handle = await fs.open(temp, 'w');
    try {
      await handle.writeFile(`${generationName(generation)}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temp, join(this.path, CURRENT));
    await fsyncPath(this.path);
    this.generationNow = generation;
    return finalDirectory;
  }

  /** Remove a generation that is no longer live (after a swap). */
  async remove(generation: number): Promise<void> {
    if (generation === this.generationNow) throw new Error('refusing to remove the live generation');
    await fs.rm(join(this.path, generationName(generation)), { recursive: true, force: true });
  }
}

async function readCurrent(path: string): Promise<number | null> {
  let text: string;
  try {
    text = await fs.readFile(join(path, CURRENT), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const match = GENERATION_PATTERN.exec(text.trim());
  if (match === null || match[2] !== undefined) throw new Error(`${join(path, CURRENT)} does not name a generation: ${JSON.stringify(text.slice(0, 64))}`);
  return Number(match[1]);
}

/** fsync a file or directory, so a rename or a new file survives a machine crash. */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await fs.open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
