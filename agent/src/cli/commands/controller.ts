// `weft controller`: runs the control plane (xDS + CA) on a cluster source until stopped;
// `weft controller token` prints a lab node token signed with the controller's key.
import { join, resolve } from 'node:path';
import { UsageError } from '../../common/errors.js';
import type { Command } from '../command.js';
import type { ControllerOptions } from '../../controller/controller.js';
import { DEFAULT_LISTEN } from '../../controller/defaults.js';
import { DirectorySource } from '../../controller/source-dir.js';
import { HmacNodeTokens } from '../../identity/node-auth.js';
import type { ClusterSource } from '../../controller/objects.js';
import { parseReadiness } from '../../controller/readiness.js';

export const DEFAULT_CONTROLLER_STATE_DIR = '/var/lib/weft/controller';

async function sourceFrom(spec: string): Promise<ClusterSource> {
  if (spec.startsWith('dir:') && spec.length > 4) return new DirectorySource(resolve(spec.slice(4)));
  if (spec === 'kubernetes') {
    const { KubernetesSource } = await import('../../controller/source-kubernetes.js');
    return KubernetesSource.fromDefaultConfig();
  }
  throw new UsageError(`--source must be 'dir:PATH' or 'kubernetes', not '${spec}'`);
}

const tokenCommand: Command = {
  name: 'token',
  summary: 'Print a node token (lab) that agents present to the controller',
  usage: ['weft controller token --node NAME [--state-dir DIR] [--ttl SECONDS]'],
  options: {
    node: { type: 'string' },
    'state-dir': { type: 'string', default: DEFAULT_CONTROLLER_STATE_DIR },
    ttl: { type: 'string', default: String(365 * 86400) },
  },
  run: async (args, io) => {
    const node = args.values.node as string | undefined;
    if (!node) throw new UsageError('--node is required');
    const ttl = Number(args.values.ttl);
    if (!Number.isInteger(ttl) || ttl <= 0) throw new UsageError('--ttl must be a positive number of seconds');
    const tokens = await HmacNodeTokens.fromStateDir(resolve(args.values['state-dir'] as string));
    io.out(tokens.issue(node, ttl) + '\n');
    return 0;
  },
};

export const controllerCommand: Command = {
  name: 'controller',
  summary: 'Run the control plane: xDS (workloads, services, policies) and the CA',
  usage: [
    'weft controller --source dir:PATH|kubernetes [--listen HOST:PORT] [--state-dir DIR] [--trust-domain TD]',
    '                [--ca dir|secret:NAMESPACE[/NAME]] [--auth lab|kubernetes] [--readiness HOST:PORT|off]',
    'weft controller token --node NAME [--state-dir DIR]',
  ],
  help: `Reads cluster state from a directory of manifests (followed live) or the Kubernetes API,
serves it over delta ADS, and signs workload certificates, on one TLS gRPC port.
The state directory keeps the CA (ca/ca-key.pem, ca/ca-cert.pem; put an operator CA there
Istio-cacerts style to use it) and the key that signs lab node tokens.
Agents trust <state-dir>/ca/ca-cert.pem (or root-cert.pem) for the controller's TLS.

Options:
  --source dir:PATH|kubernetes   where cluster state comes from (required)
  --listen HOST:PORT             default ${DEFAULT_LISTEN}
  --state-dir DIR                default ${DEFAULT_CONTROLLER_STATE_DIR}
  --trust-domain TD              default cluster.local
  --ca dir|secret:NAMESPACE[/NAME]
                                 where the CA lives: <state-dir>/ca (default with dir:) or the
                                 Secret NAME (default $WEFT_CA_SECRET or weft-ca) of NAMESPACE
                                 (default with kubernetes: $WEFT_NAMESPACE or weft-system). A
                                 missing Secret gets a new root; an operator CA can be put there
                                 beforehand (cacerts layout). The root is published as
                                 root-cert.pem in the ConfigMap weft-ca-root-cert of NAMESPACE.
  --auth lab|kubernetes          how agents authenticate: lab node tokens (default with dir:)
                                 or TokenReview of projected service-account tokens (default
                                 with kubernetes) for audience $WEFT_TOKEN_AUDIENCE (default
                                 weft), from $WEFT_TRUSTED_NODE_ACCOUNTS (comma-separated
                                 namespace/serviceaccount, default weft-system/weft-agent)
  --readiness HOST:PORT|off      GET /healthz/ready: 200 once the CA is loaded, the source
                                 synced and gRPC is up, else 503 with what is missing. Default
                                 with kubernetes :$WEFT_READINESS_PORT (:15021); off with dir:
                                 (lab agents use 15021 themselves)

In Kubernetes the serving certificate names weft-controller.$WEFT_NAMESPACE.svc (and
.svc.cluster.local), which agents dial.`,
  options: {
    source: { type: 'string' },
    listen: { type: 'string', default: DEFAULT_LISTEN },
    'state-dir': { type: 'string', default: DEFAULT_CONTROLLER_STATE_DIR },
    'trust-domain': { type: 'string' },
    auth: { type: 'string' },
    ca: { type: 'string' },
    readiness: { type: 'string' },
  },
  subcommands: [tokenCommand],
  run: async (args, io) => {
    const spec = args.values.source as string | undefined;
    if (!spec) throw new UsageError('--source is required (dir:PATH or kubernetes)');
    const listen = args.values.listen as string;
    if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(listen)) throw new UsageError(`--listen must be HOST:PORT, not '${listen}'`);
    const stateDir = resolve(args.values['state-dir'] as string);
    const td = args.values['trust-domain'] as string | undefined;
    const inKube = spec === 'kubernetes';
    const auth = (args.values.auth as string | undefined) ?? (inKube ? 'kubernetes' : 'lab');
    if (auth !== 'lab' && auth !== 'kubernetes') throw new UsageError(`--auth must be 'lab' or 'kubernetes', not '${auth}'`);
    const { kubernetesSettings, kubernetesAuthenticator, kubernetesCaLoader } = await import('../../controller/kubernetes-setup.js');
    const settings = kubernetesSettings(process.env);
    const readinessFlag = (args.values.readiness as string | undefined) ?? (inKube ? settings.readiness : 'off');
    const readiness = readinessFlag === 'off' ? undefined : readinessFlag;
    if (readiness) parseReadiness(readiness);
    const caSpec = (args.values.ca as string | undefined) ?? (inKube ? `secret:${settings.namespace}` : 'dir');
    const secret = /^secret:([a-z0-9]([-a-z0-9]*[a-z0-9])?)(?:\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?))?$/.exec(caSpec);
    if (caSpec !== 'dir' && !secret) throw new UsageError(`--ca must be 'dir' or 'secret:NAMESPACE[/NAME]', not '${caSpec}'`);
    let kc: import('@kubernetes/client-node').KubeConfig | undefined;
    const kubeConfig = async () => {
      if (!kc) {
        const { KubeConfig } = await import('@kubernetes/client-node');
        kc = new KubeConfig();
        kc.loadFromDefault();
      }
      return kc;
    };
    const authenticator = auth === 'kubernetes' ? kubernetesAuthenticator(await kubeConfig(), settings) : undefined;
    const caAt = secret ? { namespace: secret[1]!, caSecret: secret[3] ?? settings.caSecret, rootConfigMap: settings.rootConfigMap } : undefined;
    const loadCa: ControllerOptions['loadCa'] = caAt ? kubernetesCaLoader(await kubeConfig(), caAt) : undefined;
    // Loaded here: the agent process starts through this CLI and needs none of it.
    const { Controller } = await import('../../controller/controller.js');
    const controller = await Controller.start({
      source: await sourceFrom(spec), stateDir, listen, ...(td ? { trustDomain: td } : {}), ...(authenticator ? { authenticator } : {}), ...(loadCa ? { loadCa } : {}),
      ...(readiness ? { readiness } : {}), ...(inKube ? { namespace: settings.namespace } : {}),
    });
    const rootPath = caAt ? `Secret ${caAt.namespace}/${caAt.caSecret} (published in ConfigMap ${caAt.namespace}/${caAt.rootConfigMap})` : join(stateDir, 'ca', 'ca-cert.pem');
    io.err(`weft controller: serving on ${listen.replace(/:\d+$/, '')}:${controller.port}, root certificate ${rootPath}${readiness ? `, readiness :${controller.readinessPort}` : ''}\n`);
    await new Promise<void>((done) => {
      const stop = () => done();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    await controller.stop();
    return 0;
  },
};
