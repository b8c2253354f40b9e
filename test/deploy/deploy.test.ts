// deploy/'s Grafana dashboard and Prometheus alert rules (issue 14 part 3) against what a real server
// exports: a deployment serves traffic (and a wrong key gets its 401), /metrics is scraped, and every
// metric named in a dashboard or rule expression must be there. The PromQL is read loosely (metric-name
// tokens, not a parser); promtool is not needed (Debian's `prometheus` package has it, for a manual
// `promtool check rules deploy/prometheus-alerts.yml`).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import { curl, EXAMPLES, ROOT, Workspace } from '../e2e/harness.js';

const DEPLOY = join(ROOT, 'deploy');
const SAMPLE = join(EXAMPLES, 'managed', 'sample');
const REQUEST = join(EXAMPLES, 'model-1', 'sample-request.json');

/** PromQL words that are not metric names. Functions are recognised by the '(' after them. */
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/** The metric names an expression reads: identifiers outside label matchers, ranges, strings and grouping lists. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    // Grafana's variables ($__rate_interval, $job) outside brackets.
    .replace(/\$\w+/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    if (m[2] !== undefined || KEYWORDS.has(m[1].toLowerCase())) continue;
    names.add(m[1]);
  }
  return [...names];
}

interface Dashboard {
  panels: Array<{ title: string; type: string; targets?: Array<{ expr: string }> }>;
}
interface Rules {
  groups: Array<{ name: string; rules: Array<{ alert?: string; record?: string; expr: string; for?: string }> }>;
}

const dashboard = JSON.parse(readFileSync(join(DEPLOY, 'grafana-dashboard.json'), 'utf8')) as Dashboard;
const rules = parse(readFileSync(join(DEPLOY, 'prometheus-alerts.yml'), 'utf8')) as Rules;
const dashboardExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `dashboard panel "${p.title}"`, expr: t.expr })));
const ruleExprs = rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: r.expr })));

test('the token reader finds metric names and nothing else', () => {
  assert.deepEqual(
    metricNames('sum by (endpoint, le) (rate(foo_bucket{a="b", c=~"$x"}[$__rate_interval])) / on (endpoint) group_left bar_total > 0.5 and baz offset 5m'),
    ['foo_bucket', 'bar_total', 'baz'],
  );
  assert.deepEqual(metricNames('histogram_quantile(0.99, x) > 1e3 or vector(1)'), ['x']);
});

test('the dashboard and the rules cover what the issue asks for', () => {
  const titles = dashboard.panels.map((p) => p.title).join('\n');
  for (const t of [/Requests\/s by deployment and status/, /p50 \/ p99/, /429 and 5xx/, /Instances ready/, /CPU utilization/, /Memory utilization/, /Mirror/]) assert.match(titles, t);
  const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert));
  for (const a of ['InfergateHigh5xxRatio', 'InfergateHighP99Latency', 'InfergateNoReadyInstances', 'InfergateInstanceCrashLooping', 'InfergateMirrorErrors']) assert.ok(alerts.includes(a), a);
  for (const r of rules.groups.flatMap((g) => g.rules)) assert.match(r.for ?? '', /^\d+[smh]$/, `${r.alert} has a for: duration`);
  assert.ok(dashboardExprs.length >= 10 && ruleExprs.length >= 5);
  for (const { where, expr } of [...dashboardExprs, ...ruleExprs]) assert.ok(metricNames(expr).length > 0, `${where} reads no metric: ${expr}`);
});

describeServer();

function describeServer(): void {
  const ws = new Workspace();
  const E = 'endpt-metrics';
  let families = new Map<string, string>();
  let samples = new Set<string>();
  let text = '';

  before(async () => {
    await ws.startServer();
    assert.equal((await ws.cli(['ml', 'online-endpoint', 'create', '--name', E, '-f', join(SAMPLE, 'endpoint.yml')])).code, 0);
    const dep = await ws.cli(['ml', 'online-deployment', 'create', '--name', 'blue', '--endpoint', E, '-f', join(SAMPLE, 'blue-deployment.yml'), '--all-traffic']);
    assert.equal(dep.code, 0, dep.stderr);
    const key = (await ws.cli(['ml', 'online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).stdout.trim();
    const uri = (await ws.cli(['ml', 'online-endpoint', 'show', '-n', E, '-o', 'tsv', '--query', 'scoring_uri'])).stdout.trim();
    for (let i = 0; i < 3; i++) assert.equal((await curl(uri, { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, REQUEST)).status, 200);
    assert.equal((await curl(uri, { Authorization: 'Bearer not-the-key', 'Content-Type': 'application/json' }, REQUEST)).status, 401);
    assert.equal((await curl(uri, { 'Content-Type': 'application/json' }, REQUEST)).status, 401);

    const { url } = JSON.parse(readFileSync(join(ws.dir, 'server.json'), 'utf8')) as { url: string };
    const res = await fetch(`${url}/metrics`, { headers: ws.ownerAuth });
    assert.equal(res.status, 200);
    text = await res.text();
    families = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
    samples = new Set([...text.matchAll(/^([a-zA-Z_:][\w:]*)[{ ]/gm)].map((m) => m[1]));
  });
  after(async () => {
    if (process.exitCode) console.error(ws.serverLog);
    await ws.dispose();
  });

  /** Exported: a family of that name, or the _bucket/_sum/_count series of a histogram family. */
  const exported = (name: string): boolean => {
    if (families.has(name) || samples.has(name)) return true;
    const base = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
    return base !== undefined && (families.get(base) === 'histogram' || families.get(base) === 'summary');
  };

  test('every metric the dashboard and the alert rules read is exported by the server', () => {
    const missing: string[] = [];
    for (const { where, expr } of [...dashboardExprs, ...ruleExprs]) for (const n of metricNames(expr)) if (!exported(n)) missing.push(`${where}: ${n}`);
    assert.deepEqual(missing, []);
    // The checker itself refuses a name the server does not export.
    assert.equal(exported('infergate_no_such_metric_total'), false);
  });

  test('the traffic served shows in the series the dashboard and rules read', () => {
    for (const name of ['infergate_requests_total', 'infergate_request_duration_seconds_bucket', 'infergate_model_duration_seconds_bucket', 'infergate_ready_instances', 'process_cpu_seconds_total', 'nodejs_eventloop_lag_p99_seconds']) {
      assert.ok(samples.has(name), `${name} has samples`);
    }
    assert.match(text, new RegExp(`^infergate_requests_total\\{endpoint="${E}",deployment="blue",status_code="200",status_code_class="2xx"\\} 3$`, 'm'));
    // Auth comes before selection: the 401s are the endpoint's, with deployment "".
    assert.match(text, new RegExp(`^infergate_requests_total\\{endpoint="${E}",deployment="",status_code="401",status_code_class="4xx"\\} 2$`, 'm'));
    assert.match(text, new RegExp(`^infergate_ready_instances\\{endpoint="${E}",deployment="blue"\\} 1$`, 'm'));
    assert.doesNotMatch(text, /infergate_process_|process_process_/);
  });
}
