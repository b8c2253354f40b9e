// What the part-B docker suites share (whether they can run at all is ../engine.ts): docker CLI calls,
// the labels the docker backend puts on its containers (src/backend/docker/backend.ts), deployment YAML.

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { run, type CliResult } from '../../e2e/harness.js';
import { BASE_IMAGE } from '../engine.js';

export { BASE_IMAGE };
export const FIXTURES_B = resolve(import.meta.dirname);

/** The docker CLI; throws with its stderr unless it exits 0. */
export async function docker(args: string[]): Promise<string> {
  const r: CliResult = await run('docker', args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** Best effort, for clean-up: never throws. */
export function dockerQuiet(args: string[]): void {
  spawnSync('docker', args, { timeout: 60_000 });
}

/** The workspace label the docker backend gives a workspace's containers. */
export function workspaceLabel(workspace: string): string {
  return createHash('sha256').update(workspace).digest('hex').slice(0, 16);
}

export interface ContainerView {
  id: string;
  name: string;
  state: string;
  labels: Record<string, string>;
}

/** Containers (running or not) labelled with this workspace, by instance id. */
export async function workspaceContainers(workspace: string): Promise<ContainerView[]> {
  const ids = (await docker(['ps', '-aq', '--no-trunc', '--filter', `label=io.infergate.workspace=${workspaceLabel(workspace)}`])).split('\n').filter(Boolean);
  if (ids.length === 0) return [];
  return inspectContainers(ids);
}

export async function inspectContainers(ids: string[]): Promise<ContainerView[]> {
  const out = await run('docker', ['inspect', ...ids]);
  // A container gone between ps and inspect is simply not listed.
  const list = JSON.parse(out.stdout || '[]') as { Id: string; Name: string; State: { Status: string }; Config: { Labels: Record<string, string> | null } }[];
  return list.map((c) => ({ id: c.Id, name: c.Name.replace(/^\//, ''), state: c.State.Status, labels: c.Config.Labels ?? {} }));
}

/** Removes every container of the workspace (after a test that may have left some, e.g. a SIGKILLed server). */
export function removeWorkspaceContainers(workspace: string): void {
  const ids = execFileSync('docker', ['ps', '-aq', '--filter', `label=io.infergate.workspace=${workspaceLabel(workspace)}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
  if (ids.length > 0) dockerQuiet(['rm', '-f', ...ids]);
}

/** A deployment of fixtures-b/<code> (score.py) on the base image as it is: no image build in the way. */
export function whoamiDeployment(o: { name: string; endpoint: string; code: string; instances: number; maxConcurrent?: number; env?: Record<string, string> }): string {
  const env = { WORKER_COUNT: String(o.maxConcurrent ?? 1), ...o.env };
  return [
    `name: ${o.name}`,
    `endpoint_name: ${o.endpoint}`,
    `code_configuration: {code: ${o.code}, scoring_script: score.py}`,
    `environment: {image: "${BASE_IMAGE}"}`,
    `environment_variables: ${JSON.stringify(env)}`,
    'instance_type: Standard_DS3_v2',
    `instance_count: ${o.instances}`,
    `request_settings: {max_concurrent_requests_per_instance: ${o.maxConcurrent ?? 1}, request_timeout_ms: 20000}`,
    // Probes every second so a lost instance is noticed in about the time a test can wait for.
    'readiness_probe: {initial_delay: 1, period: 1, failure_threshold: 3}',
    'liveness_probe: {initial_delay: 1, period: 1, failure_threshold: 3}',
    '',
  ].join('\n');
}
