// Translation of security.weft.io/v1 manifests into istio.security.Authorization, checked by
// evaluating the result (what users rely on) and by its scope/shape.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { Action, Scope } from '../../agent/src/xds/gen/istio/security/authorization_pb.js';
import {
  translateAuthorizationPolicy, translatePeerAuthentication, MESH_STRICT_POLICY_NAME, type PolicyObject,
} from '../../agent/src/policy/translate.js';
import { authorize, type Connection } from '../../agent/src/policy/evaluate.js';
import { InvalidPolicyError } from '../../agent/src/policy/errors.js';

const y = (s: string) => parse(s) as PolicyObject;
const from = (ns: string, sa = 'default', ip = '198.18.1.10'): Connection => ({ srcIp: ip, dstIp: '198.18.2.20', dstPort: 8080, peer: { trustDomain: 'cluster.local', namespace: ns, serviceAccount: sa } });
const plain: Connection = { srcIp: '198.18.1.11', dstIp: '198.18.2.20', dstPort: 8080 };

describe('AuthorizationPolicy translation', () => {
  it('translates sources and operations with Istio semantics', () => {
    const t = translateAuthorizationPolicy(y(`
apiVersion: security.weft.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-web, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  action: ALLOW
  rules:
  - from:
    - source: { principals: ["cluster.local/ns/front/sa/ui"] }
    - source: { namespaces: ["ops*"], notIpBlocks: ["198.18.9.0/24"] }
    to:
    - operation: { ports: ["8080", 9090] }
`));
    assert.equal(t.authorization.scope, Scope.WORKLOAD_SELECTOR);
    assert.deepEqual(t.selector, { app: 'web' });
    assert.equal(t.authorization.action, Action.ALLOW);
    const p = [t.authorization];
    assert.equal(authorize(p, from('front', 'ui')).allowed, true, 'principal listed');
    assert.equal(authorize(p, from('front', 'other')).allowed, false, 'other principal');
    assert.equal(authorize(p, from('ops-team')).allowed, true, 'namespace prefix');
    assert.equal(authorize(p, from('ops-team', 'x', '198.18.9.5')).allowed, false, 'notIpBlocks AND-ed with namespaces');
    assert.equal(authorize(p, { ...from('front', 'ui'), dstPort: 22 }).allowed, false, 'to.ports AND-ed with from');
    assert.equal(authorize(p, plain).allowed, false, 'plaintext has no principal or namespace');
  });

  it('scopes: root namespace is GLOBAL, no selector is NAMESPACE', () => {
    const g = translateAuthorizationPolicy(y('{kind: AuthorizationPolicy, metadata: {name: a, namespace: weft-system}, spec: {action: DENY, rules: [{}]}}'));
    assert.equal(g.authorization.scope, Scope.GLOBAL);
    assert.equal(g.selector, undefined);
    const n = translateAuthorizationPolicy(y('{kind: AuthorizationPolicy, metadata: {name: a, namespace: shop}, spec: {}}'));
    assert.equal(n.authorization.scope, Scope.NAMESPACE);
    assert.equal(n.authorization.action, Action.ALLOW, 'ALLOW is the default action');
  });

  it('spec {} is allow-nothing; rules: [{}] matches everything', () => {
    const nothing = translateAuthorizationPolicy(y('{kind: AuthorizationPolicy, metadata: {name: a, namespace: shop}, spec: {}}'));
    assert.equal(authorize([nothing.authorization], from('x')).allowed, false);
    const all = translateAuthorizationPolicy(y('{kind: AuthorizationPolicy, metadata: {name: a, namespace: shop}, spec: {action: DENY, rules: [{}]}}'));
    assert.equal(authorize([all.authorization], from('x')).allowed, false);
    assert.equal(authorize([all.authorization], plain).allowed, false);
  });

  it('"*" principal is presence: admits any authenticated peer, not plaintext', () => {
    const t = translateAuthorizationPolicy(y('{kind: AuthorizationPolicy, metadata: {name: a, namespace: s}, spec: {rules: [{from: [{source: {principals: ["*"]}}]}]}}'));
    assert.equal(authorize([t.authorization], from('any')).allowed, true);
    assert.equal(authorize([t.authorization], plain).allowed, false);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['spec: {action: AUDIT}', 'spec.action', /not supported/],
    ['spec: {rules: [{from: [{source: {ipBlocks: ["300.1.1.1"]}}]}]}', 'spec.rules[0].from[0].source.ipBlocks[0]', /not an IP address/],
    ['spec: {rules: [{to: [{operation: {ports: ["http"]}}]}]}', 'spec.rules[0].to[0].operation.ports[0]', /not a port/],
    ['spec: {rules: [{to: [{operation: {methods: ["GET"]}}]}]}', 'spec.rules[0].to[0].operation.methods', /L7 attribute/],
    ['spec: {rules: [{when: [{key: a}]}]}', 'spec.rules[0].when', /L7/],
    ['spec: {rules: [{from: [{source: {principals: ["spiffe://cluster.local/ns/a/sa/b"]}}]}]}', 'spec.rules[0].from[0].source.principals[0]', /without 'spiffe:\/\/'/],
    ['spec: {rules: [{from: [{source: {}}]}]}', 'spec.rules[0].from[0].source', /empty/],
    ['spec: {rules: [{from: []}]}', 'spec.rules[0].from', /empty list/],
    ['spec: {bogus: 1}', 'spec.bogus', /unknown field/],
    ['spec: {rules: {}}', 'spec.rules', /must be a list/],
  ];
  for (const [spec, field, reason] of bad) {
    it(`refuses ${field} with object, field and reason`, () => {
      const o = y(`{kind: AuthorizationPolicy, metadata: {name: bad, namespace: shop}, ${spec}}`);
      assert.throws(() => translateAuthorizationPolicy(o), (e: unknown) => {
        assert.ok(e instanceof InvalidPolicyError);
        assert.equal(e.code, 'WEFT_E_INVALID_POLICY');
        assert.equal(e.object, 'AuthorizationPolicy shop/bad');
        assert.equal(e.field, field);
        assert.match(e.reason, reason);
        return true;
      });
    });
  }
  it('refuses a missing namespace', () => {
    assert.throws(() => translateAuthorizationPolicy(y('{kind: AuthorizationPolicy, metadata: {name: a}}')), /metadata\.namespace: is required/);
  });
});

describe('PeerAuthentication translation', () => {
  it('STRICT becomes a DENY of sources without a principal', () => {
    const t = translatePeerAuthentication(y('{kind: PeerAuthentication, metadata: {name: strict, namespace: shop}, spec: {mtls: {mode: STRICT}}}'))!;
    assert.equal(t.authorization.action, Action.DENY);
    assert.equal(t.authorization.scope, Scope.NAMESPACE);
    assert.equal(t.authorization.name, 'converted_peer_authentication_strict');
    const m = t.authorization.rules[0]!.clauses[0]!.matches[0]!;
    assert.equal(m.notPrincipals[0]!.matchType.case, 'presence');
    assert.equal(authorize([t.authorization], plain).allowed, false);
    assert.equal(authorize([t.authorization], from('a')).allowed, true);
  });
  it('mesh-wide STRICT in the root namespace is the static strict policy, GLOBAL', () => {
    const t = translatePeerAuthentication(y('{kind: PeerAuthentication, metadata: {name: default, namespace: weft-system}, spec: {mtls: {mode: STRICT}}}'))!;
    assert.equal(t.authorization.name, MESH_STRICT_POLICY_NAME);
    assert.equal(t.authorization.scope, Scope.GLOBAL);
  });
  it('PERMISSIVE and DISABLE yield no policy', () => {
    for (const mode of ['PERMISSIVE', 'DISABLE', 'UNSET']) {
      assert.equal(translatePeerAuthentication(y(`{kind: PeerAuthentication, metadata: {name: p, namespace: s}, spec: {mtls: {mode: ${mode}}}}`)), undefined);
    }
  });
  it('port-level PERMISSIVE under STRICT lets plaintext reach that port only', () => {
    const t = translatePeerAuthentication(y('{kind: PeerAuthentication, metadata: {name: p, namespace: s}, spec: {selector: {matchLabels: {app: db}}, mtls: {mode: STRICT}, portLevelMtls: {"9000": {mode: PERMISSIVE}}}}'))!;
    assert.equal(t.authorization.scope, Scope.WORKLOAD_SELECTOR);
    assert.equal(authorize([t.authorization], plain).allowed, false);
    assert.equal(authorize([t.authorization], { ...plain, dstPort: 9000 }).allowed, true);
  });
  it('refuses an unknown mode naming the field', () => {
    assert.throws(
      () => translatePeerAuthentication(y('{kind: PeerAuthentication, metadata: {name: p, namespace: s}, spec: {mtls: {mode: STRICTEST}}}')),
      /PeerAuthentication s\/p: spec\.mtls\.mode: 'STRICTEST' is not one of/,
    );
  });
});
