// The `infergate` command: `az ml online-endpoint` / `online-deployment` verbs and flags (contract §2),
// so users' scripts run with `az` replaced by `infergate`; a leading `ml` word is optional. Plus
// `infergate server`, which runs the platform.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { Command, CommanderError, Option } from 'commander';
import { Client, type Json } from '../client/index.js';
import { errorOf, InfergateError, isErrorCode } from '../errors/index.js';
import { applyOverrides, loadDeploymentYaml, loadEndpointYaml, parseDeploymentObject, parseEndpointObject, dumpDeployment, dumpEndpoint, storedPathsOf, type LoadResult, type DeploymentSpec } from '../spec/index.js';
import { readUserFileSync, REQUEST_FILE_LIMIT } from '../util/files.js';
import { trustedFetch } from '../util/tls.js';
import { defaultWorkspace } from '../util/workspace.js';
import { localServer } from './local.js';
import { collect, common, emit, fail, LOG_FORMATS, LOG_LEVELS, print, readYaml, serverClient, serverLog, type CommonOptions, type LogFormat, type LogLevel } from './common.js';
import { Progress } from './progress.js';
import { serveCommand } from './serve.js';
import { assetCommands } from './assets.js';
import { accessCommands } from './tokens.js';
import { monitorCommands } from './monitor.js';
import { computeCommands } from './compute.js';
import { studioCommand } from './studio.js';
import { routerCommand } from './router.js';
import { uploadDeployment, withUploads } from './uploads.js';

interface Common extends CommonOptions {
  local?: boolean;
}

/** The control plane to talk to: the local one for --local (started on demand), else the workspace's server. */
const client = async (o: Common): Promise<Client> => {
  if (!o.local || o.server) return serverClient(o);
  const local = await localServer(o.workspace);
  return new Client(local.url, local.token); // the local server's own owner token, whatever INFERGATE_TOKEN says
};

/** `"blue=90 green=10"` → `{ blue: 90, green: 10 }` (az's --traffic / --mirror-traffic syntax). */
export function parseTrafficFlag(value: string, flag: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pair of value.split(/[\s,]+/).filter(Boolean)) {
    const m = /^([^=]+)=(-?\d+)$/.exec(pair);
    if (!m) throw errorOf('TrafficFlagInvalid', { flag, pair });
    out[m[1]] = Number(m[2]);
  }
  return out;
}

/**
 * A flag's parser for a whole number >= min: anything else is refused before the command runs
 * (parseInt would take `--port 80x` as 80 and `--lines 1e3` as 1).
 */
export function wholeNumber(flag: string, min: number): (v: string) => number {
  return (v) => {
    const n = /^\s*\d+\s*$/.test(v) ? Number(v) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min) throw errorOf('WholeNumberInvalid', { flag, min, value: v });
    return n;
  };
}

/** A TCP port flag: 0 (any free port) to 65535. */
export function portNumber(flag: string): (v: string) => number {
  const parse = wholeNumber(flag, 0);
  return (v) => {
    const n = parse(v);
    if (n > 65535) throw errorOf('PortInvalid', { flag, value: v });
    return n;
  };
}

async function confirm(question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) throw errorOf('ConfirmationNeeded');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question(`${question} (y/n): `);
  rl.close();
  if (!/^y(es)?$/i.test(answer.trim())) throw errorOf('OperationCancelled');
}

const TERMINAL = new Set(['Succeeded', 'Failed', 'Canceled']);

/** Polls until the resource leaves Creating/Updating/Scaling (or is gone, for deletes), with progress on a TTY. */
async function waitFor(what: string, get: () => Promise<Json | undefined>, until: 'terminal' | 'gone'): Promise<Json | undefined> {
  const progress = new Progress(what);
  try {
    for (;;) {
      let current: Json | undefined;
      try {
        current = await get();
      } catch (e) {
        if (until === 'gone' && e instanceof InfergateError && (e.code === 'EndpointNotFound' || e.code === 'DeploymentNotFound')) return undefined;
        throw e;
      }
      const state = String(current?.provisioning_state ?? '');
      progress.update(state);
      if (until === 'terminal' && TERMINAL.has(state)) return current;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    progress.done();
  }
}

/** `online-deployment create --dry-run`: the objects on the endpoint's compute, rendered here (issue 17). */
async function dryRun(c: Client, spec: DeploymentSpec): Promise<unknown> {
  const endpoint = await c.getEndpoint(spec.endpointName);
  const ref = typeof endpoint.compute === 'string' ? endpoint.compute : undefined;
  if (ref === undefined) throw errorOf('DryRunNeedsCompute', { endpoint: spec.endpointName });
  const name = ref.trim().replace(/^azureml:/i, '').replace(/^.*\/computes\//i, '');
  const compute = await c.request<{ name: string; namespace: string; properties?: { registry?: string | null } }>('GET', `/api/computes/${encodeURIComponent(name)}`);
  const { workspace } = await c.info();
  const { renderDryRun } = await import('../main/kubernetes.js');
  const registry = compute.properties?.registry ?? undefined;
  return renderDryRun(spec, { name: compute.name, namespace: compute.namespace, ...(registry ? { registry } : {}) }, { workspaceName: workspace, controlUrl: process.env.INFERGATE_CONTROL_URL ?? c.baseUrl });
}

function failedError(resource: Json, what: string): InfergateError {
  const err = resource.error as { code?: string; message?: string } | undefined;
  const code = err?.code && isErrorCode(err.code) ? err.code : 'ResourceNotReady';
  return new InfergateError(code, `${what} failed: ${err?.message ?? 'see get-logs'}`);
}

function endpointCommands(program: Command): void {
  const ep = program.command('online-endpoint').description('Manage online endpoints (az ml online-endpoint)');

  common(ep.command('create').description('Create an endpoint'))
    .option('-n, --name <name>', 'endpoint name (overrides the file)')
    .option('-f, --file <yaml>', 'endpoint YAML (Azure ML CLI v2 schema)')
    .addOption(new Option('--auth-mode <mode>', 'key or aml_token').choices(['key', 'aml_token', 'aad_token']))
    .option('--set <key=value...>', 'override a YAML key before validation', collect)
    .option('--no-wait', 'do not wait for the operation to finish')
    .option('--local', 'local endpoint: no key, its own http://localhost:<port>/score; containers when Docker runs, else processes')
    .action(async (o: Common & { name?: string; file?: string; authMode?: string; set?: string[]; wait: boolean; local?: boolean }) => {
      const overrides = [...(o.set ?? []), ...(o.name ? [`name=${o.name}`] : []), ...(o.authMode ? [`auth_mode=${o.authMode}`] : [])];
      let result;
      if (o.file) {
        const { text, path } = readYaml(o.file);
        result = loadEndpointYaml(text, path, overrides);
      } else {
        if (!o.name) throw errorOf('EndpointNameMissing');
        const doc: Record<string, unknown> = {};
        const problems = applyOverrides(doc, overrides);
        result = problems.length ? { problems } : parseEndpointObject(doc, { source: '--name/--set', baseDir: process.cwd() });
      }
      if (!result.spec || result.problems.length) fail(result.problems, 'The endpoint');
      const c = await client(o);
      const created = await c.createEndpoint(dumpEndpoint(result.spec));
      const final = o.wait ? await waitFor(`Creating endpoint ${result.spec.name}`, () => c.getEndpoint(result.spec!.name), 'terminal') : created;
      if (final?.provisioning_state === 'Failed') throw failedError(final, `Endpoint ${result.spec.name}`);
      emit(final, o);
    });

  common(ep.command('show').description('Show an endpoint'))
    .requiredOption('-n, --name <name>', 'endpoint name')
    .option('--local', 'local endpoint: no key, its own http://localhost:<port>/score; containers when Docker runs, else processes')
    .action(async (o: Common & { name: string; local?: boolean }) => {
      emit(await (await client(o)).getEndpoint(o.name), o);
    });

  common(ep.command('list').description('List endpoints'))
    .option('--local', 'local endpoints')
    .action(async (o: Common & { local?: boolean }) => {
      emit(await (await client(o)).listEndpoints(), o);
    });

  common(ep.command('update').description("Update an endpoint's description, tags, traffic, mirror traffic or auth mode"))
    .requiredOption('-n, --name <name>', 'endpoint name')
    .option('-f, --file <yaml>', 'endpoint YAML with the new settings')
    .option('-r, --traffic <rules>', 'live traffic, e.g. "blue=90 green=10" (replaces the whole map)')
    .option('--mirror-traffic <rules>', 'mirror traffic, e.g. "green=10"; "green=0" turns it off')
    .option('--set <key=value...>', 'override a key', collect)
    .option('--no-wait', 'do not wait for the operation to finish')
    .option('--local', 'local endpoint: no key, its own http://localhost:<port>/score; containers when Docker runs, else processes')
    .action(async (o: Common & { name: string; file?: string; traffic?: string; mirrorTraffic?: string; set?: string[]; wait: boolean; local?: boolean }) => {
      const c = await client(o);
      let doc: Record<string, unknown>;
      let baseDir = process.cwd();
      if (o.file) {
        const { text, path } = readYaml(o.file);
        const loaded = loadEndpointYaml(text, path, [`name=${o.name}`]);
        if (!loaded.spec || loaded.problems.length) fail(loaded.problems, 'The endpoint');
        doc = dumpEndpoint(loaded.spec);
        baseDir = resolve(path, '..');
      } else {
        doc = await c.endpointDocument(o.name);
      }
      const problems = applyOverrides(doc, o.set ?? []);
      if (problems.length) fail(problems, 'The endpoint');
      if (o.traffic !== undefined) doc.traffic = parseTrafficFlag(o.traffic, '--traffic');
      if (o.mirrorTraffic !== undefined) doc.mirror_traffic = parseTrafficFlag(o.mirrorTraffic, '--mirror-traffic');
      const parsed = parseEndpointObject(doc, { source: o.file ?? `endpoint ${o.name}`, baseDir });
      if (!parsed.spec || parsed.problems.length) fail(parsed.problems, 'The endpoint');
      const updated = await c.updateEndpoint(o.name, dumpEndpoint(parsed.spec));
      const final = o.wait ? await waitFor(`Updating endpoint ${o.name}`, () => c.getEndpoint(o.name), 'terminal') : updated;
      emit(final, o);
    });

  common(ep.command('delete').description('Delete an endpoint and all its deployments'))
    .requiredOption('-n, --name <name>', 'endpoint name')
    .option('-y, --yes', 'do not prompt for confirmation')
    .option('--no-wait', 'do not wait for the operation to finish')
    .option('--local', 'local endpoint: no key, its own http://localhost:<port>/score; containers when Docker runs, else processes')
    .action(async (o: Common & { name: string; yes?: boolean; wait: boolean; local?: boolean }) => {
      const c = await client(o);
      await c.getEndpoint(o.name); // a missing endpoint is an error before any prompt
      await confirm(`Are you sure you want to delete endpoint '${o.name}' and all its deployments?`, o.yes);
      await c.deleteEndpoint(o.name);
      if (o.wait) await waitFor(`Deleting endpoint ${o.name}`, () => c.getEndpoint(o.name), 'gone');
    });

  common(ep.command('invoke').description("Send a request file to the endpoint's scoring URI"))
    .requiredOption('-n, --name <name>', 'endpoint name')
    .requiredOption('-r, --request-file <file>', 'JSON request body')
    .option('-d, --deployment-name <name>', 'send to this deployment (azureml-model-deployment header)')
    .option('--local', 'local endpoint: no key, its own http://localhost:<port>/score; containers when Docker runs, else processes')
    .action(async (o: Common & { name: string; requestFile: string; deploymentName?: string; local?: boolean }) => {
      // A regular file of at most the router's body limit (util/files.ts): PathNotReadable, FileTooLarge,
      // or RequestFileInvalid when it is missing or not JSON.
      const body = readUserFileSync(resolve(o.requestFile), { what: '--request-file', limit: REQUEST_FILE_LIMIT, missing: 'RequestFileInvalid' }).toString('utf8');
      try {
        JSON.parse(body);
      } catch (e) {
        throw errorOf('RequestFileNotJson', { file: o.requestFile, reason: (e as Error).message });
      }
      const c = await client(o);
      const endpoint = await c.getEndpoint(o.name);
      if (o.deploymentName) {
        const deployments = await c.listDeployments(o.name);
        if (deployments.length === 0) throw errorOf('NoDeploymentToInvoke');
        if (!deployments.some((d) => String(d.name).toLowerCase() === o.deploymentName!.toLowerCase())) {
          throw errorOf('InvokeDeploymentNotFound', { deployment: o.deploymentName });
        }
      }
      // Local endpoints take no credentials (contract §4.1).
      const creds = o.local ? undefined : await c.credentials(o.name);
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        ...(creds ? { authorization: `Bearer ${creds.primaryKey ?? creds.accessToken}` } : {}),
        ...(o.deploymentName ? { 'azureml-model-deployment': o.deploymentName } : {}),
      };
      let res: Response;
      try {
        res = await trustedFetch(String(endpoint.scoring_uri), { method: 'POST', headers, body });
      } catch (e) {
        throw errorOf('ScoringUriUnreachable', { uri: String(endpoint.scoring_uri), reason: (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message });
      }
      const text = await res.text();
      if (res.status !== 200 && res.status !== 201) {
        let message = text;
        try {
          const j = JSON.parse(text) as { message?: string; error?: { message?: string } };
          message = j.message ?? j.error?.message ?? text;
        } catch {
          /* plain text */
        }
        const modelCode = res.headers.get('ms-azureml-model-error-statuscode');
        throw modelCode ? errorOf('ScoringFailedInModel', { status: res.status, modelStatus: modelCode, message }) : errorOf('ScoringFailed', { status: res.status, message });
      }
      // az prints the response body as a JSON string (contract §2.6).
      emit(text, o);
    });

  common(ep.command('get-credentials').description('Keys (key auth) or a token (aml_token auth)'))
    .requiredOption('-n, --name <name>', 'endpoint name')
    .addOption(new Option('--local').hideHelp())
    .action(async (o: Common & { name: string }) => {
      if (o.local) throw errorOf('LocalEndpointNoKeys');
      emit(await (await client(o)).credentials(o.name), o);
    });

  common(ep.command('regenerate-keys').description('Regenerate the primary or secondary key'))
    .requiredOption('-n, --name <name>', 'endpoint name')
    .option('--key-type <type>', "primary or secondary; token: rotate an aml_token endpoint's signing key (old tokens stop working)", 'primary')
    .option('--no-wait', 'do not wait for the operation to finish')
    .action(async (o: Common & { name: string; keyType: string }) => {
      await (await client(o)).regenerateKeys(o.name, o.keyType);
    });
}

function deploymentCommands(program: Command): void {
  const dep = program.command('online-deployment').description('Manage deployments under an endpoint (az ml online-deployment)');
  const endpointOption = () => new Option('-e, --endpoint-name <name>', 'endpoint name');

  common(dep.command('create').description('Create a deployment'))
    .option('-n, --name <name>', 'deployment name (overrides the file)')
    .addOption(endpointOption())
    .requiredOption('-f, --file <yaml>', 'deployment YAML (Azure ML CLI v2 schema)')
    .option('--set <key=value...>', 'override a YAML key before validation', collect)
    .option('--all-traffic', 'send 100% of the traffic to this deployment once it is created')
    .option('--no-wait', 'do not wait for the operation to finish')
    .option('--skip-script-validation', 'accepted for az compatibility')
    .option('--local', 'local deployment (creates the local endpoint if missing)')
    .option('--dry-run', "print the Kubernetes objects the deployment would create on its endpoint's compute (a v1 List; -o yaml for kubectl), create nothing")
    .action(async (o: Common & { name?: string; endpointName?: string; file: string; set?: string[]; allTraffic?: boolean; wait: boolean; local?: boolean; dryRun?: boolean }) => {
      if (o.allTraffic && !o.wait) throw errorOf('AllTrafficWithoutWait');
      const { text, path } = readYaml(o.file);
      const overrides = [...(o.set ?? []), ...(o.name ? [`name=${o.name}`] : []), ...(o.endpointName ? [`endpoint_name=${o.endpointName}`] : [])];
      const loaded = loadDeploymentYaml(text, path, overrides);
      if (!loaded.spec || loaded.problems.length) fail(loaded.problems, 'The deployment');
      const spec = loaded.spec;
      const c = await client(o);
      if (o.dryRun) return emit(await dryRun(c, spec), o);
      try {
        await c.getEndpoint(spec.endpointName); // Azure checks the endpoint first, before uploading anything
      } catch (e) {
        // `create --local` creates the endpoint when it does not exist (Azure's local mode, contract §2.2).
        if (!(o.local && e instanceof InfergateError && e.code === 'EndpointNotFound')) throw e;
        await c.createEndpoint({ name: spec.endpointName });
      }
      // As az uploads local files to the workspace's storage: the server reads no path the CLI names.
      const created = await c.createDeployment(spec.endpointName, dumpDeployment(await withUploads(c, (up) => uploadDeployment(spec, up))));
      if (!o.wait) return emit(created, o);
      const final = (await waitFor(`Creating deployment ${spec.name}`, () => c.getDeployment(spec.endpointName, spec.name), 'terminal'))!;
      if (final.provisioning_state === 'Failed') throw failedError(final, `Deployment ${spec.name}`);
      if (o.allTraffic) {
        const doc = await c.endpointDocument(spec.endpointName);
        doc.traffic = { [spec.name]: 100 };
        await c.updateEndpoint(spec.endpointName, doc);
        await waitFor(`Setting traffic of ${spec.endpointName}`, () => c.getEndpoint(spec.endpointName), 'terminal');
      }
      emit(final, o);
    });

  common(dep.command('update').description('Update a deployment (scale, code, model, environment, settings)'))
    .option('-n, --name <name>', 'deployment name')
    .addOption(endpointOption())
    .option('-f, --file <yaml>', 'deployment YAML with the new settings')
    .option('--set <key=value...>', 'override a key, e.g. instance_count=2', collect)
    .option('--no-wait', 'do not wait for the operation to finish')
    .option('--local', 'local deployment (creates the local endpoint if missing)')
    .action(async (o: Common & { name?: string; endpointName?: string; file?: string; set?: string[]; wait: boolean; local?: boolean }) => {
      const c = await client(o);
      let doc: Record<string, unknown>;
      let source: string;
      let stored: Map<string, string> | undefined;
      if (o.file) {
        const { text, path } = readYaml(o.file);
        const overrides = [...(o.set ?? []), ...(o.name ? [`name=${o.name}`] : []), ...(o.endpointName ? [`endpoint_name=${o.endpointName}`] : [])];
        const loaded = loadDeploymentYaml(text, path, overrides);
        if (!loaded.spec || loaded.problems.length) fail(loaded.problems, 'The deployment');
        doc = dumpDeployment(loaded.spec);
        source = path;
      } else {
        if (!o.name || !o.endpointName) throw errorOf('DeploymentNamesMissing');
        doc = await c.deploymentDocument(o.endpointName, o.name);
        stored = storedPathsOf(doc);
        const problems = applyOverrides(doc, o.set ?? []);
        if (problems.length) fail(problems, 'The deployment');
        source = `deployment ${o.endpointName}/${o.name}`;
      }
      // Without -f, what the server stored is sent back as it is (as az sends the deployment it read):
      // paths it recorded are neither opened nor uploaded again, so a scale stays a scale even where the
      // folder has changed or is not on this machine. Only a path given anew (--set code_configuration.code=./x)
      // is read and uploaded.
      const keptAsStored = stored === undefined ? undefined : tryParse(() => parseDeploymentObject(doc, { source, paths: 'uploads', storedPaths: stored }));
      const parsed = keptAsStored ?? parseDeploymentObject(doc, { source });
      if (!parsed.spec || parsed.problems.length) fail(parsed.problems, 'The deployment');
      // Local paths (from -f, or --set code_configuration.code=...) are uploaded; references are kept.
      const spec = keptAsStored !== undefined ? parsed.spec! : await withUploads(c, (up) => uploadDeployment(parsed.spec!, up));
      // Without -f, as az does, the deployment read back is sent: its code and assets are not re-resolved.
      const updated = await c.updateDeployment(spec.endpointName, spec.name, dumpDeployment(spec), !o.file);
      if (!o.wait) return emit(updated, o);
      const final = (await waitFor(`Updating deployment ${spec.name}`, () => c.getDeployment(spec.endpointName, spec.name), 'terminal'))!;
      if (final.provisioning_state === 'Failed') throw failedError(final, `Deployment ${spec.name}`);
      emit(final, o);
    });

  common(dep.command('show').description('Show a deployment'))
    .requiredOption('-n, --name <name>', 'deployment name')
    .addOption(endpointOption().makeOptionMandatory())
    .option('--local', 'local deployment (creates the local endpoint if missing)')
    .action(async (o: Common & { name: string; endpointName: string; local?: boolean }) => {
      emit(await (await client(o)).getDeployment(o.endpointName, o.name), o);
    });

  common(dep.command('list').description("List an endpoint's deployments"))
    .addOption(endpointOption().makeOptionMandatory())
    .option('--local', 'local deployments')
    .action(async (o: Common & { endpointName: string; local?: boolean }) => {
      emit(await (await client(o)).listDeployments(o.endpointName), o);
    });

  common(dep.command('delete').description('Delete a deployment (it must have no traffic)'))
    .requiredOption('-n, --name <name>', 'deployment name')
    .addOption(endpointOption().makeOptionMandatory())
    .option('-y, --yes', 'do not prompt for confirmation')
    .option('--no-wait', 'do not wait for the operation to finish')
    .option('--local', 'local deployment (creates the local endpoint if missing)')
    .action(async (o: Common & { name: string; endpointName: string; yes?: boolean; wait: boolean; local?: boolean }) => {
      const c = await client(o);
      await c.getDeployment(o.endpointName, o.name);
      await confirm(`Are you sure you want to delete deployment '${o.name}' of endpoint '${o.endpointName}'?`, o.yes);
      await c.deleteDeployment(o.endpointName, o.name);
      if (o.wait) await waitFor(`Deleting deployment ${o.name}`, () => c.getDeployment(o.endpointName, o.name), 'gone');
    });

  common(dep.command('get-logs').description("A deployment's console log (or its storage initializer's)"))
    .requiredOption('-n, --name <name>', 'deployment name')
    .addOption(endpointOption().makeOptionMandatory())
    .option('-l, --lines <n>', 'how many of the last lines', wholeNumber('--lines', 0), 5000)
    .option('-c, --container <name>', 'inference-server or storage-initializer', 'inference-server')
    // az's get-logs has no follow flag; kubectl's is --follow/-f, but -f is az's --file everywhere else.
    .option('--follow', "after the last lines, print new ones as the deployment's newest instance writes them, until Ctrl-C or the server stops")
    .option('--local', 'local deployment (creates the local endpoint if missing)')
    .action(async (o: Common & { name: string; endpointName: string; lines: number; container: string; follow?: boolean; local?: boolean }) => {
      const container = o.container.toLowerCase();
      if (container !== 'inference-server' && container !== 'storage-initializer') {
        throw errorOf('ContainerTypeInvalid', { container: String(o.container) });
      }
      const c = await client(o);
      if (!o.follow) return print(await c.logs(o.endpointName, o.name, container, o.lines));
      // Written as it comes, waiting for stdout (a pipe into a slow reader) before reading more.
      for await (const chunk of c.followLogs(o.endpointName, o.name, container, o.lines)) {
        if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
      }
    });
}

function serverCommand(program: Command): void {
  program
    .command('server')
    .description('Run infergate: control-plane API and router in one process, instances as containers (docker) or child processes')
    .option('--workspace <dir>', 'workspace directory (default: $INFERGATE_HOME or ~/.infergate)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--api-host <host>', 'address the control plane listens on (default: --host)')
    .option('--api-allowed-host <name...>', "another name the control plane answers to in the Host header (a DNS name of this machine or of a proxy in front); repeatable", collect)
    .option('--port <port>', 'control-plane API port (0: any free port)', portNumber('--port'), 8470)
    .option('--router-port <port>', 'router (scoring URI) port (0: any free port)', portNumber('--router-port'), 8471)
    .option('--max-deployments <n>', 'deployments allowed per endpoint', wholeNumber('--max-deployments', 1), 20)
    .option('--max-body-bytes <n>', 'largest scoring request body; larger gets 413', wholeNumber('--max-body-bytes', 1), 100 * 1024 * 1024)
    .option('--max-connections <n>', 'open client connections the router accepts; one more gets 503', wholeNumber('--max-connections', 1), 8192)
    .option('--max-connections-per-client <n>', 'open router connections per client address; one more gets 429', wholeNumber('--max-connections-per-client', 1), 1024)
    .option('--max-buffered-body-mb <n>', 'request-body MiB the router buffers at once, all connections together; a request over it gets 503', wholeNumber('--max-buffered-body-mb', 1), 256)
    .option('--min-body-rate <bytes-per-second>', 'slowest request-body upload accepted after a 5 s grace (408 below); 0 disables', wholeNumber('--min-body-rate', 0), 240)
    .option('--failed-auth-limit <n>', 'failed scoring authentications per client address in 10 s before it gets 429 for 10 s; 0 disables (a router behind a proxy sees one address)', wholeNumber('--failed-auth-limit', 0), 50)
    .option('--no-traffic-log', 'do not write the per-request traffic log (<workspace>/logs/traffic.jsonl)')
    .option('--router-workers <n>', 'router processes sharing the router port (default: 1 on up to 2 cores, else half the cores, at most 8); docs/router-scale.md', wholeNumber('--router-workers', 1))
    .option('--local-mode', "serve local endpoints: no auth, each endpoint on its own http://localhost:<port>/score (what --local commands start)")
    .option('--tls-cert <file>', 'serve HTTPS (router and control plane) with this PEM certificate (chain); reloaded on SIGHUP')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option('--tls-dev', 'serve HTTPS with a development certificate from a local CA made once in <workspace>/tls (prints how to trust it)')
    .option('--insecure', 'allow plain HTTP on a non-loopback --host/--api-host (refused otherwise)')
    .addOption(new Option('--backend <kind>', 'where instances run: docker (containers on the Docker Engine), process (child processes), auto (docker when an engine answers)').choices(['auto', 'process', 'docker']).default('auto').env('INFERGATE_BACKEND'))
    .option('--docker-image <image>', 'docker backend: the image of an environment that names none', 'infergate-python:bookworm')
    .option('--autoscale-interval <seconds>', 'how often autoscale settings are evaluated', wholeNumber('--autoscale-interval', 1), 5)
    .option('--autoscale-idle <seconds>', 'idle time before a deployment with min_instances 0 goes to zero instances', wholeNumber('--autoscale-idle', 1), 30)
    .addOption(new Option('--log-format <format>', "the server log on stderr: text (one '<time> <message>' line each) or json (one JSON object a line, pino's)").choices([...LOG_FORMATS]).default('text').env('INFERGATE_LOG_FORMAT'))
    .addOption(new Option('--log-level <level>', 'the least severe server log lines written (info includes the control-plane access log)').choices([...LOG_LEVELS]).default('info').env('INFERGATE_LOG_LEVEL'))
    .action(async (o: { logFormat: LogFormat; logLevel: LogLevel; autoscaleInterval: number; autoscaleIdle: number; backend: 'auto' | 'process' | 'docker'; dockerImage: string; workspace?: string; host: string; apiHost?: string; apiAllowedHost?: string[]; port: number; routerPort: number; maxDeployments: number; maxBodyBytes: number; maxConnections: number; maxConnectionsPerClient: number; maxBufferedBodyMb: number; minBodyRate: number; failedAuthLimit: number; trafficLog: boolean; routerWorkers?: number; localMode?: boolean; tlsCert?: string; tlsKey?: string; tlsDev?: boolean; insecure?: boolean }) => {
      if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw errorOf('TlsFlagsIncomplete');
      if (o.tlsDev && o.tlsCert !== undefined) throw errorOf('TlsFlagsConflict');
      const tls = o.tlsCert !== undefined ? { certFile: resolve(o.tlsCert), keyFile: resolve(o.tlsKey!) } : o.tlsDev ? { dev: true as const } : undefined;
      const workspace = resolve(o.workspace ?? defaultWorkspace());
      // The workspace lock before the server's modules load: a second server is refused at once.
      const lock = await (await import('../util/workspace-lock.js')).lockWorkspace(workspace, VERSION_TEXT());
      const { startServer, VERSION } = await import('../main/server.js');
      const routerWorkers = o.routerWorkers ?? (await import('../main/router-workers.js')).defaultRouterWorkers();
      // The log function the server's modules take; the pino logger rides along for the API (api/server.ts).
      const log = serverLog(o.logFormat, o.logLevel);
      const server = await startServer({ workspace, host: o.host, ...(o.apiHost ? { apiHost: o.apiHost } : {}), ...(o.apiAllowedHost ? { apiAllowedHosts: o.apiAllowedHost } : {}), port: o.port, routerPort: o.routerPort, maxDeploymentsPerEndpoint: o.maxDeployments, maxBodyBytes: o.maxBodyBytes, maxConnections: o.maxConnections, maxConnectionsPerClient: o.maxConnectionsPerClient, maxBufferedBodyBytes: o.maxBufferedBodyMb * 1024 * 1024, minBodyBytesPerSecond: o.minBodyRate, failedAuthLimit: o.failedAuthLimit, trafficLog: o.trafficLog, routerWorkers, local: o.localMode === true, backend: o.backend, dockerImage: o.dockerImage, autoscaleIntervalMs: o.autoscaleInterval * 1000, autoscaleIdleMs: o.autoscaleIdle * 1000, log, lock, ...(tls ? { tls } : {}), ...(o.insecure ? { insecure: true } : {}) });
      print(`infergate ${VERSION} serving workspace ${workspace}\n  control plane: ${server.url}\n  router:        ${server.routerUrl}\n  backend:       ${server.backend}\n${server.tlsNotice ?? ''}`);
      if (tls) {
        // SIGHUP: the certificate and key are read again (a renewed certificate) and serve new connections;
        // open connections keep theirs (nginx -s reload). A file that fails to load keeps the old one.
        process.on('SIGHUP', () => {
          server.reloadTls().then(
            () => log('SIGHUP: TLS certificate reloaded'),
            (e) => log(`SIGHUP: TLS certificate NOT reloaded, still serving the previous one: ${e instanceof InfergateError ? `(${e.code}) ${e.message}` : e}`),
          );
        });
      }
      await new Promise<void>((resolveStop) => {
        const stop = (signal: string) => {
          log(`${signal}: stopping (instances too)`);
          server.close().then(resolveStop, (e) => {
            log(`error while stopping: ${e}`);
            resolveStop();
          });
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });
}

export function buildProgram(): Command {
  const program = new Command('infergate')
    .description('Self-hosted real-time model inference, Azure ML managed online endpoint compatible. A leading `ml` word is optional.')
    .version(VERSION_TEXT());
  endpointCommands(program);
  deploymentCommands(program);
  serverCommand(program);
  routerCommand(program);
  serveCommand(program);
  assetCommands(program);
  accessCommands(program);
  monitorCommands(program);
  computeCommands(program);
  studioCommand(program);
  program.exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  for (const c of allCommands(program)) c.exitOverride();
  return program;
}

function VERSION_TEXT(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

function allCommands(c: Command): Command[] {
  return [c, ...c.commands.flatMap(allCommands)];
}

/**
 * argparse (and so az) accepts any unambiguous prefix of a long flag: scripts use `--endpoint` for
 * `--endpoint-name` and `--deployment` for `--deployment-name` (contract §2.1). Commander does not.
 */
export function expandPrefixes(program: Command, args: string[]): string[] {
  let cmd: Command | undefined = program;
  let i = 0;
  while (i < args.length && !args[i].startsWith('-')) {
    const next: Command | undefined = cmd.commands.find((c) => c.name() === args[i]);
    if (!next) break;
    cmd = next;
    i++;
  }
  const longs = cmd.options.map((o) => o.long).filter((l): l is string => !!l);
  // After `--` everything is an operand (POSIX utility syntax guideline 10; argparse too): never a flag.
  const end = args.indexOf('--');
  return args.map((a, j) => {
    if (j < i || (end >= 0 && j >= end) || !a.startsWith('--')) return a;
    const [flag, ...rest] = a.split('=');
    if (longs.includes(flag)) return a;
    const matches = longs.filter((l) => l.startsWith(flag));
    if (matches.length !== 1) return a;
    return [matches[0], ...rest].join('=');
  });
}

/**
 * az's exit codes (azure-cli README "Exit codes" and azure.cli.core.util.handle_exception), which scripts
 * test with `$?`: 0 success; 1 any other error; 2 the command line did not parse (argparse: an unknown
 * command or flag, a missing required flag, a flag value of the wrong type such as `--lines abc`); 3 a
 * resource was not found (az maps every 404 to ResourceNotFoundError and exits 3, which `show` relies on
 * for existence checks: `infergate online-endpoint show -n x || create`).
 */
export const EXIT = { ok: 0, error: 1, usage: 2, notFound: 3 } as const;

/** The exit code of an error of ours: 3 for a 404 (a missing endpoint, deployment, asset ...), else 1. */
export function exitCodeOf(e: InfergateError, whileParsing: boolean): number {
  if (whileParsing) return EXIT.usage;
  return e.status === 404 ? EXIT.notFound : EXIT.error;
}

/**
 * Runs one command line and returns the exit code (EXIT). Importing this module runs nothing (its
 * parsers are unit-tested): bin/infergate.js calls it.
 */
export async function main(argv: string[]): Promise<number> {
  const args = argv[0] === 'ml' ? argv.slice(1) : argv;
  const program = buildProgram();
  // A flag's own parser (wholeNumber, portNumber) runs before the action: its error is a parse error,
  // exit 2 as argparse gives `--lines abc`, though it is printed as az prints ours.
  let acting = false;
  program.hook('preAction', () => {
    acting = true;
  });
  try {
    await program.parseAsync(expandPrefixes(program, args), { from: 'user' });
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.ok;
      return EXIT.usage; // commander already printed the usage error
    }
    if (e instanceof InfergateError) {
      process.stderr.write(`ERROR: (${e.code}) ${e.message}\n`);
      return exitCodeOf(e, !acting);
    }
    process.stderr.write(`ERROR: (InternalError) ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}

/** The stored document as it is, or undefined when it names a path given anew (then read and uploaded). */
function tryParse(parse: () => LoadResult<DeploymentSpec>): LoadResult<DeploymentSpec> | undefined {
  try {
    const r = parse();
    return r.spec && r.problems.length === 0 ? r : undefined;
  } catch (e) {
    if (e instanceof InfergateError) return undefined;
    throw e;
  }
}
