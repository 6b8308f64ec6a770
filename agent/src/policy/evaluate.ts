// L4 authorization as ztunnel does it, as a pure function over istio.security.Authorization
// resources. Semantics (reference/istio-protocols.md 3.8): rules OR, clauses AND, matches OR,
// fields within a match AND, values within a field OR; a not_* field matches when none of its
// values do; no rules never matches; an empty clause matches; an all-empty Match is skipped.
// Order: any matching DENY denies; no ALLOW allows; a matching ALLOW allows; else deny.
// Dry-run policies are evaluated and reported but never change the decision.
import {
  Action, Scope, type Authorization, type Match, type StringMatch, type Address,
} from '../xds/gen/istio/security/authorization_pb.js';
import { cidrContains, ipToBytes } from './cidr.js';
import { formatSpiffeId, type Identity } from '../identity/spiffe.js';

export interface Connection {
  srcIp: string;
  dstIp: string;
  dstPort: number;
  /** The peer's authenticated identity; undefined for plaintext (no peer certificate). */
  peer?: Identity | undefined;
}

export type DecisionReason = 'no-allow-policies' | 'allowed' | 'explicitly-denied' | 'not-allowed';

export interface DryRunResult {
  policy: string;
  action: 'ALLOW' | 'DENY';
  matched: boolean;
}

export interface Decision {
  allowed: boolean;
  reason: DecisionReason;
  /** namespace/name of the policy that decided, when one did. */
  policy?: string;
  /** Outcome of each dry-run policy, for logging. */
  dryRun: DryRunResult[];
}

export function policyKey(p: { namespace: string; name: string }): string {
  return `${p.namespace}/${p.name}`;
}

interface ConnFacts {
  src?: Uint8Array | undefined;
  dst?: Uint8Array | undefined;
  port: number;
  /** full SPIFFE ID, or '' for plaintext */
  principal: string;
  /** peer namespace, or '' for plaintext */
  namespace: string;
  peer?: Identity | undefined;
}

function stringMatches(m: StringMatch, value: string): boolean {
  switch (m.matchType.case) {
    case 'exact': return value === m.matchType.value;
    case 'prefix': return value.startsWith(m.matchType.value);
    case 'suffix': return value.endsWith(m.matchType.value);
    case 'presence': return value !== '';
    default: return false; // an unset StringMatch matches nothing
  }
}

// Principals are written without spiffe://; a peer without one matches no principal value.
function principalMatches(m: StringMatch, principal: string): boolean {
  if (!principal.startsWith('spiffe://')) return false;
  return stringMatches(m, principal.slice('spiffe://'.length));
}

function addressMatches(a: Address, ip: Uint8Array | undefined): boolean {
  return ip !== undefined && cidrContains(a.address, a.length, ip);
}

function field<T>(pos: T[], neg: T[], pred: (v: T) => boolean): boolean {
  const p = pos.length === 0 || pos.some(pred);
  const n = neg.length === 0 || !neg.some(pred);
  return p && n;
}

function isEmptyMatch(m: Match): boolean {
  return (
    !m.namespaces.length && !m.notNamespaces.length && !m.principals.length && !m.notPrincipals.length &&
    !m.sourceIps.length && !m.notSourceIps.length && !m.destinationIps.length && !m.notDestinationIps.length &&
    !m.destinationPorts.length && !m.notDestinationPorts.length && !m.serviceAccounts.length && !m.notServiceAccounts.length
  );
}

function matchMatches(m: Match, c: ConnFacts): boolean {
  return (
    field(m.destinationIps, m.notDestinationIps, (a) => addressMatches(a, c.dst)) &&
    field(m.sourceIps, m.notSourceIps, (a) => addressMatches(a, c.src)) &&
    field(m.destinationPorts, m.notDestinationPorts, (p) => p === c.port) &&
    field(m.serviceAccounts, m.notServiceAccounts, (s) => c.peer !== undefined && s.namespace === c.peer.namespace && s.serviceAccount === c.peer.serviceAccount) &&
    field(m.principals, m.notPrincipals, (s) => principalMatches(s, c.principal)) &&
    field(m.namespaces, m.notNamespaces, (s) => stringMatches(s, c.namespace))
  );
}

function facts(conn: Connection): ConnFacts {
  return {
    src: ipToBytes(conn.srcIp),
    dst: ipToBytes(conn.dstIp),
    port: conn.dstPort,
    principal: conn.peer ? formatSpiffeId(conn.peer) : '',
    namespace: conn.peer?.namespace ?? '',
    peer: conn.peer,
  };
}

/** Whether one policy's rules match the connection (ignoring its action and dry-run flag). */
export function policyMatches(policy: Authorization, conn: Connection): boolean {
  return matchesFacts(policy, facts(conn));
}

function matchesFacts(policy: Authorization, c: ConnFacts): boolean {
  if (policy.rules.length === 0) return false;
  return policy.rules.some((rule) =>
    rule.clauses.every((clause) =>
      clause.matches.length === 0 || clause.matches.some((m) => !isEmptyMatch(m) && matchMatches(m, c)),
    ),
  );
}

/** Decides one connection against the policies that apply to its destination. */
export function authorize(policies: readonly Authorization[], conn: Connection): Decision {
  const c = facts(conn);
  const dryRun: DryRunResult[] = [];
  const enforced: Authorization[] = [];
  for (const p of policies) {
    if (p.dryRun) {
      dryRun.push({ policy: policyKey(p), action: p.action === Action.DENY ? 'DENY' : 'ALLOW', matched: matchesFacts(p, c) });
    } else {
      enforced.push(p);
    }
  }
  const deny = enforced.find((p) => p.action === Action.DENY && matchesFacts(p, c));
  if (deny) return { allowed: false, reason: 'explicitly-denied', policy: policyKey(deny), dryRun };
  const allows = enforced.filter((p) => p.action === Action.ALLOW);
  if (allows.length === 0) return { allowed: true, reason: 'no-allow-policies', dryRun };
  const allow = allows.find((p) => matchesFacts(p, c));
  if (allow) return { allowed: true, reason: 'allowed', policy: policyKey(allow), dryRun };
  return { allowed: false, reason: 'not-allowed', dryRun };
}

export interface PolicyTarget {
  namespace: string;
  /** Workload.authorization_policies: namespace/name keys of selector policies. */
  authorizationPolicies: readonly string[];
}

/**
 * The policies that apply to a workload: global ones, those of its namespace, and the
 * selector policies listed on it (ztunnel's rule: selector policies are not matched by labels
 * on the node; the controller lists them on the workload).
 */
export function applicablePolicies(all: Iterable<Authorization>, target: PolicyTarget): Authorization[] {
  const listed = new Set(target.authorizationPolicies);
  const out: Authorization[] = [];
  for (const p of all) {
    if (p.scope === Scope.GLOBAL) out.push(p);
    else if (p.scope === Scope.NAMESPACE && p.namespace === target.namespace) out.push(p);
    else if (p.scope === Scope.WORKLOAD_SELECTOR && listed.has(policyKey(p))) out.push(p);
  }
  return out;
}
