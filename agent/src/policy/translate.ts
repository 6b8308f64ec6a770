// security.weft.io/v1 AuthorizationPolicy and PeerAuthentication manifests, shaped like
// Istio's, translated into istio.security.Authorization resources the way istiod does for
// ambient (pilot/pkg/serviceregistry/kube/controller/ambient/authorization.go):
// - AuthorizationPolicy: root namespace = GLOBAL, no selector = NAMESPACE, selector =
//   WORKLOAD_SELECTOR; per rule a clause of `to` matches, one of `from` matches and one per
//   L4 `when` condition. HTTP attributes cannot be enforced at L4: in an ALLOW policy the rule
//   holding them is dropped, in a DENY policy they are ignored (both fail closed) and a
//   warning names them.
// - PeerAuthentication: the effective mode of each workload (mesh → namespace → workload,
//   oldest wins) decides whether the workload lists the static STRICT policy
//   `<root>/istio_converted_static_strict` (a DENY of sources without a principal);
//   workload policies with port-level modes become their own converted policy.
// Malformed input is refused with InvalidPolicyError naming the object, field and reason.
import { create } from '@bufbuild/protobuf';
import { EmptySchema } from '@bufbuild/protobuf/wkt';
import {
  Action, AuthorizationSchema, ClauseSchema, MatchSchema, RuleSchema, Scope, StringMatchSchema,
  type Authorization, type Clause, type Match, type Rule, type StringMatch,
} from '../xds/gen/istio/security/authorization_pb.js';
import { parseCidr } from './cidr.js';
import { InvalidPolicyError } from './errors.js';

export const ROOT_NAMESPACE = 'weft-system';
export const POLICY_API_VERSION = 'security.weft.io/v1';
export const STATIC_STRICT_POLICY_NAME = 'istio_converted_static_strict';
export const PEER_AUTHN_PREFIX = 'converted_peer_authentication_';

/** The parts of a Kubernetes object this module reads. */
export interface PolicyObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; creationTimestamp?: string | Date };
  spec?: unknown;
}

export interface PolicyWarning {
  field: string;
  reason: string;
}

export interface TranslatedPolicy {
  authorization: Authorization;
  /** matchLabels for WORKLOAD_SELECTOR policies; the controller lists matching workloads. */
  selector?: Record<string, string>;
  /** accepted, but enforced more strictly than written (HTTP attributes) */
  warnings: PolicyWarning[];
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
  known(o: Obj, field: string, allowed: string[]): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) this.fail(`${field}.${k}`, `unknown field (allowed: ${allowed.join(', ')})`);
    }
  }
}

function objectName(o: PolicyObject, kind: string): string {
  return `${kind} ${o.metadata?.namespace ?? '?'}/${o.metadata?.name ?? '?'}`;
}

/** Istio's string syntax: "*" = presence, "*x" = suffix, "x*" = prefix, else exact. */
function stringMatch(ctx: Ctx, s: string, field: string): StringMatch {
  let m: StringMatch['matchType'];
  if (s === '*') m = { case: 'presence', value: create(EmptySchema) };
  else if (s.startsWith('*')) m = { case: 'suffix', value: s.slice(1) };
  else if (s.endsWith('*')) m = { case: 'prefix', value: s.slice(0, -1) };
  else m = { case: 'exact', value: s };
  if ((m.case === 'prefix' || m.case === 'suffix') && m.value.includes('*')) {
    ctx.fail(field, `'${s}' has a '*' in the middle; only a leading or trailing '*' is supported`);
  }
  return create(StringMatchSchema, { matchType: m });
}

function stringMatches(ctx: Ctx, v: unknown, field: string): StringMatch[] {
  return ctx.strings(v, field).map((s, i) => stringMatch(ctx, s, `${field}[${i}]`));
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

function serviceAccounts(ctx: Ctx, v: unknown, field: string, namespace: string) {
  return ctx.strings(v, field).map((s) => {
    const [ns, sa] = s.includes('/') ? (s.split('/', 2) as [string, string]) : [namespace, s];
    return { namespace: ns, serviceAccount: sa };
  });
}

const SOURCE_L4 = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks', 'serviceAccounts', 'notServiceAccounts'];
const SOURCE_L7 = ['requestPrincipals', 'notRequestPrincipals', 'remoteIpBlocks', 'notRemoteIpBlocks'];
const OPERATION_L4 = ['ports', 'notPorts'];
const OPERATION_L7 = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'];
const WHEN_L4 = ['source.ip', 'source.namespace', 'source.principal', 'destination.ip', 'destination.port'];

function nonEmpty(v: unknown): boolean {
  return Array.isArray(v) ? v.length > 0 : v !== undefined && v !== null;
}

function sourceMatch(ctx: Ctx, v: unknown, field: string, namespace: string, l7: string[]): Match {
  const src = ctx.obj(v, field);
  if (!src || Object.keys(src).length === 0) ctx.fail(field, 'is empty; give at least one of principals, namespaces, ipBlocks, serviceAccounts (or their not* forms)');
  ctx.known(src, field, [...SOURCE_L4, ...SOURCE_L7]);
  for (const k of SOURCE_L7) if (nonEmpty(src[k])) l7.push(`${field}.${k}`);
  return create(MatchSchema, {
    principals: principals(ctx, src.principals, `${field}.principals`),
    notPrincipals: principals(ctx, src.notPrincipals, `${field}.notPrincipals`),
    namespaces: stringMatches(ctx, src.namespaces, `${field}.namespaces`),
    notNamespaces: stringMatches(ctx, src.notNamespaces, `${field}.notNamespaces`),
    sourceIps: cidrs(ctx, src.ipBlocks, `${field}.ipBlocks`),
    notSourceIps: cidrs(ctx, src.notIpBlocks, `${field}.notIpBlocks`),
    serviceAccounts: serviceAccounts(ctx, src.serviceAccounts, `${field}.serviceAccounts`, namespace),
    notServiceAccounts: serviceAccounts(ctx, src.notServiceAccounts, `${field}.notServiceAccounts`, namespace),
  });
}

function operationMatch(ctx: Ctx, v: unknown, field: string, l7: string[]): Match {
  const op = ctx.obj(v, field);
  if (!op || Object.keys(op).length === 0) ctx.fail(field, 'is empty; give ports or notPorts');
  ctx.known(op, field, [...OPERATION_L4, ...OPERATION_L7]);
  for (const k of OPERATION_L7) if (nonEmpty(op[k])) l7.push(`${field}.${k}`);
  return create(MatchSchema, {
    destinationPorts: ports(ctx, op.ports, `${field}.ports`),
    notDestinationPorts: ports(ctx, op.notPorts, `${field}.notPorts`),
  });
}

/** One `when` condition; L4 keys become a match, anything else is an HTTP attribute. */
function whenMatch(ctx: Ctx, v: unknown, field: string, l7: string[]): Match | undefined {
  const c = ctx.obj(v, field) ?? {};
  ctx.known(c, field, ['key', 'values', 'notValues']);
  if (typeof c.key !== 'string' || c.key === '') ctx.fail(`${field}.key`, 'is required');
  if (!nonEmpty(c.values) && !nonEmpty(c.notValues)) ctx.fail(field, 'needs values or notValues');
  if (!WHEN_L4.includes(c.key)) {
    l7.push(`${field} (${c.key})`);
    return undefined;
  }
  const pos = (k: string) => (c.key === k ? c.values : undefined);
  const neg = (k: string) => (c.key === k ? c.notValues : undefined);
  return create(MatchSchema, {
    namespaces: stringMatches(ctx, pos('source.namespace'), `${field}.values`),
    notNamespaces: stringMatches(ctx, neg('source.namespace'), `${field}.notValues`),
    principals: principals(ctx, pos('source.principal'), `${field}.values`),
    notPrincipals: principals(ctx, neg('source.principal'), `${field}.notValues`),
    sourceIps: cidrs(ctx, pos('source.ip'), `${field}.values`),
    notSourceIps: cidrs(ctx, neg('source.ip'), `${field}.notValues`),
    destinationIps: cidrs(ctx, pos('destination.ip'), `${field}.values`),
    notDestinationIps: cidrs(ctx, neg('destination.ip'), `${field}.notValues`),
    destinationPorts: ports(ctx, pos('destination.port'), `${field}.values`),
    notDestinationPorts: ports(ctx, neg('destination.port'), `${field}.notValues`),
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

function metadata(ctx: Ctx, o: PolicyObject): { name: string; namespace: string } {
  const name = o.metadata?.name;
  const namespace = o.metadata?.namespace;
  if (!name) ctx.fail('metadata.name', 'is required');
  if (!namespace) ctx.fail('metadata.namespace', 'is required');
  if (o.apiVersion !== undefined && o.apiVersion !== POLICY_API_VERSION) ctx.fail('apiVersion', `must be ${POLICY_API_VERSION}, not '${o.apiVersion}'`);
  return { name, namespace };
}

/** Translates one AuthorizationPolicy; throws InvalidPolicyError naming object, field, reason. */
export function translateAuthorizationPolicy(o: PolicyObject, opts: TranslateOptions = {}): TranslatedPolicy {
  const ctx = new Ctx(objectName(o, 'AuthorizationPolicy'));
  const { name, namespace } = metadata(ctx, o);
  const spec = ctx.obj(o.spec, 'spec') ?? {};
  ctx.known(spec, 'spec', ['selector', 'action', 'rules']);
  const actionText = spec.action ?? 'ALLOW';
  if (actionText !== 'ALLOW' && actionText !== 'DENY') {
    ctx.fail('spec.action', `'${String(actionText)}' is not supported by the node agent (ALLOW or DENY; AUDIT and CUSTOM need a waypoint)`);
  }
  const action = actionText === 'DENY' ? Action.DENY : Action.ALLOW;
  const selector = selectorOf(ctx, spec);
  const warnings: PolicyWarning[] = [];
  const rules: Rule[] = [];
  (ctx.list(spec.rules, 'spec.rules') ?? []).forEach((r, i) => {
    const f = `spec.rules[${i}]`;
    const rule = ctx.obj(r, f) ?? {};
    ctx.known(rule, f, ['from', 'to', 'when']);
    const l7: string[] = [];
    const clauses: Clause[] = [];
    const to = ctx.list(rule.to, `${f}.to`);
    if (to) {
      if (to.length === 0) ctx.fail(`${f}.to`, 'is an empty list; leave it out to match any operation');
      clauses.push(create(ClauseSchema, { matches: to.map((e, j) => {
        const entry = ctx.obj(e, `${f}.to[${j}]`) ?? {};
        ctx.known(entry, `${f}.to[${j}]`, ['operation']);
        return operationMatch(ctx, entry.operation, `${f}.to[${j}].operation`, l7);
      }) }));
    }
    const from = ctx.list(rule.from, `${f}.from`);
    if (from) {
      if (from.length === 0) ctx.fail(`${f}.from`, 'is an empty list; leave it out to match any source');
      clauses.push(create(ClauseSchema, { matches: from.map((e, j) => {
        const entry = ctx.obj(e, `${f}.from[${j}]`) ?? {};
        ctx.known(entry, `${f}.from[${j}]`, ['source']);
        return sourceMatch(ctx, entry.source, `${f}.from[${j}].source`, namespace, l7);
      }) }));
    }
    (ctx.list(rule.when, `${f}.when`) ?? []).forEach((w, j) => {
      const m = whenMatch(ctx, w, `${f}.when[${j}]`, l7);
      if (m) clauses.push(create(ClauseSchema, { matches: [m] }));
    });
    if (l7.length === 0) {
      rules.push(create(RuleSchema, { clauses }));
    } else if (action === Action.ALLOW) {
      warnings.push({ field: f, reason: `HTTP attributes (${l7.join(', ')}) cannot be enforced at L4; this ALLOW rule is left out, which is more restrictive than written. Use a waypoint for HTTP rules.` });
    } else {
      rules.push(create(RuleSchema, { clauses }));
      warnings.push({ field: f, reason: `HTTP attributes (${l7.join(', ')}) cannot be enforced at L4; this DENY rule is enforced without them, which is more restrictive than written. Use a waypoint for HTTP rules.` });
    }
  });
  const root = opts.rootNamespace ?? ROOT_NAMESPACE;
  const authorization = create(AuthorizationSchema, {
    name, namespace,
    scope: selector ? Scope.WORKLOAD_SELECTOR : namespace === root ? Scope.GLOBAL : Scope.NAMESPACE,
    action, rules,
  });
  return selector ? { authorization, selector, warnings } : { authorization, warnings };
}

// ---- PeerAuthentication -------------------------------------------------------------------

export type MtlsMode = 'UNSET' | 'STRICT' | 'PERMISSIVE' | 'DISABLE';
const MODES: MtlsMode[] = ['UNSET', 'STRICT', 'PERMISSIVE', 'DISABLE'];

export interface PeerAuthn {
  name: string;
  namespace: string;
  selector?: Record<string, string>;
  mode: MtlsMode;
  /** port → mode, in ascending port order */
  portLevel: Array<[number, MtlsMode]>;
  /** creationTimestamp in ms (0 when unknown); ties keep input order */
  created: number;
}

/** Validates one PeerAuthentication manifest. */
export function parsePeerAuthentication(o: PolicyObject): PeerAuthn {
  const ctx = new Ctx(objectName(o, 'PeerAuthentication'));
  const { name, namespace } = metadata(ctx, o);
  const spec = ctx.obj(o.spec, 'spec') ?? {};
  ctx.known(spec, 'spec', ['selector', 'mtls', 'portLevelMtls']);
  const selector = selectorOf(ctx, spec);
  const mode = (v: unknown, field: string): MtlsMode => {
    const m = ctx.obj(v, field);
    if (!m) return 'UNSET';
    ctx.known(m, field, ['mode']);
    const t: unknown = m.mode ?? 'UNSET';
    if (typeof t !== 'string' || !MODES.includes(t as MtlsMode)) ctx.fail(`${field}.mode`, `'${String(t)}' is not one of ${MODES.join(', ')}`);
    return t as MtlsMode;
  };
  const portLevel: Array<[number, MtlsMode]> = [];
  for (const [p, v] of Object.entries(ctx.obj(spec.portLevelMtls, 'spec.portLevelMtls') ?? {})) {
    const port = ports(ctx, [p], 'spec.portLevelMtls')[0]!;
    portLevel.push([port, mode(v, `spec.portLevelMtls.${p}`)]);
  }
  if (portLevel.length > 0 && !selector) ctx.fail('spec.portLevelMtls', 'needs spec.selector (port-level modes apply to selected workloads, as in Istio)');
  portLevel.sort((a, b) => a[0] - b[0]);
  const ts = o.metadata?.creationTimestamp;
  const created = ts ? new Date(ts).getTime() || 0 : 0;
  return { name, namespace, ...(selector ? { selector } : {}), mode: mode(spec.mtls, 'spec.mtls'), portLevel, created };
}

const noPrincipal = (): Match => create(MatchSchema, { notPrincipals: [create(StringMatchSchema, { matchType: { case: 'presence', value: create(EmptySchema) } })] });
const rule = (...matches: Match[][]): Rule => create(RuleSchema, { clauses: matches.map((m) => create(ClauseSchema, { matches: m })) });

/** The DENY of unauthenticated sources that STRICT workloads list (one per mesh). */
export function staticStrictPolicy(rootNamespace = ROOT_NAMESPACE): Authorization {
  return create(AuthorizationSchema, {
    name: STATIC_STRICT_POLICY_NAME, namespace: rootNamespace, scope: Scope.WORKLOAD_SELECTOR, action: Action.DENY,
    rules: [rule([noPrincipal()])],
  });
}

export function peerAuthnPolicyKey(pa: PeerAuthn): string {
  return `${pa.namespace}/${PEER_AUTHN_PREFIX}${pa.name}`;
}

function oldest(list: PeerAuthn[]): PeerAuthn | undefined {
  let o: PeerAuthn | undefined;
  for (const p of list) if (!o || p.created < o.created) o = p;
  return o;
}

const isStrict = (p?: PeerAuthn) => p?.mode === 'STRICT';
const isUnset = (p?: PeerAuthn) => !p || p.mode === 'UNSET';

/** The mesh (root, no selector) and namespace (no selector) policies that apply in `namespace`. */
export function parentPeerAuthns(all: PeerAuthn[], namespace: string, root = ROOT_NAMESPACE): { mesh?: PeerAuthn; ns?: PeerAuthn } {
  const mesh = oldest(all.filter((p) => p.namespace === root && !p.selector));
  const ns = namespace === root ? undefined : oldest(all.filter((p) => p.namespace === namespace && !p.selector));
  return { ...(mesh ? { mesh } : {}), ...(ns ? { ns } : {}) };
}

/**
 * The converted form of a workload PeerAuthentication with port-level modes, or undefined
 * when the static STRICT policy (or nothing) already expresses it.
 */
export function convertPeerAuthentication(cfg: PeerAuthn, nsCfg: PeerAuthn | undefined, rootCfg: PeerAuthn | undefined, root = ROOT_NAMESPACE): Authorization | undefined {
  if (cfg.namespace === root || !cfg.selector || cfg.portLevel.length === 0) return undefined;
  const clauses: Match[][] = [];
  const rules: Rule[] = [];
  if (cfg.mode === 'STRICT') clauses.push([noPrincipal()]);
  let foundNonStrictPort = false;
  const parentStrict = isStrict(nsCfg) || (isUnset(nsCfg) && isStrict(rootCfg));
  for (const [port, m] of cfg.portLevel) {
    if (m === 'STRICT') {
      if (cfg.mode === 'STRICT' || (cfg.mode === 'UNSET' && parentStrict)) continue; // the parent enforces it
      rules.push(rule([create(MatchSchema, { ...noPrincipal(), destinationPorts: [port] })]));
    } else if (m === 'PERMISSIVE' || m === 'DISABLE') {
      if (cfg.mode === 'PERMISSIVE' || cfg.mode === 'DISABLE') continue;
      if (cfg.mode === 'UNSET' && !parentStrict) continue;
      foundNonStrictPort = true;
      clauses.push([create(MatchSchema, { notDestinationPorts: [port] })]);
    }
  }
  if (cfg.mode === 'STRICT' && !foundNonStrictPort) return undefined;
  if (clauses.length === 0 && rules.length === 0) return undefined;
  const mergeStrict = (isStrict(rootCfg) && (isUnset(nsCfg) || isStrict(nsCfg))) || isStrict(nsCfg);
  if (mergeStrict && foundNonStrictPort && cfg.mode !== 'STRICT') clauses.push([noPrincipal()]);
  if (clauses.length > 0) rules.push(rule(...clauses));
  return create(AuthorizationSchema, {
    name: `${PEER_AUTHN_PREFIX}${cfg.name}`, namespace: cfg.namespace, scope: Scope.WORKLOAD_SELECTOR, action: Action.DENY, rules,
  });
}

/**
 * The PeerAuthentication-derived policy keys a workload lists: the static STRICT policy when
 * its effective mode is STRICT, and its workload policy's converted form when that carries
 * port-level exceptions. `workload` is the oldest selector policy matching it, if any.
 */
export function peerAuthenticationKeys(mesh: PeerAuthn | undefined, ns: PeerAuthn | undefined, workload: PeerAuthn | undefined, root = ROOT_NAMESPACE): string[] {
  let strict = isStrict(mesh);
  if (ns && ns.mode !== 'UNSET') strict = isStrict(ns);
  let portKey: string | undefined;
  if (workload) {
    if (workload.mode === 'STRICT') strict = true;
    if (workload.mode === 'PERMISSIVE' || workload.mode === 'DISABLE') strict = false;
    if (workload.portLevel.length > 0) {
      const anyMode = (...ms: MtlsMode[]) => workload.portLevel.some(([, m]) => ms.includes(m));
      if (workload.mode === 'STRICT') {
        if (anyMode('PERMISSIVE', 'DISABLE')) {
          portKey = peerAuthnPolicyKey(workload);
          strict = false; // the converted policy carries the STRICT default itself
        }
      } else if (workload.mode === 'PERMISSIVE' || workload.mode === 'DISABLE') {
        if (anyMode('STRICT')) portKey = peerAuthnPolicyKey(workload);
      } else if (strict) {
        if (anyMode('PERMISSIVE')) {
          portKey = peerAuthnPolicyKey(workload);
          strict = false;
        }
      } else if (anyMode('STRICT')) {
        portKey = peerAuthnPolicyKey(workload);
      }
    }
  }
  const keys = new Set<string>();
  if (strict) keys.add(`${root}/${STATIC_STRICT_POLICY_NAME}`);
  if (portKey) keys.add(portKey);
  return [...keys].sort();
}

export function selectorMatches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The oldest selector PeerAuthentication in the workload's namespace that selects it. */
export function workloadPeerAuthn(all: PeerAuthn[], namespace: string, labels: Record<string, string>, root = ROOT_NAMESPACE): PeerAuthn | undefined {
  if (namespace === root) return undefined;
  return oldest(all.filter((p) => p.namespace === namespace && p.selector && selectorMatches(p.selector, labels)));
}
