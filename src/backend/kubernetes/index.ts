// The Kubernetes backend (issue 17, docs/kubernetes.md): render (pure), apply and watch.
export { KubernetesBackend, loadKubeConfig, namespaceOf, probeCompute, type KubernetesBackendOptions } from './backend.js';
export { DEFAULT_KUBERNETES_IMAGE, FIELD_MANAGER, renderDeployment, renderRoot, workspaceLabel, type KubeObject, type RenderContext } from './render.js';
