// A load generator that keeps every outcome with the container that answered it (whoami/score.py says
// which): the docker suites need to know which instance held a failed request, not only that it failed.
// Bounded: it stops when told, or after maxMs.

export interface Outcome {
  id: number;
  status: number;
  /** The answering container's hostname (its short id), for a 200. */
  host?: string;
  version?: string;
  body: string;
  /** When it was sent and when its answer (or error) came. */
  sent: number;
  at: number;
}

export class HostLoad {
  readonly outcomes: Outcome[] = [];
  private running = false;
  private workers: Promise<void>[] = [];
  private next = 0;

  constructor(
    private readonly uri: string,
    private readonly headers: Record<string, string>,
    /** Seconds each request sleeps in score.py: keeps requests in flight on the instances. */
    private readonly sleep = 0.02,
    private readonly maxMs = 120_000,
    /** The request body for request `id`; default whoami's {id, sleep}. */
    private readonly bodyOf: (id: number) => string = (id) => JSON.stringify({ id, sleep: this.sleep }),
  ) {}

  start(concurrency: number): void {
    this.running = true;
    const end = Date.now() + this.maxMs;
    for (let i = 0; i < concurrency; i++) this.workers.push(this.worker(end));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
  }

  get failures(): Outcome[] {
    return this.outcomes.filter((o) => o.status !== 200);
  }

  hosts(since = 0): Set<string> {
    return new Set(this.outcomes.filter((o) => o.at >= since && o.host !== undefined).map((o) => o.host!));
  }

  count(pred: (o: Outcome) => boolean): number {
    let n = 0;
    for (const o of this.outcomes) if (pred(o)) n++;
    return n;
  }

  /** Resolves once pred holds (checked every 20 ms), or rejects after timeoutMs. */
  async until(what: string, pred: () => boolean, timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`load: timed out waiting for ${what} (${this.outcomes.length} requests, ${this.failures.length} failed)`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private async worker(end: number): Promise<void> {
    while (this.running && Date.now() < end) {
      const id = this.next++;
      const sent = Date.now();
      try {
        const r = await fetch(this.uri, { method: 'POST', headers: this.headers, body: this.bodyOf(id), signal: AbortSignal.timeout(30_000) });
        const body = await r.text();
        const o: Outcome = { id, status: r.status, body: body.slice(0, 300), sent, at: Date.now() };
        if (r.status === 200) {
          try {
            const a = JSON.parse(body) as { host: string; id?: number; version?: string };
            if (a.id !== undefined && a.id !== id) o.status = -2; // an answer to another request: the worst failure there is
            o.host = a.host;
            if (a.version !== undefined) o.version = a.version;
          } catch {
            o.status = -3;
          }
        }
        this.outcomes.push(o);
      } catch (e) {
        this.outcomes.push({ id, status: -1, body: `${(e as Error).message} ${((e as { cause?: Error }).cause?.message ?? '')}`, sent, at: Date.now() });
      }
    }
  }
}
