// `infergate [ml] compute attach|list|show|detach`: az's verbs for Kubernetes computes (issue 17). attach
// reads the kubeconfig file here and sends its content: the server stores it as a credential and never
// shows it back (api/computes.ts); endpoints then name the compute with `compute: azureml:<name>`.

import { Command, Option } from 'commander';
import { type Json } from '../client/index.js';
import { common, emit, readYaml, serverClient, type CommonOptions } from './common.js';

const enc = encodeURIComponent;

interface AttachFlags extends CommonOptions {
  name: string;
  type: string;
  kubeconfig: string;
  context?: string;
  namespace?: string;
  registry?: string;
  description?: string;
}

export function computeCommands(program: Command): void {
  const group = program.command('compute').description('Attach and manage Kubernetes computes (az ml compute)');

  common(group.command('attach').description('Attach a Kubernetes cluster: endpoints with compute: azureml:<name> run on it'))
    .requiredOption('-n, --name <name>', 'compute name')
    .addOption(new Option('-t, --type <type>', 'compute type').choices(['kubernetes', 'Kubernetes']).default('kubernetes'))
    .requiredOption('--kubeconfig <file>', 'kubeconfig file with the credentials infergate uses (stored in the workspace as a secret)')
    .option('--context <context>', 'kubeconfig context (default: its current-context)')
    .option('--namespace <namespace>', "namespace infergate creates its objects in (default: the context's, else default)")
    .option('--registry <registry>', 'registry the cluster pulls environment images from (images are pushed there by digest)')
    .option('--description <text>', 'description')
    .action(async (o: AttachFlags) => {
      const kubeconfig = readYaml(o.kubeconfig, '--kubeconfig').text;
      const body = {
        name: o.name,
        type: o.type.toLowerCase(),
        kubeconfig,
        ...(o.context ? { context: o.context } : {}),
        ...(o.namespace ? { namespace: o.namespace } : {}),
        ...(o.registry ? { registry: o.registry } : {}),
        ...(o.description ? { description: o.description } : {}),
      };
      emit(await serverClient(o).request<Json>('POST', '/api/computes', body), o);
    });

  common(group.command('list').description('List attached computes')).action(async (o: CommonOptions) => {
    emit(await serverClient(o).request<Json[]>('GET', '/api/computes'), o);
  });

  common(group.command('show').description('Show an attached compute (never its kubeconfig)'))
    .requiredOption('-n, --name <name>', 'compute name')
    .action(async (o: CommonOptions & { name: string }) => {
      emit(await serverClient(o).request<Json>('GET', `/api/computes/${enc(o.name)}`), o);
    });

  common(group.command('detach').description('Detach a compute no endpoint uses (its cluster and objects are left as they are)'))
    .requiredOption('-n, --name <name>', 'compute name')
    .option('-y, --yes', 'do not ask for confirmation (accepted for az compatibility; detach never asks)')
    .action(async (o: CommonOptions & { name: string }) => {
      emit(await serverClient(o).request<Json>('DELETE', `/api/computes/${enc(o.name)}`), o);
    });
}
