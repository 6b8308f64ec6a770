// Translation of security.weft.io/v1 manifests into istio.security.Authorization, checked by
// evaluating the result (what users rely on) and by its scope/shape.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { Action, Scope } from '../../agent/src/xds/gen/istio/security/authorization_pb.js';
import {
  translateAuthorizationPolicy, parsePeerAuthentication, peerAuthenticationKeys, convertPeerAuthentication, staticStrictPolicy,
  parentPeerAuthns, workloadPeerAuthn, STATIC_STRICT_POLICY_NAME, type PolicyObject, type PeerAuthn,
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
    ['spec: {rules: [{when: [{key: source.ip}]}]}', 'spec.rules[0].when[0]', /needs values or notValues/],
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

describe('AuthorizationPolicy with HTTP attributes and when conditions (Istio fail-closed rules)', () => {
  it('ALLOW: a rule with HTTP attributes is left out, with a warning naming it', () => {
    const t = translateAuthorizationPolicy(y(`{kind: AuthorizationPolicy, metadata: {name: a, namespace: s}, spec: {rules: [
      {to: [{operation: {methods: [GET], ports: ["8080"]}}]},
      {from: [{source: {namespaces: [ops]}}]}]}}`));
    assert.equal(t.authorization.rules.length, 1);
    assert.equal(t.warnings[0]!.field, 'spec.rules[0]');
    assert.match(t.warnings[0]!.reason, /spec\.rules\[0\]\.to\[0\]\.operation\.methods.*left out, which is more restrictive/);
    assert.equal(authorize([t.authorization], from('front')).allowed, false, 'the GET rule does not allow anything');
    assert.equal(authorize([t.authorization], from('ops')).allowed, true);
  });
  it('DENY: HTTP attributes are ignored, so the rule denies on its L4 parts', () => {
    const t = translateAuthorizationPolicy(y(`{kind: AuthorizationPolicy, metadata: {name: a, namespace: s}, spec: {action: DENY, rules: [
      {to: [{operation: {paths: ["/admin"], ports: ["8080"]}}]}]}}`));
    assert.equal(t.warnings.length, 1);
    assert.match(t.warnings[0]!.reason, /enforced without them/);
    assert.equal(authorize([t.authorization], from('x')).allowed, false, 'port 8080 denied entirely');
    assert.equal(authorize([t.authorization], { ...from('x'), dstPort: 9090 }).allowed, true);
  });
  it('L4 when conditions become clauses; others count as HTTP attributes', () => {
    const t = translateAuthorizationPolicy(y(`{kind: AuthorizationPolicy, metadata: {name: a, namespace: s}, spec: {rules: [
      {when: [{key: source.ip, values: ["198.18.1.0/24"]}, {key: destination.port, notValues: ["22"]}]},
      {when: [{key: "request.headers[x-user]", values: [bob]}]}]}}`));
    assert.equal(t.authorization.rules.length, 1);
    assert.match(t.warnings[0]!.reason, /request\.headers\[x-user\]/);
    assert.equal(authorize([t.authorization], from('x', 'a', '198.18.1.5')).allowed, true);
    assert.equal(authorize([t.authorization], { ...from('x', 'a', '198.18.1.5'), dstPort: 22 }).allowed, false);
    assert.equal(authorize([t.authorization], from('x', 'a', '198.18.2.5')).allowed, false);
  });
  it('serviceAccounts default to the policy namespace', () => {
    const t = translateAuthorizationPolicy(y('{kind: AuthorizationPolicy, metadata: {name: a, namespace: shop}, spec: {rules: [{from: [{source: {serviceAccounts: [web, "ops/admin"]}}]}]}}'));
    assert.equal(authorize([t.authorization], from('shop', 'web')).allowed, true);
    assert.equal(authorize([t.authorization], from('ops', 'admin')).allowed, true);
    assert.equal(authorize([t.authorization], from('ops', 'web')).allowed, false);
  });
});

describe('PeerAuthentication conversion (istiod ambient semantics)', () => {
  const pa = (ns: string, name: string, spec: string, created = '2026-01-01T00:00:00Z') =>
    parsePeerAuthentication(y(`{kind: PeerAuthentication, metadata: {name: ${name}, namespace: ${ns}, creationTimestamp: "${created}"}, spec: ${spec}}`));
  /** keys a workload in `ns` with `labels` lists, given all PeerAuthentications */
  const keysFor = (all: PeerAuthn[], ns: string, labels: Record<string, string> = { app: 'db' }) => {
    const { mesh, ns: nsCfg } = parentPeerAuthns(all, ns);
    return peerAuthenticationKeys(mesh, nsCfg, workloadPeerAuthn(all, ns, labels));
  };
  const STATIC = `weft-system/${STATIC_STRICT_POLICY_NAME}`;

  it('the static STRICT policy denies plaintext and admits mTLS peers', () => {
    const p = staticStrictPolicy();
    assert.deepEqual([p.namespace, p.name, p.action], ['weft-system', STATIC_STRICT_POLICY_NAME, Action.DENY]);
    assert.equal(p.rules[0]!.clauses[0]!.matches[0]!.notPrincipals[0]!.matchType.case, 'presence');
    assert.equal(authorize([p], plain).allowed, false);
    assert.equal(authorize([p], from('a')).allowed, true);
  });
  it('mesh STRICT applies to every namespace; a namespace UNSET inherits it', () => {
    const mesh = pa('weft-system', 'default', '{mtls: {mode: STRICT}}');
    assert.deepEqual(keysFor([mesh], 'shop'), [STATIC]);
    assert.deepEqual(keysFor([mesh, pa('shop', 'ns', '{}')], 'shop'), [STATIC]);
  });
  it('namespace PERMISSIVE overrides mesh STRICT; namespace STRICT works alone', () => {
    assert.deepEqual(keysFor([pa('weft-system', 'default', '{mtls: {mode: STRICT}}'), pa('shop', 'ns', '{mtls: {mode: PERMISSIVE}}')], 'shop'), []);
    assert.deepEqual(keysFor([pa('shop', 'ns', '{mtls: {mode: STRICT}}')], 'shop'), [STATIC]);
    assert.deepEqual(keysFor([pa('shop', 'ns', '{mtls: {mode: STRICT}}')], 'other'), []);
  });
  it('a workload PERMISSIVE overrides namespace STRICT, only for the workloads it selects', () => {
    const all = [pa('shop', 'ns', '{mtls: {mode: STRICT}}'), pa('shop', 'db', '{selector: {matchLabels: {app: db}}, mtls: {mode: PERMISSIVE}}')];
    assert.deepEqual(keysFor(all, 'shop', { app: 'db' }), []);
    assert.deepEqual(keysFor(all, 'shop', { app: 'web' }), [STATIC]);
  });
  it('the oldest namespace policy wins', () => {
    const all = [pa('shop', 'new', '{mtls: {mode: PERMISSIVE}}', '2026-02-01T00:00:00Z'), pa('shop', 'old', '{mtls: {mode: STRICT}}', '2026-01-01T00:00:00Z')];
    assert.deepEqual(keysFor(all, 'shop'), [STATIC]);
  });
  it('workload STRICT with a PERMISSIVE port: its converted policy replaces the static one', () => {
    const w = pa('shop', 'db', '{selector: {matchLabels: {app: db}}, mtls: {mode: STRICT}, portLevelMtls: {"9000": {mode: PERMISSIVE}}}');
    assert.deepEqual(keysFor([w], 'shop'), ['shop/converted_peer_authentication_db']);
    const c = convertPeerAuthentication(w, undefined, undefined)!;
    assert.equal(c.name, 'converted_peer_authentication_db');
    assert.equal(authorize([c], plain).allowed, false);
    assert.equal(authorize([c], { ...plain, dstPort: 9000 }).allowed, true);
    assert.equal(authorize([c], from('a')).allowed, true);
  });
  it('namespace STRICT, workload UNSET with a PERMISSIVE port: STRICT is merged into the converted policy', () => {
    const ns = pa('shop', 'ns', '{mtls: {mode: STRICT}}');
    const w = pa('shop', 'db', '{selector: {matchLabels: {app: db}}, portLevelMtls: {"9000": {mode: PERMISSIVE}}}');
    assert.deepEqual(keysFor([ns, w], 'shop'), ['shop/converted_peer_authentication_db']);
    const c = convertPeerAuthentication(w, ns, undefined)!;
    assert.equal(authorize([c], plain).allowed, false);
    assert.equal(authorize([c], { ...plain, dstPort: 9000 }).allowed, true);
  });
  it('namespace PERMISSIVE, workload STRICT on one port: only that port refuses plaintext', () => {
    const w = pa('shop', 'db', '{selector: {matchLabels: {app: db}}, portLevelMtls: {"5432": {mode: STRICT}}}');
    assert.deepEqual(keysFor([pa('shop', 'ns', '{mtls: {mode: PERMISSIVE}}'), w], 'shop'), ['shop/converted_peer_authentication_db']);
    const c = convertPeerAuthentication(w, undefined, undefined)!;
    assert.equal(authorize([c], { ...plain, dstPort: 5432 }).allowed, false);
    assert.equal(authorize([c], plain).allowed, true);
    assert.equal(authorize([c], { ...from('a'), dstPort: 5432 }).allowed, true);
  });
  it('a plain workload STRICT needs no converted policy', () => {
    const w = pa('shop', 'db', '{selector: {matchLabels: {app: db}}, mtls: {mode: STRICT}}');
    assert.equal(convertPeerAuthentication(w, undefined, undefined), undefined);
    assert.deepEqual(keysFor([w], 'shop'), [STATIC]);
  });
  it('refuses an unknown mode, and port-level modes without a selector, naming the field', () => {
    assert.throws(() => pa('s', 'p', '{mtls: {mode: STRICTEST}}'), /PeerAuthentication s\/p: spec\.mtls\.mode: 'STRICTEST' is not one of/);
    assert.throws(() => pa('s', 'p', '{portLevelMtls: {"80": {mode: STRICT}}}'), /spec\.portLevelMtls: needs spec\.selector/);
    assert.throws(() => pa('s', 'p', '{selector: {matchLabels: {a: b}}, portLevelMtls: {"http": {mode: STRICT}}}'), /spec\.portLevelMtls\[0\]: 'http' is not a port/);
  });
});
