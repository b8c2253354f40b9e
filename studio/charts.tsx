// Monitoring: one server-sent event stream per page (GET /studio/v1/metrics/stream), drawn with uPlot.
// The server samples every deployment each second; the page keeps the rows of the chosen time range.

import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { enc, SIGNED_OUT } from './api.js';

type Row = Array<number | null>;

interface ChartDef {
  title: string;
  unit: string;
  /** Columns of a row (names from the server's snapshot) drawn for each deployment, with their labels. */
  columns: Array<[string, string]>;
}

// Titles are the Azure metric names (contract §6); the splits are their dimensions.
const CHARTS: ChartDef[] = [
  { title: 'RequestsPerMinute', unit: 'requests', columns: [['RequestsPerMinute:2xx', '2xx'], ['RequestsPerMinute:3xx', '3xx'], ['RequestsPerMinute:4xx', '4xx'], ['RequestsPerMinute:5xx', '5xx']] },
  { title: 'RequestLatency_P50 / _P90 / _P99', unit: 'ms', columns: [['RequestLatency_P50', 'P50'], ['RequestLatency_P90', 'P90'], ['RequestLatency_P99', 'P99']] },
  { title: 'ModelLatency_P50 / _P99 (ResponseDurationMs)', unit: 'ms', columns: [['ModelLatency_P50', 'P50'], ['ModelLatency_P99', 'P99']] },
  { title: 'DeploymentCapacity', unit: 'instances ready', columns: [['DeploymentCapacity', 'ready']] },
  { title: 'CpuUtilizationPercentage', unit: '%', columns: [['CpuUtilizationPercentage', 'CPU']] },
  { title: 'CpuMemoryUtilizationPercentage', unit: '%', columns: [['CpuMemoryUtilizationPercentage', 'memory']] },
  { title: 'Mirror traffic copies per minute', unit: 'copies', columns: [['MirrorRequestsPerMinute:sent', 'sent'], ['MirrorRequestsPerMinute:dropped', 'dropped']] },
];

const PALETTE = ['#2f7ed8', '#d9534f', '#5cb85c', '#f0ad4e', '#8e6bbf', '#17a2b8', '#e83e8c', '#6c757d'];

export const RANGES: Array<[number, string]> = [
  [300, 'Last 5 minutes'],
  [900, 'Last 15 minutes'],
  [3600, 'Last hour'],
];

interface Data {
  columns: string[];
  byDeployment: Map<string, Row[]>;
}

function Chart(props: { def: ChartDef; data: Data; version: number; range: number; scheme: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const keyRef = useRef('');
  const [points, setPoints] = useState(0);
  const [max, setMax] = useState(0);
  useEffect(() => {
    const { def, data } = props;
    const deployments = [...data.byDeployment.keys()].sort();
    // One x axis for all deployments: they are sampled in the same tick, at the same time.
    const times = new Set<number>();
    for (const rows of data.byDeployment.values()) for (const r of rows) times.add(r[0] as number);
    const xs = [...times].sort((a, b) => a - b);
    const at = new Map(xs.map((t, i) => [t, i]));
    const series: Array<{ label: string; values: Array<number | null> }> = [];
    let count = 0;
    let max = 0;
    for (const d of deployments) {
      const rows = data.byDeployment.get(d)!;
      def.columns.forEach(([col, label], k) => {
        const j = data.columns.indexOf(col);
        const values: Array<number | null> = new Array(xs.length).fill(null);
        let nonzero = false;
        for (const r of rows) {
          const v = r[j];
          values[at.get(r[0] as number)!] = v;
          if (v !== null && v !== undefined && v > 0) {
            nonzero = true;
            count++;
            if (v > max) max = v;
          }
        }
        // The first split (2xx, P50, sent) always; the others once they have something to show, so
        // that a legend of eight flat 3xx/4xx/5xx lines does not hide the two that matter.
        if (k === 0 || nonzero) series.push({ label: `${d} ${label}`, values });
      });
    }
    setPoints(count);
    setMax(max);
    const aligned = [xs.map((t) => t / 1000), ...series.map((s) => s.values)] as uPlot.AlignedData;
    const key = series.map((s) => s.label).join('|') + props.scheme;
    const width = Math.max(280, (box.current?.clientWidth ?? 600) - 8);
    if (plot.current && keyRef.current === key) {
      plot.current.setData(aligned);
      return;
    }
    plot.current?.destroy();
    keyRef.current = key;
    const fg = getComputedStyle(document.body).color;
    if (!box.current) return;
    plot.current = new uPlot(
      {
        width,
        height: 180,
        legend: { show: true },
        scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(1, (max ?? 1) * 1.1)] } },
        // A canvas knows no currentColor: the page's text colour, read now (light or dark).
        axes: [{ stroke: fg, grid: { stroke: 'rgba(128,128,128,0.2)' } }, { stroke: fg, label: def.unit, grid: { stroke: 'rgba(128,128,128,0.2)' } }],
        series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false }))],
      },
      aligned,
      box.current,
    );
  }, [props.version, props.range, props.scheme]);
  useEffect(() => () => plot.current?.destroy(), []);
  return (
    <figure class="chart" data-metric={props.def.title} data-points={points} data-max={max}>
      <figcaption>{props.def.title}</figcaption>
      <div ref={box} role="img" aria-label={`${props.def.title} chart (${props.def.unit})`} />
    </figure>
  );
}

export function Monitoring(props: { endpoint: string }) {
  const [range, setRange] = useState(900);
  const [status, setStatus] = useState('connecting');
  const [version, setVersion] = useState(0);
  const data = useRef<Data>({ columns: [], byDeployment: new Map() });
  // Charts are drawn again in the other colours when the system switches between light and dark.
  const [scheme, setScheme] = useState(() => (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'));
  useEffect(() => {
    const q = matchMedia('(prefers-color-scheme: dark)');
    const on = () => setScheme(q.matches ? 'dark' : 'light');
    q.addEventListener('change', on);
    return () => q.removeEventListener('change', on);
  }, []);
  useEffect(() => {
    const es = new EventSource(`/studio/v1/metrics/stream?endpoint=${enc(props.endpoint)}&range=${range}`);
    let frame = 0;
    // Many samples in one frame (a snapshot, a busy endpoint) are one redraw.
    const redraw = () => {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        setVersion((v) => v + 1);
      });
    };
    es.addEventListener('snapshot', (ev) => {
      const s = JSON.parse((ev as MessageEvent).data) as { columns: string[]; deployments: Record<string, Row[]> };
      data.current = { columns: s.columns, byDeployment: new Map(Object.entries(s.deployments)) };
      setStatus('live');
      redraw();
    });
    es.addEventListener('sample', (ev) => {
      const s = JSON.parse((ev as MessageEvent).data) as { deployment: string; row: Row };
      const m = data.current.byDeployment;
      const rows = m.get(s.deployment) ?? [];
      rows.push(s.row);
      const from = (s.row[0] as number) - range * 1000;
      while (rows.length > 0 && (rows[0][0] as number) < from) rows.shift();
      m.set(s.deployment, rows);
      redraw();
    });
    es.onerror = () => {
      // EventSource tries again after a dropped connection, but not after an error status (the session
      // ended, the endpoint was deleted): then the frame checks the session, and the page says so.
      if (es.readyState !== EventSource.CLOSED) return setStatus('reconnecting');
      setStatus('closed');
      dispatchEvent(new Event(SIGNED_OUT));
    };
    return () => {
      es.close();
      cancelAnimationFrame(frame);
    };
  }, [props.endpoint, range]);
  return (
    <section aria-labelledby="monitoring-h">
      <h2 id="monitoring-h">Monitoring</h2>
      <div class="row">
        <label>
          Time range{' '}
          <select value={range} onChange={(e) => setRange(Number((e.target as HTMLSelectElement).value))}>
            {RANGES.map(([s, label]) => (
              <option value={s}>{label}</option>
            ))}
          </select>
        </label>
        <span class="muted" role="status">
          {status === 'live' ? 'Live (updated every second)' : status === 'connecting' ? 'Connecting…' : status === 'closed' ? 'Not updating (reload the page to try again)' : 'Reconnecting…'}
        </span>
      </div>
      {data.current.byDeployment.size === 0 && status === 'live' ? <p class="muted">No deployment has been measured yet.</p> : null}
      <div class="charts">
        {CHARTS.map((def) => (
          <Chart def={def} data={data.current} version={version} range={range} scheme={scheme} />
        ))}
      </div>
    </section>
  );
}
