// security.weft.io/v1 AuthorizationPolicy and PeerAuthentication manifests, shaped like
// Istio's, translated into istio.security.Authorization resources the way istiod does for
// ambient: root namespace = GLOBAL, no selector = NAMESPACE, selector = WORKLOAD_SELECTOR;
// PeerAuthentication STRICT becomes a DENY of sources without a principal.
import { create } from '@bufbuild/protobuf';
import { EmptySchema } from '@bufbuild/protobuf/wkt';
import {
  Action, AuthorizationSchema, ClauseSchema, MatchSchema, RuleSchema, Scope, StringMatchSchema,
  type Authorization, type Clause, type Match, type StringMatch,
} from '../xds/gen/istio/security/authorization_pb.js';
import { parseCidr } from './cidr.js';
import { InvalidPolicyError } from './errors.js';

export const ROOT_NAMESPACE = 'weft-system';
export const POLICY_API_VERSION = 'security.weft.io/v1';
export const MESH_STRICT_POLICY_NAME = 'istio_converted_static_strict';
export const PEER_AUTHN_PREFIX = 'converted_peer_authentication_';

/** The parts of a Kubernetes object this module reads. */
export interface PolicyObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  spec?: unknown;
}

export interface TranslatedPolicy {
  authorization: Authorization;
  /** matchLabels for WORKLOAD_SELECTOR policies; the controller lists matching workloads. */
  selector?: Record<string, string>;
}

export interface TranslateOptions {
  rootNamespace?: string;
}

type Obj = Record<string, unknown>;

class Ctx {
  constructor(readonly object: string) {}
  fail(field: string, reason: string): never {
    throw new InvalidPolicyError(this.object, field, reason);
  }
  obj(v: unknown, field: string): Obj | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(field, 'must be a mapping');
    return v as Obj;
  }
  list(v: unknown, field: string): unknown[] | undefined {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) this.fail(field, 'must be a list');
    return v;
  }
  strings(v: unknown, field: string): string[] {
    const l = this.list(v, field) ?? [];
    return l.map((s, i) => {
      if (typeof s !== 'string' || s === '') this.fail(`${field}[${i}]`, 'must be a non-empty string');
      return s;
    });
  }
  known(o: Obj, field: string, allowed: string[], l7: string[] = []): void {
    for (const k of Object.keys(o)) {
      if (l7.includes(k)) {
        this.fail(`${field}.${k}`, 'is an L7 attribute, which the node agent cannot enforce at L4; use a waypoint for L7 policy');
      }
      if (!allowed.includes(k)) this.fail(`${field}.${k}`, `unknown field (allowed: ${allowed.join(', ')})`);
    }
  }
}

function objectName(o: PolicyObject, kind: string): string {
  return `${kind} ${o.metadata?.namespace ?? '?'}/${o.metadata?.name ?? '?'}`;
}

/** Istio's string syntax: "*" = presence, "x*" = prefix, "*x" = suffix, else exact. */
function stringMatch(ctx: Ctx, s: string, field: string): StringMatch {
  let m: StringMatch['matchType'];
  if (s === '*') m = { case: 'presence', value: create(EmptySchema) };
  else if (s.endsWith('*')) m = { case: 'prefix', value: s.slice(0, -1) };
  else if (s.startsWith('*')) m = { case: 'suffix', value: s.slice(1) };
  else m = { case: 'exact', value: s };
  if ((m.case === 'prefix' || m.case === 'suffix') && m.value.includes('*')) {
    ctx.fail(field, `'${s}' has a '*' in the middle; only a leading or trailing '*' is supported`);
  }
  return create(StringMatchSchema, { matchType: m });
}

function principals(ctx: Ctx, v: unknown, field: string): StringMatch[] {
  return ctx.strings(v, field).map((s, i) => {
    if (s.startsWith('spiffe://')) ctx.fail(`${field}[${i}]`, `write principals without 'spiffe://' (e.g. cluster.local/ns/default/sa/app), not '${s}'`);
    return stringMatch(ctx, s, `${field}[${i}]`);
  });
}

function cidrs(ctx: Ctx, v: unknown, field: string) {
  return ctx.strings(v, field).map((s, i) => {
    const c = parseCidr(s);
    if (!c) ctx.fail(`${field}[${i}]`, `'${s}' is not an IP address or CIDR`);
    return c;
  });
}

function ports(ctx: Ctx, v: unknown, field: string): number[] {
  const l = ctx.list(v, field) ?? [];
  return l.map((p, i) => {
    const n = typeof p === 'number' ? p : typeof p === 'string' && /^\d+$/.test(p) ? Number(p) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 65535) ctx.fail(`${field}[${i}]`, `'${String(p)}' is not a port number 1-65535`);
    return n;
  });
}

function sourceMatch(ctx: Ctx, v: unknown, field: string): Match {
  const src = ctx.obj(v, field);
  if (!src) ctx.fail(field, 'is required in each from entry');
  ctx.known(src, field, ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks'],
    ['requestPrincipals', 'notRequestPrincipals', 'remoteIpBlocks', 'notRemoteIpBlocks']);
  const m = create(MatchSchema, {
    principals: principals(ctx, src.principals, `${field}.principals`),
    notPrincipals: principals(ctx, src.notPrincipals, `${field}.notPrincipals`),
    namespaces: ctx.strings(src.namespaces, `${field}.namespaces`).map((s, i) => stringMatch(ctx, s, `${field}.namespaces[${i}]`)),
    notNamespaces: ctx.strings(src.notNamespaces, `${field}.notNamespaces`).map((s, i) => stringMatch(ctx, s, `${field}.notNamespaces[${i}]`)),
    sourceIps: cidrs(ctx, src.ipBlocks, `${field}.ipBlocks`),
    notSourceIps: cidrs(ctx, src.notIpBlocks, `${field}.notIpBlocks`),
  });
  if (Object.keys(src).length === 0) ctx.fail(field, 'is empty; give at least one of principals, namespaces, ipBlocks (or their not* forms)');
  return m;
}

function operationMatch(ctx: Ctx, v: unknown, field: string): Match {
  const op = ctx.obj(v, field);
  if (!op) ctx.fail(field, 'is required in each to entry');
  ctx.known(op, field, ['ports', 'notPorts'], ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths']);
  if (Object.keys(op).length === 0) ctx.fail(field, 'is empty; give ports or notPorts');
  return create(MatchSchema, {
    destinationPorts: ports(ctx, op.ports, `${field}.ports`),
    notDestinationPorts: ports(ctx, op.notPorts, `${field}.notPorts`),
  });
}

function selectorOf(ctx: Ctx, spec: Obj): Record<string, string> | undefined {
  const sel = ctx.obj(spec.selector, 'spec.selector');
  if (!sel) return undefined;
  ctx.known(sel, 'spec.selector', ['matchLabels']);
  const ml = ctx.obj(sel.matchLabels, 'spec.selector.matchLabels') ?? {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(ml)) {
    if (typeof v !== 'string') ctx.fail(`spec.selector.matchLabels.${k}`, 'must be a string');
    out[k] = v;
  }
  if (Object.keys(out).length === 0) return undefined; // an empty selector selects the namespace
  return out;
}

function scopeFor(namespace: string, selector: Record<string, string> | undefined, root: string): Scope {
  if (selector) return Scope.WORKLOAD_SELECTOR;
  return namespace === root ? Scope.GLOBAL : Scope.NAMESPACE;
}

function metadata(ctx: Ctx, o: PolicyObject): { name: string; namespace: string } {
  const name = o.metadata?.name;
  const namespace = o.metadata?.namespace;
  if (!name) ctx.fail('metadata.name', 'is required');
  if (!namespace) ctx.fail('metadata.namespace', 'is required');
  return { name, namespace };
}

/** Translates one AuthorizationPolicy; throws InvalidPolicyError naming object, field, reason. */
export function translateAuthorizationPolicy(o: PolicyObject, opts: TranslateOptions = {}): TranslatedPolicy {
  const ctx = new Ctx(objectName(o, 'AuthorizationPolicy'));
  if (o.apiVersion !== undefined && o.apiVersion !== POLICY_API_VERSION) ctx.fail('apiVersion', `must be ${POLICY_API_VERSION}`);
  const { name, namespace } = metadata(ctx, o);
  const spec = ctx.obj(o.spec, 'spec') ?? {};
  ctx.known(spec, 'spec', ['selector', 'action', 'rules']);
  const actionText = spec.action ?? 'ALLOW';
  if (actionText !== 'ALLOW' && actionText !== 'DENY') {
    ctx.fail('spec.action', `'${String(actionText)}' is not supported (ALLOW or DENY; AUDIT/CUSTOM need a waypoint)`);
  }
  const selector = selectorOf(ctx, spec);
  const rules = (ctx.list(spec.rules, 'spec.rules') ?? []).map((r, i) => {
    const f = `spec.rules[${i}]`;
    const rule = ctx.obj(r, f) ?? {};
    ctx.known(rule, f, ['from', 'to'], ['when']);
    const clauses: Clause[] = [];
    const from = ctx.list(rule.from, `${f}.from`);
    if (from) {
      if (from.length === 0) ctx.fail(`${f}.from`, 'is an empty list; leave it out to match any source');
      clauses.push(create(ClauseSchema, { matches: from.map((e, j) => {
        const ef = `${f}.from[${j}]`;
        const entry = ctx.obj(e, ef) ?? {};
        ctx.known(entry, ef, ['source']);
        return sourceMatch(ctx, entry.source, `${ef}.source`);
      }) }));
    }
    const to = ctx.list(rule.to, `${f}.to`);
    if (to) {
      if (to.length === 0) ctx.fail(`${f}.to`, 'is an empty list; leave it out to match any operation');
      clauses.push(create(ClauseSchema, { matches: to.map((e, j) => {
        const ef = `${f}.to[${j}]`;
        const entry = ctx.obj(e, ef) ?? {};
        ctx.known(entry, ef, ['operation']);
        return operationMatch(ctx, entry.operation, `${ef}.operation`);
      }) }));
    }
    return create(RuleSchema, { clauses });
  });
  const authorization = create(AuthorizationSchema, {
    name, namespace,
    scope: scopeFor(namespace, selector, opts.rootNamespace ?? ROOT_NAMESPACE),
    action: actionText === 'DENY' ? Action.DENY : Action.ALLOW,
    rules,
  });
  return selector ? { authorization, selector } : { authorization };
}

const MODES = ['UNSET', 'STRICT', 'PERMISSIVE', 'DISABLE'];

/**
 * Translates one PeerAuthentication. STRICT (or STRICT on some ports) becomes a DENY of
 * sources without a principal; PERMISSIVE, DISABLE and UNSET need no policy (undefined).
 */
export function translatePeerAuthentication(o: PolicyObject, opts: TranslateOptions = {}): TranslatedPolicy | undefined {
  const ctx = new Ctx(objectName(o, 'PeerAuthentication'));
  if (o.apiVersion !== undefined && o.apiVersion !== POLICY_API_VERSION) ctx.fail('apiVersion', `must be ${POLICY_API_VERSION}`);
  const { name, namespace } = metadata(ctx, o);
  const root = opts.rootNamespace ?? ROOT_NAMESPACE;
  const spec = ctx.obj(o.spec, 'spec') ?? {};
  ctx.known(spec, 'spec', ['selector', 'mtls', 'portLevelMtls']);
  const selector = selectorOf(ctx, spec);
  const mode = (v: unknown, field: string): string => {
    const m = ctx.obj(v, field);
    if (!m) return 'UNSET';
    ctx.known(m, field, ['mode']);
    const t: unknown = m.mode ?? 'UNSET';
    if (typeof t !== 'string' || !MODES.includes(t)) ctx.fail(`${field}.mode`, `'${String(t)}' is not one of ${MODES.join(', ')}`);
    return t as string;
  };
  const base = mode(spec.mtls, 'spec.mtls');
  const portLevel = ctx.obj(spec.portLevelMtls, 'spec.portLevelMtls') ?? {};
  if (Object.keys(portLevel).length > 0 && !selector) ctx.fail('spec.portLevelMtls', 'needs spec.selector (as in Istio)');
  const strictPorts: number[] = [];
  const laxPorts: number[] = [];
  for (const [p, v] of Object.entries(portLevel)) {
    const port = ports(ctx, [p], `spec.portLevelMtls`)[0]!;
    const m = mode(v, `spec.portLevelMtls.${p}`);
    if (m === 'STRICT') strictPorts.push(port);
    else if (m !== 'UNSET') laxPorts.push(port);
  }
  const noPrincipal = { notPrincipals: [create(StringMatchSchema, { matchType: { case: 'presence', value: create(EmptySchema) } })] };
  let match: Match;
  if (base === 'STRICT') match = create(MatchSchema, { ...noPrincipal, notDestinationPorts: laxPorts });
  else if (strictPorts.length > 0) match = create(MatchSchema, { ...noPrincipal, destinationPorts: strictPorts });
  else return undefined;
  const mesh = namespace === root && !selector;
  const authorization = create(AuthorizationSchema, {
    name: mesh ? MESH_STRICT_POLICY_NAME : `${PEER_AUTHN_PREFIX}${name}`,
    namespace,
    scope: scopeFor(namespace, selector, root),
    action: Action.DENY,
    rules: [create(RuleSchema, { clauses: [create(ClauseSchema, { matches: [match] })] })],
  });
  return selector ? { authorization, selector } : { authorization };
}

/** Dispatches on kind; returns undefined for objects that yield no policy. */
export function translatePolicyObject(o: PolicyObject, opts: TranslateOptions = {}): TranslatedPolicy | undefined {
  if (o.kind === 'AuthorizationPolicy') return translateAuthorizationPolicy(o, opts);
  if (o.kind === 'PeerAuthentication') return translatePeerAuthentication(o, opts);
  return undefined;
}
