// JSON Schemas of the YAML documents (issue 14), derived from the same combinators that validate them, for
// editors (`$schema:` or yaml.schemas, offline from the package's dist/schemas/) and the OpenAPI document.
// They describe; they never validate input: decode() stays the validator, with every problem at once,
// file:line:column and did-you-mean. So a schema may accept a document decode() refuses (the rules that
// span several keys, paths that must exist), never the other way round (json-schema.test.ts checks both).

import { environmentDocument, modelDocument } from './assets-yaml.js';
import { deployment } from './deployment.js';
import { endpoint } from './endpoint.js';
import { loosePattern, schemaOf, type JsonSchema } from './schema.js';

export const SCHEMA_NAMES = ['endpoint', 'managedDeployment', 'kubernetesDeployment', 'model', 'environment'] as const;
export type SchemaName = (typeof SCHEMA_NAMES)[number];

/** Where a schema says it lives; the control plane serves it at /schemas/<name>.json. */
export const schemaId = (name: SchemaName): string => `https://infergate.dev/schemas/${name}.json`;

const DRAFT = 'https://json-schema.org/draft/2020-12/schema';

const VALIDATOR_ONLY =
  'Rules that span several keys are checked by infergate itself, not by this schema: ';

function document(name: SchemaName, title: string, description: string, body: JsonSchema): JsonSchema {
  return { $schema: DRAFT, $id: schemaId(name), title, description, ...body };
}

/** A copy of a struct's schema with `type` set: the key that decides a deployment's kind (contract §1.1). */
function deploymentOf(kind: 'managed' | 'kubernetes'): JsonSchema {
  const body = schemaOf(deployment, { kind });
  const properties = { ...(body.properties as Record<string, JsonSchema>) };
  const required = [...((body.required as string[] | undefined) ?? [])];
  // Read case-insensitively like every enum; absent (or empty) means managed.
  const spelt = { type: 'string', pattern: loosePattern([kind]) };
  if (kind === 'kubernetes') {
    properties.type = { ...spelt, description: 'kubernetes: this file is a Kubernetes online deployment.' };
    required.push('type');
  } else {
    properties.type = { type: ['string', 'null'], pattern: spelt.pattern, description: 'managed (the default when absent).' };
  }
  return { ...body, properties, required };
}

/** The five YAML document schemas, by name. Built on each call (a few milliseconds): callers keep the result. */
export function yamlSchemas(): Record<SchemaName, JsonSchema> {
  const endpointBody = schemaOf(endpoint, {});
  return {
    endpoint: document(
      'endpoint',
      'infergate online endpoint',
      'An online endpoint, as `infergate ml online-endpoint create -f` reads it (the Azure ML CLI v2 online endpoint YAML). ' +
        'A `compute` key makes it a Kubernetes endpoint, without it it is managed. ' +
        VALIDATOR_ONLY +
        'traffic must sum to 0 or 100; mirror traffic goes to one deployment that gets no live traffic, and not on Kubernetes; ' +
        'aad_token is managed only; user_assigned_identities goes with type user_assigned; deployment names in traffic differ in more than case.',
      {
        ...endpointBody,
        // The one key of one kind; the kind comes from `compute` itself (a null compute is no compute).
        if: { required: ['compute'], properties: { compute: { not: { type: 'null' } } } },
        then: { properties: { public_network_access: false } },
      },
    ),
    managedDeployment: document(
      'managedDeployment',
      'infergate managed online deployment',
      'A managed online deployment, as `infergate ml online-deployment create -f` reads it (the Azure ML CLI v2 managed online deployment YAML). ' +
        VALIDATOR_ONLY +
        'instance_count is required unless scale_settings is target_utilization; max_instances >= min_instances; ' +
        'liveness_probe.success_threshold must be 1; an inline environment has image or build, not both; ' +
        'paths must exist and the scoring script must be inside the code folder; environment variables that change how a shell or ' +
        'interpreter starts need the infergate.allow-environment-variables tag; 256 KiB of environment variables in all.',
      deploymentOf('managed'),
    ),
    kubernetesDeployment: document(
      'kubernetesDeployment',
      'infergate Kubernetes online deployment',
      'A Kubernetes online deployment (`type: kubernetes`), as `infergate ml online-deployment create -f` reads it. ' +
        VALIDATOR_ONLY +
        'the same as for managed deployments, and: endpoint_name and name together at most 62 characters; ' +
        'resources.requests at most resources.limits; no registry models or environments.',
      deploymentOf('kubernetes'),
    ),
    model: document(
      'model',
      'infergate model',
      'A model asset, as `infergate ml model create -f` reads it (the Azure ML CLI v2 model YAML). ' + VALIDATOR_ONLY + 'path must exist on this machine.',
      schemaOf(modelDocument, {}),
    ),
    environment: document(
      'environment',
      'infergate environment',
      'An environment asset, as `infergate ml environment create -f` reads it (the Azure ML CLI v2 environment YAML). ' +
        VALIDATOR_ONLY +
        'image or build, not both; conda_file and build.path must exist on this machine.',
      schemaOf(environmentDocument, {}),
    ),
  };
}
