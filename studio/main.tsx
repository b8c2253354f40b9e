// The studio (issue 15, docs/studio.md): endpoints, deployments, traffic, test, consume, logs, charts,
// models and environments, on the control plane's REST API. Pages are addressed by the URL hash
// (#/endpoints/<name>/test), so the server serves one page and every view can be bookmarked.

import { render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, enc, SIGNED_OUT, uploadTree, type Json } from './api.js';
import { Monitoring } from './charts.js';
import './style.css';
import 'uplot/dist/uPlot.min.css';

interface Me {
  token_id: string;
  role: 'owner' | 'contributor' | 'reader';
}

// ---- small pieces

function useHash(): string[] {
  const parse = () => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [parts, setParts] = useState(parse);
  useEffect(() => {
    const on = () => setParts(parse());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return parts;
}

/** Loads `fn` now and every `everyMs` (0: once); the latest answer or error. */
function usePoll<T>(fn: () => Promise<T>, deps: unknown[], everyMs = 0): { value?: T; error?: ApiError | Error; reload: () => void } {
  const [state, setState] = useState<{ value?: T; error?: ApiError | Error }>({});
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    let timer = 0;
    const run = async () => {
      try {
        const value = await fn();
        if (live) setState({ value });
      } catch (e) {
        if (live) setState((s) => ({ ...s, error: e as Error }));
      }
      if (live && everyMs > 0) timer = window.setTimeout(run, everyMs);
    };
    void run();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

function ErrorText(props: { error?: unknown }) {
  if (!props.error) return null;
  const e = props.error as ApiError;
  return (
    <div class="error" role="alert">
      {e.code ? <strong>{e.code}: </strong> : null}
      <span class="pre">{e.message}</span>
    </div>
  );
}

function State(props: { state?: string }) {
  const s = props.state ?? '';
  return <span class={`state state-${s.toLowerCase()}`}>{s}</span>;
}

/** A button that asks once more in place before it acts (no modal: keyboard and screen readers stay put). */
function ConfirmButton(props: { label: string; question: string; onConfirm: () => Promise<void> | void; danger?: boolean }) {
  const [asking, setAsking] = useState(false);
  const yes = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) yes.current?.focus();
  }, [asking]);
  if (!asking)
    return (
      <button type="button" class={props.danger ? 'danger' : ''} onClick={() => setAsking(true)}>
        {props.label}
      </button>
    );
  return (
    <span class="confirm" role="group" aria-label={props.question}>
      <span>{props.question}</span>{' '}
      <button type="button" ref={yes} class="danger" onClick={async () => { setAsking(false); await props.onConfirm(); }}>
        Yes, {props.label.toLowerCase()}
      </button>{' '}
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

function CopyButton(props: { text: string; label: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      aria-label={props.label}
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(props.text);
        } catch {
          // No clipboard API (plain http on another host): select a copy for Ctrl+C instead.
          const t = document.createElement('textarea');
          t.value = props.text;
          document.body.append(t);
          t.select();
          document.execCommand('copy');
          t.remove();
        }
        setDone(true);
        setTimeout(() => setDone(false), 1500);
      }}
    >
      {done ? 'Copied' : 'Copy'}
    </button>
  );
}

const trafficText = (t: Record<string, number> | undefined): string =>
  Object.entries(t ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(' ') || '—';

// ---- endpoints list

function Endpoints(props: { me: Me }) {
  const list = usePoll(() => api<Json[]>('GET', '/api/endpoints'), [], 3000);
  const summary = usePoll(() => api<{ requests_per_minute: Record<string, number> }>('GET', '/studio/v1/summary'), [], 3000);
  const rpm = summary.value?.requests_per_minute ?? {};
  return (
    <section aria-labelledby="endpoints-h">
      <div class="row">
        <h1 id="endpoints-h">Endpoints</h1>
        {props.me.role !== 'reader' ? (
          <a class="button" href="#/create">
            Create endpoint or deployment
          </a>
        ) : null}
      </div>
      <ErrorText error={list.error} />
      {list.value && list.value.length === 0 ? <p>No endpoints yet.</p> : null}
      {list.value && list.value.length > 0 ? (
        <table>
          <caption class="sr-only">Endpoints</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Provisioning state</th>
              <th scope="col">Auth mode</th>
              <th scope="col">Traffic</th>
              <th scope="col">Scoring URI</th>
              <th scope="col">Requests per minute</th>
            </tr>
          </thead>
          <tbody>
            {list.value.map((e) => (
              <tr>
                <td>
                  <a href={`#/endpoints/${enc(e.name)}`}>{e.name}</a>
                </td>
                <td>
                  <State state={e.provisioning_state} />
                </td>
                <td>{e.auth_mode}</td>
                <td>{trafficText(e.traffic)}</td>
                <td class="mono">{e.scoring_uri}</td>
                <td class="num">{rpm[e.name] ?? 0}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

// ---- create from YAML

interface Validation {
  problems: Array<{ line?: number; column?: number; path: string; message: string; text: string }>;
  uploads: Array<{ key: string; value: string; expect: string; line?: number; column?: number; attached: boolean }>;
  document?: Json;
  name?: string;
  endpoint_name?: string;
}

function YamlBox(props: { id: string; label: string; value: string; onInput: (v: string) => void; file: string; onFile: (v: string) => void; result?: Validation; uploads: Record<string, string>; onUpload: (key: string, ref: string) => void }) {
  const area = useRef<HTMLTextAreaElement>(null);
  const gutter = useRef<HTMLPreElement>(null);
  const [busy, setBusy] = useState('');
  const [err, setErr] = useState<unknown>(null);
  const goTo = (line = 1, column = 1) => {
    const t = area.current!;
    const lines = t.value.split('\n');
    let at = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) at += lines[i].length + 1;
    at += column - 1;
    t.focus();
    t.setSelectionRange(at, at);
  };
  const problemLines = new Set((props.result?.problems ?? []).map((p) => p.line));
  const count = Math.max(1, props.value.split('\n').length);
  const attach = async (key: string, files: FileList | null, single: boolean) => {
    if (!files || files.length === 0) return;
    setErr(null);
    setBusy(key);
    try {
      props.onUpload(key, await uploadTree([...files], single));
    } catch (e) {
      setErr(e);
    } finally {
      setBusy('');
    }
  };
  return (
    <fieldset>
      <legend>{props.label}</legend>
      <label>
        File name (shown in problems){' '}
        <input value={props.file} onInput={(e) => props.onFile((e.target as HTMLInputElement).value)} size={24} />
      </label>{' '}
      <label>
        Load a YAML file{' '}
        <input
          type="file"
          accept=".yml,.yaml,text/yaml"
          onChange={async (e) => {
            const f = (e.target as HTMLInputElement).files?.[0];
            if (f) {
              props.onFile(f.name);
              props.onInput(await f.text());
            }
          }}
        />
      </label>
      <div class="editor">
        <pre class="gutter" aria-hidden="true" ref={gutter}>
          {Array.from({ length: count }, (_, i) => (
            <span class={problemLines.has(i + 1) ? 'bad' : ''}>{`${i + 1}\n`}</span>
          ))}
        </pre>
        <textarea id={props.id} ref={area} aria-label={`${props.label} YAML`} spellcheck={false} rows={Math.min(24, Math.max(8, count + 1))} value={props.value} onScroll={(e) => { if (gutter.current) gutter.current.scrollTop = (e.target as HTMLTextAreaElement).scrollTop; }} onInput={(e) => props.onInput((e.target as HTMLTextAreaElement).value)} />
      </div>
      {props.result && props.result.problems.length > 0 ? (
        <ul class="problems" aria-label={`Problems in ${props.label}`}>
          {props.result.problems.map((p) => (
            <li>
              <button type="button" class="link" onClick={() => goTo(p.line, p.column)} aria-label={`Go to line ${p.line ?? 1}, column ${p.column ?? 1}`}>
                {p.line ? `${p.line}:${p.column ?? 1}` : '—'}
              </button>{' '}
              <span class="problem">{p.text}</span>
            </li>
          ))}
        </ul>
      ) : null}
      {props.result && props.result.uploads.length > 0 ? (
        <div class="uploads">
          <p>These paths are on your computer: choose them to upload (the server opens no path a document names).</p>
          {props.result.uploads.map((u) => (
            <div class="upload">
              <div class="mono">
                {props.file}:{u.line}:{u.column}: {u.key}: {u.value}
              </div>
              {u.expect !== 'file' ? (
                <label>
                  Folder for {u.key}{' '}
                  <input type="file" data-key={u.key} data-kind="folder" {...({ webkitdirectory: true } as Record<string, boolean>)} multiple onChange={(e) => attach(u.key, (e.target as HTMLInputElement).files, false)} />
                </label>
              ) : null}{' '}
              {u.expect !== 'folder' ? (
                <label>
                  File for {u.key} <input type="file" data-key={u.key} data-kind="file" onChange={(e) => attach(u.key, (e.target as HTMLInputElement).files, true)} />
                </label>
              ) : null}{' '}
              <span role="status">{busy === u.key ? 'Uploading…' : props.uploads[u.key] ? 'Uploaded' : 'Not chosen yet'}</span>
            </div>
          ))}
        </div>
      ) : null}
      <ErrorText error={err} />
    </fieldset>
  );
}

function Create() {
  const [endpointYaml, setEndpointYaml] = useState('');
  const [deploymentYaml, setDeploymentYaml] = useState('');
  const [endpointFile, setEndpointFile] = useState('endpoint.yml');
  const [deploymentFile, setDeploymentFile] = useState('deployment.yml');
  const [uploads, setUploads] = useState<Record<string, string>>({});
  const uploadsRef = useRef<Record<string, string>>({});
  const [results, setResults] = useState<{ endpoint?: Validation; deployment?: Validation }>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  // An endpoint created by an earlier Create whose deployment was then refused: a second Create, after
  // the fix, only adds the deployment (creating the endpoint again would fail as a conflict).
  const created = useRef('');

  const validate = useCallback(
    async (ups = uploads) => {
      const r: { endpoint?: Validation; deployment?: Validation } = {};
      if (endpointYaml.trim()) r.endpoint = await api<Validation>('POST', '/studio/v1/validate', { kind: 'endpoint', yaml: endpointYaml, file: endpointFile });
      if (deploymentYaml.trim()) r.deployment = await api<Validation>('POST', '/studio/v1/validate', { kind: 'deployment', yaml: deploymentYaml, file: deploymentFile, uploads: ups });
      setResults(r);
      return r;
    },
    [endpointYaml, deploymentYaml, endpointFile, deploymentFile, uploads],
  );

  const create = async () => {
    setError(null);
    setBusy(true);
    try {
      const r = await validate();
      const bad = [r.endpoint, r.deployment].some((v) => v && (v.problems.length > 0 || !v.document));
      if (bad || (!r.endpoint && !r.deployment)) throw new ApiError(400, 'ValidationFailed', 'Fix the problems listed above (and choose the files to upload) first.');
      let endpointName = r.endpoint?.name;
      if (r.endpoint?.document && r.endpoint.name !== created.current) {
        await api('POST', '/api/endpoints', r.endpoint.document);
        created.current = r.endpoint.name ?? '';
      }
      if (r.deployment?.document) {
        endpointName = r.deployment.endpoint_name ?? endpointName;
        await api('POST', `/api/endpoints/${enc(endpointName!)}/deployments`, r.deployment.document);
      }
      location.hash = `#/endpoints/${enc(endpointName!)}`;
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="create-h">
      <h1 id="create-h">Create from YAML</h1>
      <p class="muted">Paste or load Azure ML YAML (managedOnlineEndpoint, managedOnlineDeployment). Either or both: a deployment goes under its endpoint_name.</p>
      <YamlBox id="endpoint-yaml" label="Endpoint" value={endpointYaml} onInput={setEndpointYaml} file={endpointFile} onFile={setEndpointFile} result={results.endpoint} uploads={uploads} onUpload={() => {}} />
      <YamlBox
        id="deployment-yaml"
        label="Deployment"
        value={deploymentYaml}
        onInput={setDeploymentYaml}
        file={deploymentFile}
        onFile={setDeploymentFile}
        result={results.deployment}
        uploads={uploads}
        onUpload={(key, ref) => {
          // Several uploads may finish in any order: each adds to the latest set, not to its render's.
          uploadsRef.current = { ...uploadsRef.current, [key]: ref };
          setUploads(uploadsRef.current);
          void validate(uploadsRef.current).catch(setError);
        }}
      />
      <div class="row">
        <button type="button" onClick={() => validate().catch(setError)}>
          Validate
        </button>
        <button type="button" class="primary" disabled={busy} onClick={create}>
          {busy ? 'Creating…' : 'Create'}
        </button>
      </div>
      <ErrorText error={error} />
    </section>
  );
}

// ---- endpoint details

function TrafficEditor(props: { endpoint: Json; deployments: Json[]; canEdit: boolean; onApplied: () => void }) {
  const names = props.deployments.map((d) => String(d.name));
  const [live, setLive] = useState<Record<string, string>>({});
  const [mirror, setMirror] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState('');
  const key = names.join(',') + JSON.stringify(props.endpoint.traffic) + JSON.stringify(props.endpoint.mirror_traffic);
  useEffect(() => {
    setLive(Object.fromEntries(names.map((n) => [n, String(props.endpoint.traffic?.[n] ?? 0)])));
    setMirror(Object.fromEntries(names.map((n) => [n, String(props.endpoint.mirror_traffic?.[n] ?? 0)])));
  }, [key]);
  // Azure's rules, said as you type; the server decides (its reason is shown when it refuses).
  const hints: string[] = [];
  const nums = (m: Record<string, string>) => Object.entries(m).map(([k, v]) => [k, Number(v)] as const);
  for (const [k, v] of [...nums(live), ...nums(mirror)]) if (!Number.isInteger(v) || v < 0 || v > 100) hints.push(`${k}: percentages are whole numbers from 0 to 100`);
  const sum = nums(live).reduce((a, [, v]) => a + (Number.isFinite(v) ? v : 0), 0);
  if (sum !== 0 && sum !== 100) hints.push(`traffic adds up to ${sum}; it must be 0 or 100`);
  for (const [k, v] of nums(mirror)) {
    if (v > 50) hints.push(`${k}: mirror traffic is at most 50%`);
    if (v > 0 && Number(live[k]) > 0) hints.push(`${k}: mirror traffic cannot go to a deployment with live traffic`);
  }
  const apply = async () => {
    setError(null);
    setDone('');
    try {
      const doc = await api<Json>('GET', `/api/endpoints/${enc(props.endpoint.name)}/document`);
      doc.traffic = Object.fromEntries(names.filter((n) => live[n] !== undefined).map((n) => [n, Number(live[n])]));
      doc.mirror_traffic = Object.fromEntries(names.filter((n) => Number(mirror[n]) > 0).map((n) => [n, Number(mirror[n])]));
      await api('PUT', `/api/endpoints/${enc(props.endpoint.name)}`, doc);
      setDone('Traffic applied.');
      props.onApplied();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section aria-labelledby="traffic-h" class="panel">
      <h2 id="traffic-h">Traffic</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">Deployment</th>
            <th scope="col">Traffic %</th>
            <th scope="col">Mirror traffic %</th>
          </tr>
        </thead>
        <tbody>
          {names.map((n) => (
            <tr>
              <th scope="row">{n}</th>
              <td>
                {props.canEdit ? (
                  <input type="number" min={0} max={100} step={1} aria-label={`Traffic for ${n} (percent)`} name={`traffic-${n}`} value={live[n] ?? '0'} onInput={(e) => setLive({ ...live, [n]: (e.target as HTMLInputElement).value })} />
                ) : (
                  (props.endpoint.traffic?.[n] ?? 0)
                )}
              </td>
              <td>
                {props.canEdit ? (
                  <input type="number" min={0} max={50} step={1} aria-label={`Mirror traffic for ${n} (percent)`} name={`mirror-${n}`} value={mirror[n] ?? '0'} onInput={(e) => setMirror({ ...mirror, [n]: (e.target as HTMLInputElement).value })} />
                ) : (
                  (props.endpoint.mirror_traffic?.[n] ?? 0)
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.canEdit ? (
        <>
          {hints.length > 0 ? (
            <ul class="hints" aria-label="Traffic rules">
              {hints.map((h) => (
                <li>{h}</li>
              ))}
            </ul>
          ) : null}
          <button type="button" class="primary" onClick={apply}>
            Apply traffic
          </button>{' '}
          <span role="status">{done}</span>
          <ErrorText error={error} />
        </>
      ) : null}
    </section>
  );
}

function Deployments(props: { endpoint: Json; deployments: Json[]; ready: Record<string, number>; canEdit: boolean; onChanged: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const [counts, setCounts] = useState<Record<string, string>>({});
  const scale = async (name: string) => {
    setError(null);
    try {
      const base = `/api/endpoints/${enc(props.endpoint.name)}/deployments/${enc(name)}`;
      const doc = await api<Json>('GET', `${base}/document`);
      // Scale without typing a count sends the count shown (the current one), not an empty value.
      if (counts[name] !== undefined) doc.instance_count = Number(counts[name]);
      await api('PUT', `${base}?keep_assets=true`, doc);
      props.onChanged();
    } catch (e) {
      setError(e);
    }
  };
  const remove = async (name: string) => {
    setError(null);
    try {
      await api('DELETE', `/api/endpoints/${enc(props.endpoint.name)}/deployments/${enc(name)}`);
      props.onChanged();
    } catch (e) {
      setError(e);
    }
  };
  const model = (d: Json) => (typeof d.model === 'string' ? d.model : d.model?.name ? `${d.model.name}${d.model.version ? `:${d.model.version}` : ''}` : d.model?.path ? 'inline (uploaded)' : '—');
  const env = (d: Json) => (typeof d.environment === 'string' ? d.environment : d.environment?.image ?? (d.environment ? 'inline' : '—'));
  return (
    <section aria-labelledby="deployments-h" class="panel">
      <h2 id="deployments-h">Deployments</h2>
      {props.deployments.length === 0 ? <p>No deployments yet.</p> : null}
      {props.deployments.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Provisioning state</th>
              <th scope="col">Instances ready / desired</th>
              <th scope="col">Instance type</th>
              <th scope="col">Environment</th>
              <th scope="col">Model</th>
              {props.canEdit ? <th scope="col">Actions</th> : null}
            </tr>
          </thead>
          <tbody>
            {props.deployments.map((d) => (
              <tr data-deployment={d.name}>
                <th scope="row">{d.name}</th>
                <td>
                  <State state={d.provisioning_state} />
                  {d.error?.message ? <div class="error small">{d.error.message}</div> : null}
                </td>
                <td class="num">
                  {props.ready[d.name] ?? 0} / {d.instance_count ?? '—'}
                </td>
                <td>{d.instance_type ?? '—'}</td>
                <td class="mono">{env(d)}</td>
                <td class="mono">{model(d)}</td>
                {props.canEdit ? (
                  <td>
                    <label>
                      <span class="sr-only">Instance count for {d.name}</span>
                      <input type="number" min={0} step={1} size={4} aria-label={`Instance count for ${d.name}`} value={counts[d.name] ?? String(d.instance_count ?? 1)} onInput={(e) => setCounts({ ...counts, [d.name]: (e.target as HTMLInputElement).value })} />
                    </label>{' '}
                    <button type="button" onClick={() => scale(d.name)}>
                      Scale
                    </button>{' '}
                    <ConfirmButton label="Delete" danger question={`Delete deployment ${d.name}?`} onConfirm={() => remove(d.name)} />
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <ErrorText error={error} />
    </section>
  );
}

function TestTab(props: { endpoint: Json; deployments: Json[] }) {
  const [body, setBody] = useState('{"data": [[1,2,3,4,5,6,7,8,9,10]]}');
  const [deployment, setDeployment] = useState('');
  const [result, setResult] = useState<{ status: number; headers: Record<string, string>; body: string; ms: number; truncated_at_bytes?: number } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const send = async () => {
    setError(null);
    setBusy(true);
    try {
      setResult(await api('POST', `/studio/v1/endpoints/${enc(props.endpoint.name)}/test`, { body, ...(deployment ? { deployment } : {}) }));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="test-h">
      <h2 id="test-h">Test</h2>
      <label class="block">
        Request body (JSON)
        <textarea rows={8} value={body} spellcheck={false} onInput={(e) => setBody((e.target as HTMLTextAreaElement).value)} />
      </label>
      <div class="row">
        <label>
          Or load a file{' '}
          <input
            type="file"
            onChange={async (e) => {
              const f = (e.target as HTMLInputElement).files?.[0];
              if (f) setBody(await f.text());
            }}
          />
        </label>
        <label>
          Deployment{' '}
          <select value={deployment} onChange={(e) => setDeployment((e.target as HTMLSelectElement).value)}>
            <option value="">The endpoint's traffic rules</option>
            {props.deployments.map((d) => (
              <option value={d.name}>{d.name} (azureml-model-deployment)</option>
            ))}
          </select>
        </label>
        <button type="button" class="primary" disabled={busy} onClick={send}>
          {busy ? 'Sending…' : 'Send request'}
        </button>
      </div>
      <ErrorText error={error} />
      {result ? (
        <div class="result" aria-live="polite">
          <p>
            Status <strong data-testid="test-status">{result.status}</strong> in <span data-testid="test-ms">{result.ms}</span> ms, answered by deployment{' '}
            <strong data-testid="test-deployment">{result.headers['azureml-model-deployment'] ?? '—'}</strong>
          </p>
          <h3>Body</h3>
          {result.truncated_at_bytes ? <p role="status">The answer is longer than {result.truncated_at_bytes} bytes: only the start is shown.</p> : null}
          <pre class="pre" data-testid="test-body">
            {result.body}
          </pre>
          <details>
            <summary>Response headers</summary>
            <pre class="pre">{Object.entries(result.headers).map(([k, v]) => `${k}: ${v}\n`)}</pre>
          </details>
        </div>
      ) : null}
    </section>
  );
}

function Secret(props: { label: string; value: string }) {
  const [shown, setShown] = useState(false);
  return (
    <div class="row">
      <span class="label">{props.label}</span>
      <code class="secret" data-testid={`secret-${props.label}`}>
        {shown ? props.value : '•'.repeat(Math.min(32, props.value.length))}
      </code>
      <button type="button" aria-pressed={shown} onClick={() => setShown(!shown)}>
        {shown ? 'Hide' : 'Show'}
      </button>
      <CopyButton text={props.value} label={`Copy ${props.label}`} />
    </div>
  );
}

function Consume(props: { endpoint: Json; canEdit: boolean }) {
  const e = props.endpoint;
  const creds = usePoll(() => (props.canEdit ? api<Json>('POST', `/api/endpoints/${enc(e.name)}/credentials`) : Promise.resolve(null)), [e.name, props.canEdit]);
  const [error, setError] = useState<unknown>(null);
  const uri = String(e.scoring_uri);
  const regenerate = async (keyType: string) => {
    setError(null);
    try {
      await api('POST', `/api/endpoints/${enc(e.name)}/regenerate-keys`, { key_type: keyType });
      creds.reload();
    } catch (x) {
      setError(x);
    }
  };
  const curl = `curl -X POST "${uri}" \\\n  -H "Authorization: Bearer $ENDPOINT_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d @sample-request.json`;
  const python = `import json, os, urllib.request\n\nreq = urllib.request.Request(\n    "${uri}",\n    data=json.dumps({"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}).encode(),\n    headers={"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["ENDPOINT_KEY"]},\n)\nprint(urllib.request.urlopen(req).read().decode())`;
  const js = `const res = await fetch("${uri}", {\n  method: "POST",\n  headers: { "Content-Type": "application/json", Authorization: \`Bearer \${process.env.ENDPOINT_KEY}\` },\n  body: JSON.stringify({ data: [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]] }),\n});\nconsole.log(await res.text());`;
  const c = creds.value;
  return (
    <section aria-labelledby="consume-h">
      <h2 id="consume-h">Consume</h2>
      <div class="row">
        <span class="label">Scoring URI</span>
        <code>{uri}</code>
        <CopyButton text={uri} label="Copy scoring URI" />
      </div>
      <div class="row">
        <span class="label">OpenAPI URI</span>
        <code>{String(e.openapi_uri)}</code>
      </div>
      <div class="row">
        <span class="label">Authentication</span>
        <span>{e.auth_mode}</span>
      </div>
      {props.canEdit ? (
        <div aria-label="Keys" role="group">
          <ErrorText error={creds.error} />
          {c?.primaryKey ? <Secret label="Primary key" value={c.primaryKey} /> : null}
          {c?.secondaryKey ? <Secret label="Secondary key" value={c.secondaryKey} /> : null}
          {c?.accessToken ? <Secret label="Token" value={c.accessToken} /> : null}
          {c?.primaryKey ? (
            <div class="row">
              <ConfirmButton label="Regenerate primary key" question="Regenerate the primary key? Clients using it stop working." onConfirm={() => regenerate('primary')} />
              <ConfirmButton label="Regenerate secondary key" question="Regenerate the secondary key? Clients using it stop working." onConfirm={() => regenerate('secondary')} />
            </div>
          ) : null}
          <ErrorText error={error} />
        </div>
      ) : (
        <p class="muted">Keys and tokens are shown to contributors and owners only.</p>
      )}
      <h3>curl</h3>
      <pre class="pre">{curl}</pre>
      <CopyButton text={curl} label="Copy curl snippet" />
      <h3>Python</h3>
      <pre class="pre">{python}</pre>
      <CopyButton text={python} label="Copy Python snippet" />
      <h3>JavaScript</h3>
      <pre class="pre">{js}</pre>
      <CopyButton text={js} label="Copy JavaScript snippet" />
    </section>
  );
}

function Logs(props: { endpoint: Json; deployments: Json[] }) {
  const [deployment, setDeployment] = useState(String(props.deployments[0]?.name ?? ''));
  const [container, setContainer] = useState('inference-server');
  const [lines, setLines] = useState(200);
  const [follow, setFollow] = useState(true);
  const [text, setText] = useState('');
  const [error, setError] = useState<unknown>(null);
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    if (!deployment) return;
    const abort = new AbortController();
    setText('');
    setError(null);
    void (async () => {
      try {
        const res = await fetch(`/api/endpoints/${enc(props.endpoint.name)}/deployments/${enc(deployment)}/logs?container=${container}&lines=${lines}${follow ? '&follow=true' : ''}`, { signal: abort.signal, credentials: 'same-origin' });
        if (!res.ok) {
          const b = await res.json().catch(() => ({}));
          throw new ApiError(res.status, b.error?.code ?? `HTTP ${res.status}`, b.error?.message ?? '');
        }
        const reader = res.body!.getReader();
        const dec = new TextDecoder();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          // A long follow keeps the last megabyte on the page.
          setText((t) => (t + dec.decode(value, { stream: true })).slice(-1_000_000));
        }
      } catch (e) {
        if (!abort.signal.aborted) setError(e);
      }
    })();
    return () => abort.abort();
  }, [deployment, container, lines, follow, props.endpoint.name]);
  useEffect(() => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [text]);
  return (
    <section aria-labelledby="logs-h">
      <h2 id="logs-h">Logs</h2>
      <div class="row">
        <label>
          Deployment{' '}
          <select value={deployment} onChange={(e) => setDeployment((e.target as HTMLSelectElement).value)}>
            {props.deployments.map((d) => (
              <option value={d.name}>{d.name}</option>
            ))}
          </select>
        </label>
        <label>
          Container{' '}
          <select value={container} onChange={(e) => setContainer((e.target as HTMLSelectElement).value)}>
            <option value="inference-server">inference-server</option>
            <option value="storage-initializer">storage-initializer</option>
          </select>
        </label>
        <label>
          Lines <input type="number" min={0} step={100} size={6} value={lines} onChange={(e) => setLines(Number((e.target as HTMLInputElement).value))} />
        </label>
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow((e.target as HTMLInputElement).checked)} /> Follow live
        </label>
      </div>
      <ErrorText error={error} />
      <pre class="log" ref={pre} tabIndex={0} aria-label="Log text" data-testid="log-text">
        {text}
      </pre>
    </section>
  );
}

const TABS: Array<[string, string]> = [
  ['', 'Details'],
  ['test', 'Test'],
  ['consume', 'Consume'],
  ['logs', 'Logs'],
  ['monitoring', 'Monitoring'],
];

function EndpointPage(props: { name: string; tab: string; me: Me }) {
  const canEdit = props.me.role !== 'reader';
  const ep = usePoll(() => api<Json>('GET', `/api/endpoints/${enc(props.name)}`), [props.name], 2000);
  const deps = usePoll(() => api<Json[]>('GET', `/api/endpoints/${enc(props.name)}/deployments`), [props.name], 2000);
  const summary = usePoll(() => api<{ ready_instances: Record<string, Record<string, number>> }>('GET', '/studio/v1/summary'), [], 2000);
  const [error, setError] = useState<unknown>(null);
  const e = ep.value;
  const deployments = deps.value ?? [];
  const reload = () => {
    ep.reload();
    deps.reload();
  };
  return (
    <section aria-labelledby="endpoint-h">
      <p>
        <a href="#/">← Endpoints</a>
      </p>
      <div class="row">
        <h1 id="endpoint-h">{props.name}</h1>
        {e ? <State state={e.provisioning_state} /> : null}
      </div>
      <ErrorText error={ep.error} />
      <nav aria-label="Endpoint pages" class="tabs">
        {TABS.filter(([t]) => canEdit || t !== 'test').map(([t, label]) => (
          <a href={`#/endpoints/${enc(props.name)}${t ? `/${t}` : ''}`} aria-current={props.tab === t ? 'page' : undefined}>
            {label}
          </a>
        ))}
      </nav>
      {e && props.tab === '' ? (
        <>
          <dl class="facts">
            <dt>Scoring URI</dt>
            <dd class="mono">{e.scoring_uri}</dd>
            <dt>Auth mode</dt>
            <dd>{e.auth_mode}</dd>
            <dt>Traffic</dt>
            <dd data-testid="traffic">{trafficText(e.traffic)}</dd>
            <dt>Mirror traffic</dt>
            <dd>{trafficText(e.mirror_traffic)}</dd>
          </dl>
          <Deployments endpoint={e} deployments={deployments} ready={summary.value?.ready_instances?.[props.name] ?? {}} canEdit={canEdit} onChanged={reload} />
          {deployments.length > 0 ? <TrafficEditor endpoint={e} deployments={deployments} canEdit={canEdit} onApplied={reload} /> : null}
          {canEdit ? (
            <section class="panel" aria-label="Delete endpoint">
              <ConfirmButton
                label="Delete endpoint"
                danger
                question={`Delete endpoint ${props.name} and all its deployments?`}
                onConfirm={async () => {
                  try {
                    await api('DELETE', `/api/endpoints/${enc(props.name)}`);
                    location.hash = '#/';
                  } catch (x) {
                    setError(x);
                  }
                }}
              />
              <ErrorText error={error} />
            </section>
          ) : null}
        </>
      ) : null}
      {e && props.tab === 'test' && canEdit ? <TestTab endpoint={e} deployments={deployments} /> : null}
      {e && props.tab === 'consume' ? <Consume endpoint={e} canEdit={canEdit} /> : null}
      {e && props.tab === 'logs' ? deployments.length > 0 ? <Logs endpoint={e} deployments={deployments} /> : <p>No deployments yet.</p> : null}
      {e && props.tab === 'monitoring' ? <Monitoring endpoint={props.name} /> : null}
    </section>
  );
}

// ---- models and environments

function Assets(props: { kind: 'models' | 'environments'; me: Me }) {
  const canEdit = props.me.role !== 'reader';
  const [archived, setArchived] = useState(false);
  const list = usePoll(() => api<Json[]>('GET', `/api/${props.kind}${archived ? '?include_archived=true' : ''}`), [props.kind, archived]);
  const [open, setOpen] = useState('');
  const versions = usePoll(() => (open ? api<Json[]>('GET', `/api/${props.kind}?name=${enc(open)}&include_archived=true`) : Promise.resolve([])), [props.kind, open]);
  const [error, setError] = useState<unknown>(null);
  const title = props.kind === 'models' ? 'Models' : 'Environments';
  const setStage = async (name: string, version: string, verb: 'archive' | 'restore') => {
    setError(null);
    try {
      await api('POST', `/api/${props.kind}/${enc(name)}/versions/${enc(version)}/${verb}`);
      versions.reload();
      list.reload();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section aria-labelledby="assets-h">
      <h1 id="assets-h">{title}</h1>
      <label>
        <input type="checkbox" checked={archived} onChange={(e) => setArchived((e.target as HTMLInputElement).checked)} /> Include archived
      </label>
      <ErrorText error={list.error ?? error} />
      {list.value && list.value.length === 0 ? <p>None registered.</p> : null}
      {list.value && list.value.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Latest version</th>
              <th scope="col">Description</th>
              <th scope="col">Versions</th>
            </tr>
          </thead>
          <tbody>
            {list.value.map((a) => (
              <tr>
                <th scope="row">{a.name}</th>
                <td>{a.latest_version ?? a.version}</td>
                <td>{a.description ?? ''}</td>
                <td>
                  <button type="button" aria-expanded={open === a.name} onClick={() => setOpen(open === a.name ? '' : a.name)}>
                    {open === a.name ? 'Hide versions' : 'Versions'}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {open && versions.value ? (
        <section class="panel" aria-label={`Versions of ${open}`}>
          <h2>Versions of {open}</h2>
          <table>
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Stage</th>
                <th scope="col">Created</th>
                {canEdit ? <th scope="col">Actions</th> : null}
              </tr>
            </thead>
            <tbody>
              {versions.value.map((v) => (
                <tr>
                  <th scope="row">{v.version}</th>
                  <td>{v.stage}</td>
                  <td>{v.creation_context?.created_at ?? ''}</td>
                  {canEdit ? (
                    <td>
                      {v.stage === 'Archived' ? (
                        <button type="button" onClick={() => setStage(open, v.version, 'restore')}>
                          Restore
                        </button>
                      ) : (
                        <button type="button" onClick={() => setStage(open, v.version, 'archive')}>
                          Archive
                        </button>
                      )}
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ) : null}
    </section>
  );
}

// ---- the frame

function App() {
  const parts = useHash();
  const me = usePoll(() => api<Me>('GET', '/api/whoami'), []);
  useEffect(() => {
    const again = () => me.reload();
    addEventListener(SIGNED_OUT, again);
    return () => removeEventListener(SIGNED_OUT, again);
  }, []);
  if (me.error) {
    const e = me.error as ApiError;
    return (
      <main id="main">
        <h1>infergate studio</h1>
        {e.status === 401 ? (
          <p>
            Not signed in. Run <code>infergate studio</code> on a machine with the CLI and open the link it prints.
          </p>
        ) : (
          <ErrorText error={e} />
        )}
      </main>
    );
  }
  if (!me.value) return <main id="main" aria-busy="true" />;
  const [page, name, tab] = parts;
  const signOut = async () => {
    await api('POST', '/studio/v1/sign-out').catch(() => {});
    location.reload();
  };
  let body;
  if (page === 'endpoints' && name) body = <EndpointPage name={name} tab={tab ?? ''} me={me.value} />;
  else if (page === 'create' && me.value.role !== 'reader') body = <Create />;
  else if (page === 'models' || page === 'environments') body = <Assets kind={page} me={me.value} />;
  else body = <Endpoints me={me.value} />;
  const current = page === 'models' || page === 'environments' ? page : 'endpoints';
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>
        Skip to content
      </a>
      <header>
        <span class="brand">infergate studio</span>
        <nav aria-label="Main">
          <a href="#/" aria-current={current === 'endpoints' ? 'page' : undefined}>
            Endpoints
          </a>
          <a href="#/models" aria-current={current === 'models' ? 'page' : undefined}>
            Models
          </a>
          <a href="#/environments" aria-current={current === 'environments' ? 'page' : undefined}>
            Environments
          </a>
        </nav>
        <span class="who" data-testid="role">
          {me.value.role}
        </span>
        <button type="button" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {body}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
