// What a cluster operator relies on in the install (`weft manifest`, the same objects as the
// chart): least privilege, probes, resources, the surge update, RBAC scope, the agent's mounts
// and environment, the CRDs from deploy/crds, namespaces and values applied everywhere.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { main } from '../../agent/src/cli/main.js';
import { AGENT_CAPABILITIES } from '../../agent/src/deploy/objects.js';
import { packageRoot, parseObjects } from '../../agent/src/deploy/render.js';
import { parseSet } from '../../agent/src/deploy/values.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

async function manifest(...args: string[]): Promise<Any[]> {
  let out = '';
  let err = '';
  const code = await main(['manifest', ...args], { out: (t) => (out += t), err: (t) => (err += t) });
  assert.equal(code, 0, err);
  return parseObjects(out);
}
const find = (objs: Any[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} is rendered`);
  return o;
};
const agentPod = (objs: Any[]) => find(objs, 'DaemonSet', 'weft-agent').spec.template.spec;
const arg = (container: Any, flag: string) => {
  const i = (container.args as string[]).indexOf(flag);
  assert.ok(i > 0, `${flag} is passed`);
  return container.args[i + 1] as string;
};
const env = (container: Any) => Object.fromEntries((container.env as Any[]).map((e) => [e.name, e.value ?? e.valueFrom]));

/** Every key/value pair anywhere in an object tree. */
function* walk(o: Any, path = ''): Generator<[string, Any]> {
  if (o && typeof o === 'object') {
    for (const [k, v] of Object.entries(o)) {
      yield [`${path}.${k}`, v];
      yield* walk(v, `${path}.${k}`);
    }
  }
}

describe('weft manifest: the install', () => {
  it('nothing is privileged; the agent holds exactly the listed capabilities, the controller none', async () => {
    const objs = await manifest('--set', 'agent.hostNetwork=true,podMonitor.enabled=true');
    for (const o of objs) for (const [p, v] of walk(o)) assert.ok(!(p.endsWith('.privileged') && v === true), `${o.kind}/${o.metadata.name}${p} is privileged`);
    const agent = agentPod(objs).containers[0];
    assert.deepEqual(agent.securityContext.capabilities.drop, ['ALL']);
    assert.deepEqual([...agent.securityContext.capabilities.add].sort(), ['BPF', 'NET_ADMIN', 'SYS_ADMIN', 'SYS_PTRACE']);
    assert.deepEqual(AGENT_CAPABILITIES.map(([c]) => c).sort(), [...agent.securityContext.capabilities.add].sort());
    assert.equal(agent.securityContext.readOnlyRootFilesystem, true);
    // The API server refuses allowPrivilegeEscalation: false together with CAP_SYS_ADMIN.
    assert.notEqual(agent.securityContext.allowPrivilegeEscalation, false);
    const controllerPod = find(objs, 'Deployment', 'weft-controller').spec.template.spec;
    const controller = controllerPod.containers[0];
    assert.deepEqual(controller.securityContext.capabilities, { drop: ['ALL'] });
    assert.equal(controller.securityContext.allowPrivilegeEscalation, false);
    assert.equal(controllerPod.securityContext.runAsNonRoot, true);
    assert.equal(controllerPod.securityContext.runAsUser, 65532);
  });

  it('every capability carries a comment saying why, in the chart template too', () => {
    const template = readFileSync(join(packageRoot(), 'deploy/helm/weft/templates/agent-daemonset.yaml'), 'utf8');
    for (const [cap, why] of AGENT_CAPABILITIES) {
      assert.match(template, new RegExp(`# ${why.replace(/[()<>/.]/g, '\\$&')}\\n\\s+- "${cap}"`), `${cap} has its reason above it`);
    }
  });

  it('no hostNetwork and no hostPID unless configured; hostNetwork=true also switches the DNS policy', async () => {
    const def = agentPod(await manifest());
    assert.equal(def.hostNetwork, false);
    assert.equal(def.hostPID, false);
    assert.equal(def.dnsPolicy, undefined);
    const on = agentPod(await manifest('--set', 'agent.hostNetwork=true'));
    assert.equal(on.hostNetwork, true);
    assert.equal(on.dnsPolicy, 'ClusterFirstWithHostNet');
    for (const o of await manifest()) if (o.kind !== 'DaemonSet') for (const [p, v] of walk(o)) assert.ok(!(/\.host(Network|PID|IPC)$/.test(p) && v === true), p);
  });

  it('the agent: readiness on 15021, metrics port 15020 annotated for Prometheus, node-critical, tolerates every taint', async () => {
    const objs = await manifest();
    const ds = find(objs, 'DaemonSet', 'weft-agent');
    const pod = ds.spec.template;
    const c = pod.spec.containers[0];
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/healthz/ready', port: 15021 });
    assert.ok(c.ports.some((p: Any) => p.containerPort === 15020 && p.name === 'http-metrics'));
    assert.ok(c.ports.some((p: Any) => p.containerPort === 15021));
    assert.ok(!c.ports.some((p: Any) => p.containerPort === 15000), 'the admin port stays localhost-only, not a container port');
    assert.deepEqual(pod.metadata.annotations, { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15020', 'prometheus.io/path': '/metrics' });
    assert.equal(pod.spec.priorityClassName, 'system-node-critical');
    assert.deepEqual(pod.spec.tolerations, [{ operator: 'Exists' }]);
    assert.deepEqual(pod.spec.nodeSelector, { 'kubernetes.io/os': 'linux' });
  });

  it('rolling update with surge: the new agent starts beside the old one; drain deadline below the grace period', async () => {
    const ds = find(await manifest('--set', 'agent.terminationGracePeriodSeconds=45,agent.drainDeadlineSeconds=40'), 'DaemonSet', 'weft-agent');
    assert.deepEqual(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    assert.equal(ds.spec.template.spec.terminationGracePeriodSeconds, 45);
    assert.equal(arg(ds.spec.template.spec.containers[0], '--drain-deadline'), '40s');
    const def = find(await manifest(), 'DaemonSet', 'weft-agent').spec.template.spec;
    assert.ok(parseInt(arg(def.containers[0], '--drain-deadline'), 10) < def.terminationGracePeriodSeconds);
  });

  it('resources are set for both workloads and follow the values', async () => {
    const objs = await manifest('--set', 'agent.resources.limits.memory=3Gi,controller.resources.requests.cpu=1');
    const agent = agentPod(objs).containers[0].resources;
    assert.deepEqual(agent, { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '3Gi' } });
    const ctl = find(objs, 'Deployment', 'weft-controller').spec.template.spec.containers[0].resources;
    assert.equal(ctl.requests.cpu, 1);
    assert.equal(ctl.limits.memory, '512Mi');
  });

  it('the agent mounts: bpffs from the host (HostToContainer: Bidirectional needs privileged), host cgroup and /proc read-only, a projected token with the audience', async () => {
    const pod = agentPod(await manifest('--set', 'agent.tokenAudience=weft-xds'));
    const mounts = Object.fromEntries(pod.containers[0].volumeMounts.map((m: Any) => [m.name, m]));
    const vols = Object.fromEntries(pod.volumes.map((v: Any) => [v.name, v]));
    assert.equal(mounts.bpffs.mountPropagation, 'HostToContainer');
    assert.equal(vols.bpffs.hostPath.path, '/sys/fs/bpf');
    assert.equal(mounts.cgroup.readOnly, true);
    assert.equal(mounts.cgroup.mountPath, '/sys/fs/cgroup', 'the agent finds cgroup v2 at its usual place');
    assert.equal(vols.cgroup.hostPath.path, '/sys/fs/cgroup');
    assert.equal(mounts['host-proc'].readOnly, true);
    assert.equal(vols['host-proc'].hostPath.path, '/proc');
    // the pod netns sysctls are written through <--proc>/sys/net: the host's /proc/sys/net, writable
    assert.equal(vols['host-proc-sys-net'].hostPath.path, '/proc/sys/net');
    assert.equal(mounts['host-proc-sys-net'].mountPath, `${mounts['host-proc'].mountPath}/sys/net`);
    assert.notEqual(mounts['host-proc-sys-net'].readOnly, true);
    for (const m of Object.values(mounts) as Any[]) {
      assert.notEqual(m.mountPropagation, 'Bidirectional', `${m.name}: the API refuses Bidirectional in an unprivileged container`);
      if (['cgroup', 'host-proc', 'weft-token', 'ca-root'].includes(m.name)) assert.equal(m.readOnly, true, m.name);
    }
    const token = vols['weft-token'].projected.sources[0].serviceAccountToken;
    assert.equal(token.audience, 'weft-xds');
    assert.ok(token.expirationSeconds <= 3600);
    assert.equal(mounts['weft-token'].mountPath + '/' + token.path, arg(pod.containers[0], '--token-file'));
    assert.equal(mounts['ca-root'].mountPath + '/root-cert.pem', arg(pod.containers[0], '--ca-root'));
    assert.equal(arg(pod.containers[0], '--proc'), mounts['host-proc'].mountPath);
    assert.equal(pod.serviceAccountName, 'weft-agent');
  });

  it('the agent command: node name from the downward API, controller address in its namespace, trust domain, log level', async () => {
    const c = agentPod(await manifest('--namespace', 'mesh', '--set', 'trustDomain=corp.example,logLevel=warn')).containers[0];
    const e = env(c);
    assert.equal(c.args[0], 'agent');
    assert.deepEqual(e.WEFT_NODE_NAME, { fieldRef: { fieldPath: 'spec.nodeName' } });
    assert.equal(arg(c, '--node'), '$(WEFT_NODE_NAME)', 'expanded by the kubelet from the downward API');
    assert.equal(arg(c, '--controller'), 'weft-controller.mesh.svc:15012');
    assert.equal(arg(c, '--trust-domain'), 'corp.example');
    assert.equal(e.WEFT_LOG_LEVEL, 'warn');
    assert.equal(e.WEFT_NODE_CHECKS_ANNOTATION, 'weft.io/node-checks');
  });

  it('the agent flags are ones `weft agent` accepts, with values it parses', async () => {
    const { agentCommand } = await import('../../agent/src/cli/commands/agent.js');
    const { agentOptionsFromFlags } = await import('../../agent/src/agent/index.js');
    const { parseCommandArgs } = await import('../../agent/src/cli/command.js');
    const c = agentPod(await manifest('--set', 'agent.drainDeadlineSeconds=7')).containers[0];
    const argv = (c.args as string[]).slice(1).map((a) => a.replace('$(WEFT_NODE_NAME)', 'node-a'));
    const parsed = parseCommandArgs(agentCommand, argv);
    const opts = agentOptionsFromFlags(parsed.values as Any);
    assert.equal(opts.node, 'node-a');
    assert.equal(opts.drainDeadlineMs, 7000);
    assert.equal(opts.proc, '/host/proc');
    assert.equal(opts.readiness.port, 15021);
    assert.equal(opts.metrics.port, 15020);
    assert.equal(opts.admin.host, '127.0.0.1');
    assert.equal(opts.admin.port, 15000);
  });

  it('the controller: Service on 15012, readiness on 15021, kubernetes source, trust domain and trusted agent account', async () => {
    const objs = await manifest('--namespace', 'mesh', '--set', 'trustDomain=corp.example');
    const svc = find(objs, 'Service', 'weft-controller');
    assert.deepEqual(svc.spec.ports.map((p: Any) => [p.port, p.targetPort]), [[15012, 15012]]);
    const dep = find(objs, 'Deployment', 'weft-controller');
    assert.deepEqual(svc.spec.selector, { 'app.kubernetes.io/name': 'weft-controller' });
    assert.equal(dep.spec.template.metadata.labels['app.kubernetes.io/name'], 'weft-controller', 'the Service selects the controller pods');
    const c = dep.spec.template.spec.containers[0];
    assert.deepEqual(c.args.slice(0, 3), ['controller', '--source', 'kubernetes']);
    assert.equal(c.args[c.args.indexOf('--trust-domain') + 1], 'corp.example');
    assert.equal(c.args[c.args.indexOf('--listen') + 1], '0.0.0.0:15012');
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/healthz/ready', port: 15021 });
    assert.equal(env(c).WEFT_TRUSTED_NODE_ACCOUNTS, 'mesh/weft-agent');
    assert.equal(dep.spec.template.spec.serviceAccountName, 'weft-controller');
  });

  it('RBAC: the controller reads cluster state, creates TokenReviews, and touches Secrets only in its namespace', async () => {
    const objs = await manifest('--namespace', 'mesh');
    const cr = find(objs, 'ClusterRole', 'weft-controller');
    const verbsFor = (rules: Any[], resource: string) => rules.filter((r) => r.resources.includes(resource)).flatMap((r) => r.verbs).sort();
    for (const r of ['pods', 'namespaces', 'services', 'serviceaccounts', 'authorizationpolicies', 'peerauthentications']) {
      assert.deepEqual(verbsFor(cr.rules, r), ['get', 'list', 'watch'], r);
    }
    assert.deepEqual(verbsFor(cr.rules, 'tokenreviews'), ['create']);
    assert.deepEqual(verbsFor(cr.rules, 'secrets'), [], 'no cluster-wide Secret access');
    for (const o of objs.filter((x) => /Role$/.test(x.kind))) {
      for (const r of o.rules) {
        assert.ok(!r.verbs.includes('*') && !r.resources.includes('*') && !r.apiGroups.includes('*'), `${o.kind}/${o.metadata.name} has a wildcard`);
      }
    }
    const role = find(objs, 'Role', 'weft-controller');
    assert.equal(role.metadata.namespace, 'mesh');
    assert.ok(role.rules.some((r: Any) => r.resources.includes('secrets')));
    const rb = find(objs, 'RoleBinding', 'weft-controller');
    assert.deepEqual(rb.subjects, [{ kind: 'ServiceAccount', name: 'weft-controller', namespace: 'mesh' }]);
    assert.deepEqual(rb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'weft-controller' });
    const agentRole = find(objs, 'ClusterRole', 'weft-agent');
    assert.deepEqual(agentRole.rules.map((r: Any) => [r.resources, r.verbs]), [[['nodes'], ['get', 'patch']]]);
    for (const b of objs.filter((x) => x.kind === 'ClusterRoleBinding')) assert.equal(b.subjects[0].namespace, 'mesh');
  });

  it('the CRDs are deploy/crds, unchanged, first; --skip-crds leaves them out', async () => {
    const objs = await manifest();
    const crdDir = join(packageRoot(), 'deploy/crds');
    const files = readdirSync(crdDir).filter((f) => f.endsWith('.yaml'));
    assert.ok(files.length >= 2);
    const crds = objs.filter((o) => o.kind === 'CustomResourceDefinition');
    assert.deepEqual(crds, files.sort().map((f) => parse(readFileSync(join(crdDir, f), 'utf8'))));
    assert.deepEqual(crds.map((c) => c.spec.names.kind).sort(), ['AuthorizationPolicy', 'PeerAuthentication']);
    assert.deepEqual(objs.slice(0, 3).map((o) => o.kind), ['Namespace', 'CustomResourceDefinition', 'CustomResourceDefinition']);
    assert.equal((await manifest('--skip-crds')).filter((o) => o.kind === 'CustomResourceDefinition').length, 0);
  });

  it('--namespace puts every namespaced object there; the PodMonitor appears only when enabled', async () => {
    const objs = await manifest('--namespace', 'mesh', '--set', 'podMonitor.enabled=true,podMonitor.labels.release=prom');
    const clusterScoped = new Set(['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding']);
    for (const o of objs) {
      if (clusterScoped.has(o.kind)) assert.equal(o.metadata.namespace, undefined, o.kind);
      else assert.equal(o.metadata.namespace, 'mesh', `${o.kind}/${o.metadata.name}`);
    }
    const pm = find(objs, 'PodMonitor', 'weft-agent');
    assert.deepEqual(pm.metadata.labels, { release: 'prom' });
    assert.deepEqual(pm.spec.selector.matchLabels, find(objs, 'DaemonSet', 'weft-agent').spec.selector.matchLabels);
    assert.equal(pm.spec.podMetricsEndpoints[0].port, 'http-metrics');
    assert.equal((await manifest()).filter((o) => o.kind === 'PodMonitor').length, 0);
  });

  it('the optional ResourceQuota admits the agent\'s priority class (GKE), only when enabled', async () => {
    assert.equal((await manifest()).filter((o) => o.kind === 'ResourceQuota').length, 0);
    const objs = await manifest('--set', 'resourceQuota.enabled=true,resourceQuota.pods=64');
    const q = find(objs, 'ResourceQuota', 'weft-agent');
    assert.equal(q.spec.hard.pods, '64');
    assert.deepEqual(q.spec.scopeSelector.matchExpressions, [{ operator: 'In', scopeName: 'PriorityClass', values: [agentPod(objs).priorityClassName] }]);
  });

  it('bad input is refused with a clear message and prints nothing', async () => {
    for (const [args, pattern, code] of [
      [['--set', 'agent'], /a --set item must be key=value/, 1],
      [['--set', 'agent.tolerations[0].key=x'], /list indexes in --set keys are not supported/, 1],
      [['--namespace', 'Not_A_Namespace'], /not a valid namespace name/, 1],
      [['-f', '/nonexistent/weft-values.yaml'], /cannot read values file/, 2],
      [['--set', 'image=x'], /value 'image': must be a map of repository, tag, pullPolicy/, 1],
    ] as [string[], RegExp, number][]) {
      let out = '';
      let err = '';
      const rc = await main(['manifest', ...args], { out: (t) => (out += t), err: (t) => (err += t) });
      assert.equal(rc, code, `${args.join(' ')}: ${err}`);
      assert.match(err, pattern);
      assert.equal(out, '');
    }
  });
});

describe('--set parsing (Helm strvals forms)', () => {
  it('types, nesting, escapes, lists, several pairs', () => {
    assert.deepEqual(parseSet('a.b=1,c=true,d=False,e=null,f=007,g=-3,h=x.y'), { a: { b: 1 }, c: true, d: false, e: null, f: '007', g: -3, h: 'x.y' });
    assert.deepEqual(parseSet('n.kubernetes\\.io/os=linux'), { n: { 'kubernetes.io/os': 'linux' } });
    assert.deepEqual(parseSet('l={a,2,true}'), { l: ['a', 2, true] });
    assert.deepEqual(parseSet('s=a\\,b'), { s: 'a,b' });
    assert.deepEqual(parseSet('t=5', false), { t: '5' });
    assert.deepEqual(parseSet('e='), { e: '' });
  });
});
