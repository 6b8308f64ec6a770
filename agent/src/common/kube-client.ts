// @kubernetes/client-node, loaded on first use. Imported eagerly it costs ~27 MB of V8 heap and
// ~70 MB of RSS in every process, including agents that never talk to a Kubernetes API (the lab)
// and every CLI command; and a larger heap makes each major GC of the data plane dearer, since
// every byte relayed allocates buffers that trigger them. Modules import its types with
// `import type` and get its values through kubeClient(). The agent does not use it at all: it has
// its own small client (kube-api.ts); only the controller and `weft check --kube` load this.
export type KubeClientModule = typeof import('@kubernetes/client-node');

let loading: Promise<KubeClientModule> | undefined;

export function kubeClient(): Promise<KubeClientModule> {
  loading ??= import('@kubernetes/client-node');
  return loading;
}
