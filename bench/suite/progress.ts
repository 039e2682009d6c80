// One progress line while the suite runs (rewritten in place on a terminal, one line per step
// otherwise), and finished results printed above it as they come.

import { monotonicMs } from './processes.js';

export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private readonly startedMs = monotonicMs();
  private line = '';
  private timer: NodeJS.Timeout | null = null;

  start(): void {
    if (this.tty) this.timer = setInterval(() => this.draw(), 500);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.clear();
  }

  /** What runs now. */
  set(text: string): void {
    this.line = text;
    if (this.tty) this.draw();
    else process.stderr.write(`${this.prefix()} ${text}\n`);
  }

  /** A finished result: printed on its own line, above the progress line. */
  print(text: string): void {
    this.clear();
    process.stdout.write(`${text}\n`);
    if (this.tty) this.draw();
  }

  elapsedMs(): number {
    return monotonicMs() - this.startedMs;
  }

  private prefix(): string {
    const seconds = Math.floor(this.elapsedMs() / 1000);
    return `[${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}]`;
  }

  private draw(): void {
    const width = process.stderr.columns ?? 120;
    const text = `${this.prefix()} ${this.line}`;
    process.stderr.write(`\r\x1b[2K${text.length > width - 1 ? text.slice(0, width - 1) : text}`);
  }

  private clear(): void {
    if (this.tty) process.stderr.write('\r\x1b[2K');
  }
}
