// The Kubernetes objects of a Weft install, written once. `weft manifest` renders them with the
// values; `npm run gen:chart` writes them as the Helm chart's templates (deploy/helm/weft).
import { appVersion, concat, namespace, note, val, when, type Expr, type Node } from './template.js';

export const CONTROLLER = 'weft-controller';
export const AGENT = 'weft-agent';
/** Node annotation where each agent publishes its node checks (JSON, see kube-check.ts). */
export const NODE_CHECKS_ANNOTATION = 'weft.io/node-checks';
export const PORTS = { xds: 15012, admin: 15000, metrics: 15020, readiness: 15021 } as const;
export const READY_PATH = '/healthz/ready';
const TOKEN_FILE = '/var/run/secrets/weft/token';

export interface InstallObject {
  /** templates/<file> in the chart */
  file: string;
  /** rendered only when this value is true (Go template truth) */
  when?: Expr;
  object: { [k: string]: Node };
}

const labels = (name: string, component: string): { [k: string]: Node } => ({
  'app.kubernetes.io/name': name,
  'app.kubernetes.io/component': component,
  'app.kubernetes.io/part-of': 'weft',
  'app.kubernetes.io/version': appVersion,
});
const selector = (name: string) => ({ 'app.kubernetes.io/name': name });
const meta = (name: string, component: string, namespaced = true): { [k: string]: Node } => ({
  name,
  ...(namespaced ? { namespace } : {}),
  labels: labels(name, component),
});
const image = concat(val('image.repository', 'string'), ':', val('image.tag', 'string', appVersion));
const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
const readinessProbe = { httpGet: { path: READY_PATH, port: PORTS.readiness }, periodSeconds: 5, failureThreshold: 3 };

const controllerObjects: InstallObject[] = [
  { file: 'controller-serviceaccount.yaml', object: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(CONTROLLER, 'controller') } },
  {
    file: 'controller-clusterrole.yaml',
    object: {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: meta(CONTROLLER, 'controller', false),
      rules: [
        note('cluster state it serves over xDS', { apiGroups: [''], resources: ['pods', 'namespaces', 'services', 'serviceaccounts'], verbs: ['get', 'list', 'watch'] }),
        note('Weft policies', { apiGroups: ['security.weft.io'], resources: ['authorizationpolicies', 'peerauthentications'], verbs: ['get', 'list', 'watch'] }),
        note('authenticate agents by their projected service-account tokens', { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }),
      ],
    },
  },
  {
    file: 'controller-clusterrolebinding.yaml',
    object: {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: meta(CONTROLLER, 'controller', false),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CONTROLLER },
      subjects: [{ kind: 'ServiceAccount', name: CONTROLLER, namespace }],
    },
  },
  {
    file: 'controller-role.yaml',
    object: {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: meta(CONTROLLER, 'controller'),
      rules: [
        note('its CA key and certificate live in the Secret weft-ca of its own namespace (a Role: no other\nnamespace\'s Secrets); create cannot be limited by name, reading can; it never changes the Secret', {
          apiGroups: [''], resources: ['secrets'], verbs: ['create'],
        }),
        { apiGroups: [''], resources: ['secrets'], resourceNames: ['weft-ca'], verbs: ['get'] },
        note('the root certificate agents trust, published as the ConfigMap weft-ca-root-cert', {
          apiGroups: [''], resources: ['configmaps'], verbs: ['create'],
        }),
        { apiGroups: [''], resources: ['configmaps'], resourceNames: ['weft-ca-root-cert'], verbs: ['get', 'update'] },
      ],
    },
  },
  {
    file: 'controller-rolebinding.yaml',
    object: {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: meta(CONTROLLER, 'controller'),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: CONTROLLER },
      subjects: [{ kind: 'ServiceAccount', name: CONTROLLER, namespace }],
    },
  },
  {
    file: 'controller-service.yaml',
    object: {
      apiVersion: 'v1', kind: 'Service', metadata: meta(CONTROLLER, 'controller'),
      spec: {
        selector: selector(CONTROLLER),
        ports: [note('delta ADS (workloads, services, policies) and the CA, gRPC over TLS', { name: 'grpc-xds', port: PORTS.xds, targetPort: PORTS.xds, protocol: 'TCP', appProtocol: 'grpc' })],
      },
    },
  },
  {
    file: 'controller-deployment.yaml',
    object: {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: meta(CONTROLLER, 'controller'),
      spec: {
        replicas: val('controller.replicas', 'integer'),
        selector: { matchLabels: selector(CONTROLLER) },
        template: {
          metadata: { labels: labels(CONTROLLER, 'controller') },
          spec: {
            serviceAccountName: CONTROLLER,
            nodeSelector: val('controller.nodeSelector', 'yaml'),
            tolerations: val('controller.tolerations', 'yaml'),
            securityContext: note('the controller needs no privilege at all', {
              runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' },
            }),
            containers: [{
              name: 'controller',
              image,
              imagePullPolicy: val('image.pullPolicy', 'string'),
              args: ['controller', '--source', 'kubernetes', '--listen', `0.0.0.0:${PORTS.xds}`, '--state-dir', '/var/lib/weft/controller', '--trust-domain', val('trustDomain', 'string')],
              env: [
                { name: 'WEFT_LOG_LEVEL', value: val('logLevel', 'string') },
                fieldEnv('WEFT_NAMESPACE', 'metadata.namespace'),
                note('agents are trusted by service account (TokenReview) and token audience', { name: 'WEFT_TRUSTED_NODE_ACCOUNTS', value: concat(namespace, `/${AGENT}`) }),
                { name: 'WEFT_TOKEN_AUDIENCE', value: val('agent.tokenAudience', 'string') },
                { name: 'WEFT_CA_SECRET', value: 'weft-ca' },
                { name: 'WEFT_READINESS_PORT', value: String(PORTS.readiness) },
              ],
              ports: [
                { name: 'grpc-xds', containerPort: PORTS.xds, protocol: 'TCP' },
                { name: 'http-ready', containerPort: PORTS.readiness, protocol: 'TCP' },
              ],
              readinessProbe,
              resources: val('controller.resources', 'yaml'),
              securityContext: {
                allowPrivilegeEscalation: false, readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [note('CA state (a cache: the CA itself is kept in the Secret weft-ca)', { name: 'state', mountPath: '/var/lib/weft/controller' })],
            }],
            volumes: [{ name: 'state', emptyDir: {} }],
          },
        },
      },
    },
  },
];

/** Capabilities of the agent, each with why; everything else is dropped. */
export const AGENT_CAPABILITIES: [string, string][] = [
  ['BPF', 'load the redirection programs and create/pin their maps'],
  ['NET_ADMIN', 'attach tc programs, set IP_TRANSPARENT and SO_MARK on proxy sockets'],
  ['SYS_ADMIN', 'setns() into pod network namespaces, attach cgroup programs, use bpffs'],
  ['SYS_PTRACE', 'open /proc/<pid>/ns/net of pod processes owned by other users'],
];
// Not SYS_RESOURCE: BPF memory is charged to the memory cgroup since Linux 5.11 (Weft needs 5.15),
// so RLIMIT_MEMLOCK never has to be raised; and a node whose root lacks it could not start the pod.
// Left out: PERFMON (Weft reads no perf events and needs no pointer leaks; BPF covers map and
// link info), NET_RAW (no raw or packet sockets; IP_TRANSPARENT is covered by NET_ADMIN).

const agentObjects: InstallObject[] = [
  { file: 'agent-serviceaccount.yaml', object: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(AGENT, 'agent') } },
  {
    file: 'agent-clusterrole.yaml',
    object: {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: meta(AGENT, 'agent', false),
      rules: [
        note(`publish this node's preflight results as the annotation ${NODE_CHECKS_ANNOTATION} (read by \`weft check --kube\`)`, {
          apiGroups: [''], resources: ['nodes'], verbs: ['get', 'patch'],
        }),
      ],
    },
  },
  {
    file: 'agent-clusterrolebinding.yaml',
    object: {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: meta(AGENT, 'agent', false),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: AGENT },
      subjects: [{ kind: 'ServiceAccount', name: AGENT, namespace }],
    },
  },
  {
    file: 'agent-role.yaml',
    object: {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: meta(AGENT, 'agent'),
      rules: [
        note('at SIGTERM: is the agent DaemonSet still there (a successor takes the pods over) or gone/being\ndeleted (uninstall: release every pod); watched while running, since an uninstall may remove this\nRole before the agent stops', {
          apiGroups: ['apps'], resources: ['daemonsets'], resourceNames: [AGENT], verbs: ['get', 'list', 'watch'],
        }),
      ],
    },
  },
  {
    file: 'agent-rolebinding.yaml',
    object: {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: meta(AGENT, 'agent'),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: AGENT },
      subjects: [{ kind: 'ServiceAccount', name: AGENT, namespace }],
    },
  },
  {
    file: 'agent-daemonset.yaml',
    object: {
      apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: meta(AGENT, 'agent'),
      spec: {
        selector: { matchLabels: selector(AGENT) },
        updateStrategy: note('the new agent starts beside the old one and takes its listeners over (SO_REUSEPORT);\nthe node is never without a proxy', {
          type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
        }),
        template: {
          metadata: {
            labels: labels(AGENT, 'agent'),
            annotations: {
              'prometheus.io/scrape': 'true',
              'prometheus.io/port': String(PORTS.metrics),
              'prometheus.io/path': '/metrics',
            },
          },
          spec: {
            serviceAccountName: AGENT,
            priorityClassName: val('agent.priorityClassName', 'string'),
            nodeSelector: val('agent.nodeSelector', 'yaml'),
            tolerations: val('agent.tolerations', 'yaml'),
            terminationGracePeriodSeconds: val('agent.terminationGracePeriodSeconds', 'integer'),
            hostNetwork: note('pod network namespaces are entered via /proc/<pid>/ns/net, so the node\'s netns is not needed', val('agent.hostNetwork', 'boolean')),
            dnsPolicy: when(val('agent.hostNetwork', 'boolean'), 'ClusterFirstWithHostNet'),
            // hostPID stays off: the host's /proc is mounted read-only at /host/proc instead, which
            // lets the agent find pods (/host/proc/<pid>/cgroup) and their netns without sharing
            // the host PID namespace (no signals to host processes, no host PIDs in the pod).
            hostPID: note('host processes are read through the read-only /host/proc mount instead', false),
            containers: [{
              name: 'agent',
              image,
              imagePullPolicy: val('image.pullPolicy', 'string'),
              // `weft agent`'s flags; $(WEFT_NODE_NAME) is expanded by the kubelet from env below.
              args: [
                'agent',
                '--node', '$(WEFT_NODE_NAME)',
                '--controller', concat(`${CONTROLLER}.`, namespace, `.svc:${PORTS.xds}`),
                '--token-file', TOKEN_FILE,
                '--ca-root', '/var/run/weft/ca/root-cert.pem',
                '--trust-domain', val('trustDomain', 'string'),
                '--proc', '/host/proc',
                '--drain-deadline', concat(val('agent.drainDeadlineSeconds', 'integer'), 's'),
                '--workers', concat(val('agent.workers', 'integer')),
              ],
              env: [
                fieldEnv('WEFT_NODE_NAME', 'spec.nodeName'),
                fieldEnv('WEFT_POD_NAME', 'metadata.name'),
                fieldEnv('WEFT_POD_NAMESPACE', 'metadata.namespace'),
                { name: 'WEFT_LOG_LEVEL', value: val('logLevel', 'string') },
                { name: 'WEFT_NODE_CHECKS_ANNOTATION', value: NODE_CHECKS_ANNOTATION },
              ],
              ports: [
                note('Prometheus metrics (Istio standard names)', { name: 'http-metrics', containerPort: PORTS.metrics, protocol: 'TCP' }),
                { name: 'http-ready', containerPort: PORTS.readiness, protocol: 'TCP' },
              ],
              readinessProbe,
              resources: val('agent.resources', 'yaml'),
              securityContext: {
                privileged: false,
                allowPrivilegeEscalation: note('the API refuses false together with CAP_SYS_ADMIN; no setuid binaries ship in the image', true),
                readOnlyRootFilesystem: true,
                runAsUser: 0,
                runAsGroup: 0,
                seccompProfile: { type: 'RuntimeDefault' },
                capabilities: {
                  drop: ['ALL'],
                  add: AGENT_CAPABILITIES.map(([cap, why]) => note(why, cap)),
                },
              },
              volumeMounts: [
                note('BPF pins outlive the agent (restarts, upgrades): they are files in the host\'s bpffs, which\nthis mount shares. HostToContainer: a bpffs the host mounts later shows here too. (Bidirectional\nwould only matter if the agent mounted something, and the API refuses it without privileged.)', {
                  name: 'bpffs', mountPath: '/sys/fs/bpf', mountPropagation: 'HostToContainer',
                }),
                note('the host\'s cgroup v2 hierarchy over the container\'s own view: pod cgroups, to attach\nthe connect/sockops programs', { name: 'cgroup', mountPath: '/sys/fs/cgroup', readOnly: true }),
                note('the host\'s processes: pod cgroups and network namespaces', { name: 'host-proc', mountPath: '/host/proc', readOnly: true }),
                note('writable net.* sysctls (ip_local_reserved_ports, tcp_fwmark_accept) of the pod netns the agent\nenters: the container\'s own /proc/sys is read-only, and this shows the netns of whoever opens it', {
                  name: 'host-proc-sys-net', mountPath: '/host/proc/sys/net',
                }),
                { name: 'weft-token', mountPath: '/var/run/secrets/weft', readOnly: true },
                { name: 'ca-root', mountPath: '/var/run/weft/ca', readOnly: true },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            }],
            volumes: [
              { name: 'bpffs', hostPath: { path: '/sys/fs/bpf', type: 'DirectoryOrCreate' } },
              { name: 'cgroup', hostPath: { path: '/sys/fs/cgroup', type: 'Directory' } },
              { name: 'host-proc', hostPath: { path: '/proc', type: 'Directory' } },
              { name: 'host-proc-sys-net', hostPath: { path: '/proc/sys/net', type: 'Directory' } },
              note('the agent\'s identity towards the controller: a short-lived token bound to this pod and node', {
                name: 'weft-token',
                projected: { sources: [{ serviceAccountToken: { path: 'token', audience: val('agent.tokenAudience', 'string'), expirationSeconds: 3600 } }] },
              }),
              note('published by the controller; optional so agents start while the controller does', {
                name: 'ca-root', configMap: { name: 'weft-ca-root-cert', optional: true },
              }),
              { name: 'tmp', emptyDir: {} },
            ],
          },
        },
      },
    },
  },
  {
    file: 'resourcequota.yaml',
    when: val('resourceQuota.enabled', 'boolean'),
    object: {
      apiVersion: 'v1', kind: 'ResourceQuota', metadata: meta(AGENT, 'agent'),
      spec: {
        hard: { pods: val('resourceQuota.pods', 'string') },
        scopeSelector: { matchExpressions: [{ operator: 'In', scopeName: 'PriorityClass', values: [val('agent.priorityClassName', 'string')] }] },
      },
    },
  },
  {
    file: 'podmonitor.yaml',
    when: val('podMonitor.enabled', 'boolean'),
    object: {
      apiVersion: 'monitoring.coreos.com/v1', kind: 'PodMonitor',
      metadata: { name: AGENT, namespace, labels: val('podMonitor.labels', 'yaml') },
      spec: {
        selector: { matchLabels: selector(AGENT) },
        podMetricsEndpoints: [{ port: 'http-metrics', path: '/metrics', interval: val('podMonitor.interval', 'string') }],
      },
    },
  },
];

/** Every templated object, in apply order (RBAC before workloads). */
export const INSTALL_OBJECTS: InstallObject[] = [...controllerObjects, ...agentObjects];
