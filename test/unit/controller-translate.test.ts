// Cluster objects → xDS resources: enrolment, identity fields, services, selector policies,
// and refusal of bad objects without affecting the others.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { translateSnapshot, type TranslationCache } from '../../agent/src/controller/translate.js';
import { toBinary } from '@bufbuild/protobuf';
import { AddressSchema } from '../../agent/src/xds/gen/istio/workload/workload_pb.js';
import { parseManifestText, relevantChange } from '../../agent/src/controller/source-dir.js';
import { TunnelProtocol, WorkloadType, WorkloadStatus, type Workload, type Service } from '../../agent/src/xds/gen/istio/workload/workload_pb.js';
import { Scope, Action } from '../../agent/src/xds/gen/istio/security/authorization_pb.js';
import { bytesToIp } from '../../agent/src/policy/cidr.js';

const MANIFESTS = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { weft.io/mesh: enabled } }
---
apiVersion: v1
kind: Namespace
metadata: { name: legacy }
---
apiVersion: v1
kind: Pod
metadata:
  name: web-7d9f8-abcde
  namespace: shop
  uid: 11111111-aaaa-bbbb-cccc-000000000001
  labels: { app: web, version: v2 }
  ownerReferences: [{ kind: ReplicaSet, name: web-7d9f8, controller: true }]
spec:
  nodeName: node1
  serviceAccountName: web
  containers: [{ name: app, ports: [{ name: http, containerPort: 8080 }] }]
status: { phase: Running, podIP: 198.18.1.10, podIPs: [{ ip: 198.18.1.10 }] }
---
apiVersion: v1
kind: Pod
metadata: { name: opted-out, namespace: shop, uid: u-2, labels: { app: web, weft.io/mesh: disabled } }
spec: { nodeName: node2 }
status: { podIP: 198.18.2.10, conditions: [{ type: Ready, status: "False" }] }
---
apiVersion: v1
kind: Pod
metadata: { name: old, namespace: legacy, uid: u-3, labels: { app.kubernetes.io/name: oldapp, app.kubernetes.io/version: "1.0" } }
spec: { nodeName: node1, serviceAccountName: oldsa }
status: { podIP: 198.18.1.11 }
---
apiVersion: v1
kind: Pod
metadata: { name: pending, namespace: shop, uid: u-4 }
spec: { nodeName: node2, serviceAccountName: batch }
status: { phase: Pending }
---
apiVersion: v1
kind: Pod
metadata: { name: broken, namespace: shop, uid: u-5 }
spec: { nodeName: node2 }
status: { podIP: 198.18.999.1 }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: 198.19.0.10
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: http }, { name: raw, port: 9000 }, { name: dns, port: 53, protocol: UDP }]
---
apiVersion: v1
kind: Service
metadata: { name: bad-svc, namespace: shop }
spec: { clusterIP: 198.19.0.11, ports: [{ port: 700000 }] }
---
apiVersion: security.weft.io/v1
kind: AuthorizationPolicy
metadata: { name: web-allow, namespace: shop }
spec: { selector: { matchLabels: { app: web } }, rules: [{ from: [{ source: { namespaces: [shop] } }] }] }
---
apiVersion: security.weft.io/v1
kind: AuthorizationPolicy
metadata: { name: other-app, namespace: shop }
spec: { selector: { matchLabels: { app: db } } }
---
apiVersion: security.weft.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: weft-system }
spec: { mtls: { mode: STRICT } }
---
apiVersion: security.weft.io/v1
kind: AuthorizationPolicy
metadata: { name: bad-pol, namespace: shop }
spec: { rules: [{ to: [{ operation: { paths: ["/admin"] } }] }] }
`;

const snap = () => parseManifestText(MANIFESTS, 'state/all.yaml');
const t = translateSnapshot({ objects: snap().objects, problems: [] });
const workload = (uid: string) => {
  const a = t.addresses.get(uid);
  assert.equal(a?.type.case, 'workload', `no workload ${uid}`);
  return a!.type.value as Workload;
};

describe('controller translation', () => {
  it('enrols pods of a labelled namespace with HBONE and fills identity and telemetry fields', () => {
    const w = workload('11111111-aaaa-bbbb-cccc-000000000001');
    assert.equal(w.tunnelProtocol, TunnelProtocol.HBONE);
    assert.deepEqual([w.name, w.namespace, w.node, w.serviceAccount, w.trustDomain], ['web-7d9f8-abcde', 'shop', 'node1', 'web', 'cluster.local']);
    assert.deepEqual(w.addresses.map((a) => bytesToIp(a)), ['198.18.1.10']);
    assert.deepEqual([w.canonicalName, w.canonicalRevision], ['web', 'v2']);
    assert.deepEqual([w.workloadType, w.workloadName], [WorkloadType.DEPLOYMENT, 'web']);
    assert.equal(w.status, WorkloadStatus.HEALTHY);
    assert.equal(w.clusterId, 'Kubernetes');
  });

  it('leaves opted-out pods and pods of unlabelled namespaces without a tunnel', () => {
    const out = workload('u-2');
    assert.equal(out.tunnelProtocol, TunnelProtocol.NONE);
    assert.equal(out.serviceAccount, 'default');
    assert.equal(out.status, WorkloadStatus.UNHEALTHY);
    const old = workload('u-3');
    assert.equal(old.tunnelProtocol, TunnelProtocol.NONE);
    assert.deepEqual([old.canonicalName, old.canonicalRevision, old.workloadType], ['oldapp', '1.0', WorkloadType.POD]);
  });

  it('maps services to namespace/hostname with ports, resolving named target ports per pod, TCP only', () => {
    const s = t.addresses.get('shop/web.shop.svc.cluster.local')!.type.value as Service;
    assert.equal(s.hostname, 'web.shop.svc.cluster.local');
    assert.deepEqual(s.addresses.map((a) => bytesToIp(a.address)), ['198.19.0.10']);
    assert.deepEqual(s.ports.map((p) => [p.servicePort, p.targetPort]), [[80, 0], [9000, 9000]]);
    const w = workload('11111111-aaaa-bbbb-cccc-000000000001');
    assert.deepEqual(Object.keys(w.services), ['shop/web.shop.svc.cluster.local']);
    assert.deepEqual(w.services['shop/web.shop.svc.cluster.local']!.ports.map((p) => [p.servicePort, p.targetPort]), [[80, 8080], [9000, 9000]]);
    // the opted-out pod has no container port named http: only the numeric port maps
    assert.deepEqual(workload('u-2').services['shop/web.shop.svc.cluster.local']!.ports.map((p) => [p.servicePort, p.targetPort]), [[9000, 9000]]);
  });

  it('lists selector policies, and the static STRICT policy under mesh-wide STRICT, on the workloads they select', () => {
    const STRICT = 'weft-system/istio_converted_static_strict';
    assert.deepEqual(workload('11111111-aaaa-bbbb-cccc-000000000001').authorizationPolicies, ['shop/web-allow', STRICT]);
    assert.deepEqual(workload('u-3').authorizationPolicies, [STRICT], 'mesh-wide STRICT reaches every namespace');
    assert.equal(t.policies.get('shop/web-allow')?.scope, Scope.WORKLOAD_SELECTOR);
    const strict = t.policies.get(STRICT);
    assert.equal(strict?.scope, Scope.WORKLOAD_SELECTOR);
    assert.equal(strict?.action, Action.DENY);
  });

  it('does not serve pods without an IP, but counts their identities for the CA', () => {
    assert.equal(t.addresses.has('u-4'), false);
    assert.ok(t.identitiesByNode.get('node2')?.has('shop/batch'));
    assert.ok(t.identitiesByNode.get('node1')?.has('shop/web'));
    assert.ok(!t.identitiesByNode.get('node1')?.has('shop/batch'));
  });

  it('refuses bad objects with object, field and reason, and serves everything else', () => {
    const byObject = new Map(t.problems.map((p) => [p.object, p]));
    assert.deepEqual(
      [byObject.get('Pod shop/broken')?.field, byObject.get('Pod shop/broken')?.reason],
      ['status.podIP', "'198.18.999.1' is not an IP address"],
    );
    assert.equal(byObject.get('Service shop/bad-svc')?.field, 'spec.ports[0].port');
    assert.match(byObject.get('Pod shop/broken')!.origin!, /^state\/all\.yaml#\d+$/);
    assert.equal(t.problems.filter((p) => p.severity !== 'warning').length, 2);
    assert.equal(t.addresses.has('u-5'), false);
    assert.equal([...t.addresses.values()].filter((a) => a.type.case === 'workload').length, 3);
  });

  it('serves a policy with HTTP attributes fail-closed, with a warning naming the field', () => {
    const w = t.problems.find((p) => p.object === 'AuthorizationPolicy shop/bad-pol');
    assert.equal(w?.severity, 'warning');
    assert.equal(w?.field, 'spec.rules[0]');
    assert.match(w!.reason, /spec\.rules\[0\]\.to\[0\]\.operation\.paths/);
    assert.equal(t.policies.get('shop/bad-pol')?.rules.length, 0, 'the ALLOW rule with paths is left out');
    assert.deepEqual([...t.policies.keys()].sort(), ['shop/bad-pol', 'shop/other-app', 'shop/web-allow', 'weft-system/istio_converted_static_strict']);
  });

  it('refuses two pods claiming one IP, keeping the first', () => {
    const dup = parseManifestText(`
kind: Pod
metadata: { name: a, namespace: x, uid: ua }
status: { podIP: 198.18.5.5 }
---
kind: Pod
metadata: { name: b, namespace: x, uid: ub }
status: { podIP: 198.18.5.5 }
`, 'dup.yaml');
    const r = translateSnapshot({ objects: dup.objects, problems: [] });
    assert.ok(r.addresses.has('ua'));
    assert.ok(!r.addresses.has('ub'));
    assert.match(r.problems[0]!.reason, /already used by Pod x\/a/);
  });

  it('reports unparseable YAML by file and document', () => {
    const r = parseManifestText('kind: Pod\nmetadata: {name: a\n---\nkind: Namespace\nmetadata: {name: ok}\n', 'x.yaml');
    assert.equal(r.objects.length, 1);
    assert.equal(r.problems[0]!.object, 'x.yaml');
    assert.match(r.problems[0]!.reason, /YAML error/);
  });

  it('the directory watch reacts to YAML and directories, not to logs or temp files', () => {
    for (const f of ['Pod_demo_a.yaml', 'nested/x.yml', 'newdir', null]) assert.equal(relevantChange(f), true, String(f));
    for (const f of ['logs/app-1234.log', 'runtime.json', '.Pod_demo_a.yaml.99.ab12cd34.tmp', 'nested/.swp']) assert.equal(relevantChange(f), false, f);
  });

  it('with a cache, reuses unchanged workloads and rebuilds exactly what changed, matching a fresh translation', () => {
    const cache: TranslationCache = new Map();
    const first = translateSnapshot({ objects: snap().objects, problems: [] }, {}, cache);
    const again = translateSnapshot({ objects: snap().objects, problems: [] }, {}, cache);
    for (const [k, a] of first.addresses) {
      if (a.type.case === 'workload') assert.equal(again.addresses.get(k), a, `${k} reused`);
    }
    // move one pod, and unlabel the legacy namespace's neighbour: only affected workloads change
    const edited = parseManifestText(MANIFESTS.replace('nodeName: node1, serviceAccountName: oldsa', 'nodeName: node9, serviceAccountName: oldsa'), 'state/all.yaml');
    const third = translateSnapshot({ objects: edited.objects, problems: [] }, {}, cache);
    assert.notEqual(third.addresses.get('u-3'), again.addresses.get('u-3'));
    assert.equal((third.addresses.get('u-3')!.type.value as Workload).node, 'node9');
    assert.equal(third.addresses.get('u-2'), again.addresses.get('u-2'));
    const enc = (t: typeof first) => [...t.addresses].map(([k, a]) => `${k}:${Buffer.from(toBinary(AddressSchema, a)).toString('hex')}`).sort();
    assert.deepEqual(enc(third), enc(translateSnapshot({ objects: edited.objects, problems: [] })));
    // a namespace label change rebuilds that namespace's workloads
    const relabelled = parseManifestText(MANIFESTS.replace('metadata: { name: shop, labels: { weft.io/mesh: enabled } }', 'metadata: { name: shop }'), 'state/all.yaml');
    const fourth = translateSnapshot({ objects: relabelled.objects, problems: [] }, {}, cache);
    assert.equal((fourth.addresses.get('u-2')!.type.value as Workload).tunnelProtocol, TunnelProtocol.NONE);
    assert.equal((fourth.addresses.get('11111111-aaaa-bbbb-cccc-000000000001')!.type.value as Workload).tunnelProtocol, TunnelProtocol.NONE);
  });
});
