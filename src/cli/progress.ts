// Progress for long operations: a spinner line with the state and elapsed time on a TTY (stderr), and
// nothing otherwise, so scripts that capture output see only the result.

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export class Progress {
  private readonly start = Date.now();
  private readonly tty = process.stderr.isTTY === true;
  private frame = 0;
  private state = '';
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly what: string) {
    if (this.tty) this.timer = setInterval(() => this.render(), 100);
  }

  update(state: string): void {
    this.state = state;
  }

  done(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.tty) process.stderr.write(`\r\x1b[2K${this.what}: ${this.state || 'done'} (${this.elapsed()})\n`);
  }

  private elapsed(): string {
    return `${((Date.now() - this.start) / 1000).toFixed(1)}s`;
  }

  private render(): void {
    process.stderr.write(`\r\x1b[2K${FRAMES[this.frame++ % FRAMES.length]} ${this.what}${this.state ? ` (${this.state})` : ''} ${this.elapsed()}`);
  }
}
