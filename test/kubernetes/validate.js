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
const MODELS = {
    'v1/ConfigMap': ConfigMap,
    'v1/Namespace': Namespace,
    'v1/Secret': Secret,
    'v1/Service': Service,
    'v1/ServiceAccount': ServiceAccount,
    'v1/PersistentVolumeClaim': PersistentVolumeClaim,
    'apps/v1/Deployment': Deployment,
    'apps/v1/StatefulSet': StatefulSet,
    'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
    'rbac.authorization.k8s.io/v1/Role': Role,
    'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
    'networking.k8s.io/v1/Ingress': Ingress,
};
/** Throws with the object's kind and name when it does not validate (or is of a kind not listed here). */
export function validateObject(obj) {
    const key = `${obj.apiVersion}/${obj.kind}`;
    const M = MODELS[key];
    if (!M)
        throw new Error(`no schema for ${key}`);
    try {
        new M(obj).validate();
    }
    catch (e) {
        throw new Error(`${key} ${obj.metadata?.name}: ${e.message}`);
    }
}
//# sourceMappingURL=validate.js.map