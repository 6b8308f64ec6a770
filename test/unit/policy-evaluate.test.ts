// Table tests for L4 authorization, following Istio/ztunnel semantics.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { EmptySchema } from '@bufbuild/protobuf/wkt';
import {
  Action, AuthorizationSchema, Scope, type Authorization, type StringMatch, type MatchSchema,
} from '../../agent/src/xds/gen/istio/security/authorization_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { authorize, applicablePolicies, policyMatches, type Connection } from '../../agent/src/policy/evaluate.js';
import { ipToBytes, bytesToIp, cidrContains, parseCidr } from '../../agent/src/policy/cidr.js';

type MatchInit = MessageInitShape<typeof MatchSchema>;
const exact = (s: string): StringMatch => ({ matchType: { case: 'exact', value: s } }) as StringMatch;
const prefix = (s: string): StringMatch => ({ matchType: { case: 'prefix', value: s } }) as StringMatch;
const suffix = (s: string): StringMatch => ({ matchType: { case: 'suffix', value: s } }) as StringMatch;
const presence = (): StringMatch => ({ matchType: { case: 'presence', value: create(EmptySchema) } }) as StringMatch;
const cidr = (s: string) => parseCidr(s)!;

function policy(name: string, action: Action, rules: MatchInit[][][], extra: { dryRun?: boolean } = {}): Authorization {
  return create(AuthorizationSchema, {
    name, namespace: 'ns', scope: Scope.NAMESPACE, action,
    rules: rules.map((clauses) => ({ clauses: clauses.map((matches) => ({ matches })) })),
    ...extra,
  });
}
/** A policy with one rule, one clause, one match. */
const one = (name: string, action: Action, m: MatchInit, extra: { dryRun?: boolean } = {}) => policy(name, action, [[[m]]], extra);

const alice: Connection = { srcIp: '198.18.1.10', dstIp: '198.18.2.20', dstPort: 8080, peer: { trustDomain: 'cluster.local', namespace: 'frontend', serviceAccount: 'alice' } };
const plaintext: Connection = { srcIp: '198.18.1.11', dstIp: '198.18.2.20', dstPort: 8080 };

describe('policyMatches: matching inside one policy', () => {
  const cases: Array<[string, Authorization, Connection, boolean]> = [
    ['no rules never matches', policy('p', Action.ALLOW, []), alice, false],
    ['a rule with no clauses matches everything', policy('p', Action.ALLOW, [[]]), alice, true],
    ['an empty clause (no matches) matches', policy('p', Action.ALLOW, [[[]]]), alice, true],
    ['an all-empty Match is skipped, not a match', policy('p', Action.ALLOW, [[[{}]]]), alice, false],
    ['principal exact, written without spiffe://', one('p', Action.ALLOW, { principals: [exact('cluster.local/ns/frontend/sa/alice')] }), alice, true],
    ['principal with spiffe:// prefix does not match', one('p', Action.ALLOW, { principals: [exact('spiffe://cluster.local/ns/frontend/sa/alice')] }), alice, false],
    ['principal prefix', one('p', Action.ALLOW, { principals: [prefix('cluster.local/ns/frontend/')] }), alice, true],
    ['principal suffix', one('p', Action.ALLOW, { principals: [suffix('/sa/alice')] }), alice, true],
    ['principal values are OR-ed', one('p', Action.ALLOW, { principals: [exact('x'), exact('cluster.local/ns/frontend/sa/alice')] }), alice, true],
    ['principal presence fails for plaintext', one('p', Action.ALLOW, { principals: [presence()] }), plaintext, false],
    ['principal presence holds with a peer', one('p', Action.ALLOW, { principals: [presence()] }), alice, true],
    ['not_principals presence matches plaintext (STRICT)', one('p', Action.DENY, { notPrincipals: [presence()] }), plaintext, true],
    ['not_principals presence spares a peer', one('p', Action.DENY, { notPrincipals: [presence()] }), alice, false],
    ['not_principals exact excludes that peer', one('p', Action.ALLOW, { notPrincipals: [exact('cluster.local/ns/frontend/sa/alice')] }), alice, false],
    ['namespace comes from the peer SPIFFE ID', one('p', Action.ALLOW, { namespaces: [exact('frontend')] }), alice, true],
    ['namespace does not match another', one('p', Action.ALLOW, { namespaces: [exact('backend')] }), alice, false],
    ['plaintext has no namespace', one('p', Action.ALLOW, { namespaces: [prefix('')] }), plaintext, true],
    ['plaintext namespace presence fails', one('p', Action.ALLOW, { namespaces: [presence()] }), plaintext, false],
    ['not_namespaces', one('p', Action.ALLOW, { notNamespaces: [exact('frontend')] }), alice, false],
    ['source CIDR contains', one('p', Action.ALLOW, { sourceIps: [cidr('198.18.1.0/24')] }), alice, true],
    ['source CIDR outside', one('p', Action.ALLOW, { sourceIps: [cidr('198.18.9.0/24')] }), alice, false],
    ['source single address (/32)', one('p', Action.ALLOW, { sourceIps: [cidr('198.18.1.10')] }), alice, true],
    ['not_source_ips', one('p', Action.ALLOW, { notSourceIps: [cidr('198.18.1.0/28')] }), alice, false],
    ['destination ips', one('p', Action.ALLOW, { destinationIps: [cidr('198.18.2.0/24')] }), alice, true],
    ['not_destination_ips', one('p', Action.ALLOW, { notDestinationIps: [cidr('198.18.2.20/32')] }), alice, false],
    ['destination port', one('p', Action.ALLOW, { destinationPorts: [80, 8080] }), alice, true],
    ['destination port miss', one('p', Action.ALLOW, { destinationPorts: [80] }), alice, false],
    ['not_destination_ports', one('p', Action.ALLOW, { notDestinationPorts: [8080] }), alice, false],
    ['positive and negative of one field both apply', one('p', Action.ALLOW, { sourceIps: [cidr('198.18.0.0/16')], notSourceIps: [cidr('198.18.1.0/24')] }), alice, false],
    ['fields inside a match are AND-ed (one fails)', one('p', Action.ALLOW, { namespaces: [exact('frontend')], destinationPorts: [9090] }), alice, false],
    ['fields inside a match are AND-ed (all hold)', one('p', Action.ALLOW, { namespaces: [exact('frontend')], destinationPorts: [8080] }), alice, true],
    ['matches in a clause are OR-ed', policy('p', Action.ALLOW, [[[{ destinationPorts: [1] }, { namespaces: [exact('frontend')] }]]]), alice, true],
    ['clauses in a rule are AND-ed', policy('p', Action.ALLOW, [[[{ namespaces: [exact('frontend')] }], [{ destinationPorts: [1] }]]]), alice, false],
    ['rules are OR-ed', policy('p', Action.ALLOW, [[[{ destinationPorts: [1] }]], [[{ destinationPorts: [8080] }]]]), alice, true],
    ['service account match', one('p', Action.ALLOW, { serviceAccounts: [{ namespace: 'frontend', serviceAccount: 'alice' }] }), alice, true],
    ['service account never matches plaintext', one('p', Action.ALLOW, { serviceAccounts: [{ namespace: '', serviceAccount: '' }] }), plaintext, false],
    ['IPv4-mapped IPv6 source is treated as IPv4', one('p', Action.ALLOW, { sourceIps: [cidr('198.18.1.0/24')] }), { ...alice, srcIp: '::ffff:198.18.1.10' }, true],
    ['IPv6 CIDR does not match an IPv4 source', one('p', Action.ALLOW, { sourceIps: [cidr('::/0')] }), alice, false],
  ];
  for (const [name, p, conn, want] of cases) {
    it(name, () => assert.equal(policyMatches(p, conn), want));
  }
});

describe('authorize: decision order', () => {
  const allowFrontend = one('allow-frontend', Action.ALLOW, { namespaces: [exact('frontend')] });
  const allowBackend = one('allow-backend', Action.ALLOW, { namespaces: [exact('backend')] });
  const denyPort = one('deny-8080', Action.DENY, { destinationPorts: [8080] });
  const strict = one('strict', Action.DENY, { notPrincipals: [presence()] });

  it('allows when there are no policies', () => {
    assert.deepEqual(authorize([], alice), { allowed: true, reason: 'no-allow-policies', dryRun: [] });
  });
  it('a matching DENY wins over a matching ALLOW', () => {
    const d = authorize([allowFrontend, denyPort], alice);
    assert.equal(d.allowed, false);
    assert.equal(d.reason, 'explicitly-denied');
    assert.equal(d.policy, 'ns/deny-8080');
  });
  it('a non-matching DENY and no ALLOW allows', () => {
    assert.equal(authorize([one('d', Action.DENY, { destinationPorts: [1] })], alice).reason, 'no-allow-policies');
  });
  it('a matching ALLOW allows and names the policy', () => {
    const d = authorize([allowBackend, allowFrontend], alice);
    assert.deepEqual([d.allowed, d.reason, d.policy], [true, 'allowed', 'ns/allow-frontend']);
  });
  it('ALLOW policies exist but none matches: deny', () => {
    assert.deepEqual([authorize([allowBackend], alice).allowed, authorize([allowBackend], alice).reason], [false, 'not-allowed']);
  });
  it('an ALLOW with no rules denies everything (allow-nothing)', () => {
    assert.equal(authorize([policy('nothing', Action.ALLOW, [])], alice).allowed, false);
  });
  it('a DENY with no rules denies nothing', () => {
    assert.equal(authorize([policy('nothing', Action.DENY, [])], alice).allowed, true);
  });
  it('STRICT refuses plaintext and admits mTLS peers', () => {
    assert.equal(authorize([strict], plaintext).allowed, false);
    assert.equal(authorize([strict], alice).allowed, true);
  });
  it('dry-run policies are reported, not enforced', () => {
    const dryDeny = one('dry-deny', Action.DENY, { destinationPorts: [8080] }, { dryRun: true });
    const dryAllow = one('dry-allow', Action.ALLOW, { namespaces: [exact('backend')] }, { dryRun: true });
    const d = authorize([dryDeny, dryAllow], alice);
    assert.equal(d.allowed, true);
    assert.equal(d.reason, 'no-allow-policies', 'a dry-run ALLOW must not turn on default-deny');
    assert.deepEqual(d.dryRun, [
      { policy: 'ns/dry-deny', action: 'DENY', matched: true },
      { policy: 'ns/dry-allow', action: 'ALLOW', matched: false },
    ]);
  });
});

describe('applicablePolicies', () => {
  it('takes global, same-namespace and listed selector policies only', () => {
    const g = create(AuthorizationSchema, { name: 'g', namespace: 'weft-system', scope: Scope.GLOBAL });
    const n = create(AuthorizationSchema, { name: 'n', namespace: 'ns', scope: Scope.NAMESPACE });
    const other = create(AuthorizationSchema, { name: 'o', namespace: 'other', scope: Scope.NAMESPACE });
    const sel = create(AuthorizationSchema, { name: 's', namespace: 'ns', scope: Scope.WORKLOAD_SELECTOR });
    const selOther = create(AuthorizationSchema, { name: 's2', namespace: 'ns', scope: Scope.WORKLOAD_SELECTOR });
    const got = applicablePolicies([g, n, other, sel, selOther], { namespace: 'ns', authorizationPolicies: ['ns/s'] });
    assert.deepEqual(got.map((p) => p.name), ['g', 'n', 's']);
  });
});

describe('cidr helpers', () => {
  it('round-trips IPv4 and IPv6 text and bytes', () => {
    assert.deepEqual([...ipToBytes('198.18.0.1')!], [198, 18, 0, 1]);
    assert.equal(bytesToIp(ipToBytes('fd00::1')!), 'fd00::1');
    assert.equal(ipToBytes('fd00::1')!.length, 16);
    assert.equal(ipToBytes('nope'), undefined);
  });
  it('checks prefixes bit by bit', () => {
    assert.ok(cidrContains(ipToBytes('198.18.0.0')!, 15, ipToBytes('198.19.255.255')!));
    assert.ok(!cidrContains(ipToBytes('198.18.0.0')!, 15, ipToBytes('198.20.0.0')!));
    assert.ok(cidrContains(ipToBytes('0.0.0.0')!, 0, ipToBytes('203.0.113.1')!));
  });
  it('rejects malformed CIDRs', () => {
    for (const bad of ['1.2.3.4/33', '1.2.3/8', '1.2.3.4/x', '1.2.3.4/8/9', '']) assert.equal(parseCidr(bad), undefined, bad);
  });
});
