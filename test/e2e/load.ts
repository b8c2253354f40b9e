// A load generator for end-to-end tests: a few workers POST to a scoring URI without pause and record
// every outcome per phase. Bounded: it stops when told, or after maxMs.

export interface PhaseStats {
  total: number;
  ok: number;
  byDeployment: Record<string, number>;
  failures: string[];
}

export class Load {
  private running = false;
  private workers: Promise<void>[] = [];
  private phaseName = 'start';
  readonly phases = new Map<string, PhaseStats>();
  /** Copied once into an ArrayBuffer-backed array: fetch's BodyInit does not take a Buffer over a shared pool. */
  private readonly payload: Uint8Array<ArrayBuffer>;

  constructor(
    private readonly uri: string,
    private readonly headers: Record<string, string>,
    body: Buffer,
    /** deployment name → the exact body it answers */
    private readonly answers: Record<string, string>,
    private readonly maxMs = 120_000,
  ) {
    this.payload = new Uint8Array(body);
  }

  start(concurrency: number): void {
    this.running = true;
    const end = Date.now() + this.maxMs;
    for (let i = 0; i < concurrency; i++) this.workers.push(this.worker(end));
  }

  phase(name: string): void {
    this.phaseName = name;
  }

  stats(name: string): PhaseStats {
    let s = this.phases.get(name);
    if (!s) {
      s = { total: 0, ok: 0, byDeployment: {}, failures: [] };
      this.phases.set(name, s);
    }
    return s;
  }

  get total(): number {
    let n = 0;
    for (const s of this.phases.values()) n += s.total;
    return n;
  }

  get failures(): string[] {
    return [...this.phases.entries()].flatMap(([p, s]) => s.failures.map((f) => `${p}: ${f}`));
  }

  /** Resolves once the current phase has at least n requests. */
  async waitFor(n: number, timeoutMs = 60_000): Promise<void> {
    const phase = this.phaseName;
    const end = Date.now() + timeoutMs;
    while (this.stats(phase).total < n) {
      if (Date.now() > end) throw new Error(`phase ${phase}: only ${this.stats(phase).total} of ${n} requests in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
  }

  private async worker(end: number): Promise<void> {
    while (this.running && Date.now() < end) {
      const s = this.stats(this.phaseName);
      try {
        const r = await fetch(this.uri, { method: 'POST', headers: this.headers, body: this.payload });
        const text = await r.text();
        s.total++;
        const dep = r.headers.get('azureml-model-deployment') ?? '?';
        if (r.status !== 200) s.failures.push(`${r.status} ${text.slice(0, 200)}`);
        else if (this.answers[dep] !== undefined && this.answers[dep] !== text) s.failures.push(`wrong answer from ${dep}: ${text.slice(0, 200)}`);
        else {
          s.ok++;
          s.byDeployment[dep] = (s.byDeployment[dep] ?? 0) + 1;
        }
      } catch (e) {
        s.total++;
        s.failures.push(`connection error: ${(e as Error).message} ${(e as { cause?: Error }).cause?.message ?? ''}`);
      }
    }
  }
}
