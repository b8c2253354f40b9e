// Validates rendered objects against Kubernetes' own OpenAPI schemas, through kubernetes-models 4.5.1
// (generated from Kubernetes v1.27.1's OpenAPI document). The schemas allow unknown keys, as the API server
// does in non-strict mode, so unknownKeys() below checks those of ours against the typed fields.

import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';

export const KUBERNETES_SCHEMA_VERSION = '1.27.1';

type Model = new (data: never) => { validate(): void };
const MODELS: Record<string, Model> = {
  'v1/ConfigMap': ConfigMap as unknown as Model,
  'v1/Namespace': Namespace as unknown as Model,
  'v1/Secret': Secret as unknown as Model,
  'v1/Service': Service as unknown as Model,
  'v1/ServiceAccount': ServiceAccount as unknown as Model,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim as unknown as Model,
  'apps/v1/Deployment': Deployment as unknown as Model,
  'apps/v1/StatefulSet': StatefulSet as unknown as Model,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as unknown as Model,
  'rbac.authorization.k8s.io/v1/Role': Role as unknown as Model,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding as unknown as Model,
  'networking.k8s.io/v1/Ingress': Ingress as unknown as Model,
};

/** Throws with the object's kind and name when it does not validate (or is of a kind not listed here). */
export function validateObject(obj: { apiVersion?: string; kind?: string; metadata?: { name?: string } }): void {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const M = MODELS[key];
  if (!M) throw new Error(`no schema for ${key}`);
  try {
    new M(obj as never).validate();
  } catch (e) {
    throw new Error(`${key} ${obj.metadata?.name}: ${(e as Error).message}`);
  }
}
