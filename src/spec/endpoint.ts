// The online ENDPOINT document: managed (contract §1.2) and Kubernetes (§1.3), one description.

import { MAX_NAME_LENGTH, MIN_NAME_LENGTH, NAME_PATTERN, resourceName, validateName } from './names.js';
import { anything, compact, dict, int, list, oneOf, opt, refine, report, req, str, stringMap, struct, text, to, withSchema, type Type } from './schema.js';
import type { EndpointSpec } from './types.js';

/** Azure's endpoint and deployment name rule as JSON Schema keywords (names.ts knows no schemas). */
export const NAME_SCHEMA = { type: 'string', minLength: MIN_NAME_LENGTH, maxLength: MAX_NAME_LENGTH, pattern: NAME_PATTERN.source };

/** An endpoint or deployment name field, with its schema. */
export const nameField = (what: 'endpoint' | 'deployment'): Type<string> => withSchema(resourceName(what), () => NAME_SCHEMA);

/**
 * A compute reference: `azureml:<name>`, or the compute's ARM id (`/subscriptions/.../computes/<name>`), as
 * Azure's CLI takes them. The name is what `infergate ml compute attach --name` gave (issue 17).
 */
export const COMPUTE_REF = /^(?:azureml:|\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.MachineLearningServices\/workspaces\/[^/]+\/computes\/)?[a-zA-Z][-a-zA-Z0-9_]{1,31}$/i;
const computeRef = refine(str, (s) => (COMPUTE_REF.test(s.trim()) ? undefined : `'${s}' is not a compute reference: use azureml:<compute name>`), 'a compute reference', (base) => ({ ...base, pattern: COMPUTE_REF.source }));

/** Most mirrored traffic, to protect the endpoint's bandwidth quota (contract §3). */
export const MAX_MIRROR_PERCENT = 50;

/**
 * `traffic` / `mirror_traffic`: deployment name → integer percent. Stored the way the SDK sends it:
 * names lower-cased, zero entries stripped (contract §2.4 `_strip_zeroes_from_traffic`).
 */
function trafficMap(max: number): Type<Record<string, number>> {
  const plain = dict(int({ min: 0, max }), (name) => validateName(name, 'deployment'), NAME_SCHEMA);
  return {
    label: plain.label,
    schema: (sx) => plain.schema!(sx),
    decode(node, path, cx) {
      const written = plain.decode(node, path, cx);
      if (written === undefined) return undefined;
      const out: [string, number][] = [];
      const seen = new Set<string>();
      for (const [name, percent] of Object.entries(written)) {
        const key = name.toLowerCase();
        if (seen.has(key)) return report(cx, path, node, `deployment '${key}' is given twice (deployment names are not case-sensitive here)`);
        seen.add(key);
        if (percent !== 0) out.push([key, percent]);
      }
      return Object.fromEntries(out);
    },
  };
}

const identity = to(
  struct(
    {
      type: req(oneOf(['system_assigned', 'user_assigned', 'none']), 'Identity type not found in provided yaml file.'),
      user_assigned_identities: opt(
        list(
          to(struct({ resource_id: req(str), principal_id: opt(anything), client_id: opt(anything) }), (u) => ({ resourceId: u.resource_id })),
        ),
      ),
      // Output keys of `show` (contract §2.4), accepted so its output can be applied again.
      principal_id: opt(anything),
      tenant_id: opt(anything),
    },
    {
      check(raw, { has, issue }) {
        const uai = has('user_assigned_identities');
        if (raw.type === 'user_assigned' && (!uai || raw.user_assigned_identities?.length === 0)) {
          issue('user_assigned_identities', 'type user_assigned needs at least one entry in user_assigned_identities');
        }
        if (raw.type !== undefined && raw.type !== 'user_assigned' && uai) issue('user_assigned_identities', `not allowed with type ${raw.type}`);
      },
    },
  ),
  (i): NonNullable<EndpointSpec['identity']> => compact({ type: i.type, userAssignedIdentities: i.user_assigned_identities }),
);

const endpointDocument = struct(
  {
    $schema: opt(text),
    name: { ...req(nameField('endpoint')), doc: 'The endpoint name: 3 to 32 characters, a letter first, then letters, digits and dashes.' },
    description: opt(text),
    tags: opt(stringMap),
    properties: opt(stringMap),
    auth_mode: opt(oneOf(['key', 'aml_token', 'aad_token']), { doc: 'How clients authenticate to the scoring URI: key (default), aml_token or aad_token.' }),
    identity: opt(identity),
    traffic: opt(trafficMap(100), { doc: 'Percent of live traffic per deployment name; the values sum to 0 or 100.' }),
    mirror_traffic: opt(trafficMap(MAX_MIRROR_PERCENT), { doc: 'Percent of live traffic copied to one deployment (at most 50); its answers are discarded.' }),
    public_network_access: opt(oneOf(['enabled', 'disabled']), { only: 'managed' }),
    // Its presence is what makes a Kubernetes endpoint (contract §1.1).
    compute: opt(computeRef, { doc: 'azureml:<compute name>: its presence makes this a Kubernetes endpoint.' }),
    // Output keys of `show` (contract §1.2), accepted so its output can be applied again.
    id: opt(anything),
    provisioning_state: opt(anything),
    scoring_uri: opt(anything),
    openapi_uri: opt(anything),
    location: opt(anything),
    kind: opt(anything),
  },
  {
    check(raw, { issue, cx }) {
      const traffic = raw.traffic ?? {};
      const sum = Object.values(traffic).reduce((a, b) => a + b, 0);
      // The service's rule (contract §3); the SDK alone only rejects sums above 100.
      if (sum !== 0 && sum !== 100) issue('traffic', `traffic percentages must sum to 0 or 100, got ${sum}`);

      const mirrored = Object.keys(raw.mirror_traffic ?? {});
      if (mirrored.length && cx.kind === 'kubernetes') issue('mirror_traffic', 'mirror traffic is not supported on Kubernetes endpoints');
      else if (mirrored.length > 1) issue('mirror_traffic', `mirror traffic can go to one deployment only, got ${mirrored.join(', ')}`);
      for (const name of mirrored) {
        if (traffic[name]) issue('mirror_traffic', `deployment '${name}' cannot receive both live and mirror traffic`);
      }

      // aad_token is managed only (contract §1.3).
      if (raw.auth_mode === 'aad_token' && cx.kind === 'kubernetes') issue('auth_mode', 'aad_token is not supported on Kubernetes endpoints; use key or aml_token');
    },
  },
);

export const endpoint: Type<EndpointSpec> = to(endpointDocument, (e, cx): EndpointSpec =>
  compact({
    name: e.name,
    kind: cx.kind,
    description: e.description,
    tags: e.tags ?? {},
    properties: e.properties ?? {},
    authMode: e.auth_mode ?? 'key',
    identity: e.identity,
    traffic: e.traffic ?? {},
    mirrorTraffic: e.mirror_traffic ?? {},
    publicNetworkAccess: e.public_network_access ?? 'enabled',
    compute: e.compute,
  }),
);
