// Reading and checking Kubernetes manifests: YAML (multi-document) in, plain objects out, each
// with the file and line it came from. Everything is checked before anything is written: a
// YAML error, an unknown kind or a failed schema check is reported with its file and line.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LineCounter, isMap as isYamlMap, isScalar, isSeq, parseAllDocuments, type Document } from 'yaml';
import { inBenchmarkRange } from './address-plan.js';
import { ManifestError, type ManifestProblem } from './errors.js';
import { labelKeyProblem, labelValueProblem } from './labels.js';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [k: string]: unknown;
}

export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: Record<string, any>;
  status?: Record<string, any>;
  [k: string]: unknown;
}

export interface SourcedObject {
  object: ManifestObject;
  file: string;
  line: number;
}

interface KindInfo {
  apiVersions: string[];
  namespaced: boolean;
}

/** The kinds the lab accepts, with their apiVersions. */
export const KINDS: Record<string, KindInfo> = {
  Namespace: { apiVersions: ['v1'], namespaced: false },
  ServiceAccount: { apiVersions: ['v1'], namespaced: true },
  Service: { apiVersions: ['v1'], namespaced: true },
  Pod: { apiVersions: ['v1'], namespaced: true },
  AuthorizationPolicy: { apiVersions: ['security.weft.io/v1'], namespaced: true },
  PeerAuthentication: { apiVersions: ['security.weft.io/v1'], namespaced: true },
  Gateway: { apiVersions: ['gateway.networking.k8s.io/v1'], namespaced: true },
  HTTPRoute: { apiVersions: ['gateway.networking.k8s.io/v1'], namespaced: true },
};

export function isNamespaced(kind: string): boolean {
  return KINDS[kind]?.namespaced ?? true;
}

/** Stable identity of an object: Kind/namespace/name (namespace '' for cluster-scoped kinds). */
export function objectKey(o: { kind: string; metadata: { name: string; namespace?: string } }): string {
  return `${o.kind}/${isNamespaced(o.kind) ? (o.metadata.namespace ?? 'default') : ''}/${o.metadata.name}`;
}

/** kubectl's short reference, e.g. pod/demo/client-1 → "pod/client-1 (demo)". */
export function describeObject(o: ManifestObject): string {
  const ns = isNamespaced(o.kind) ? ` -n ${o.metadata.namespace ?? 'default'}` : '';
  return `${o.kind.toLowerCase()}/${o.metadata.name}${ns}`;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function dnsLabelProblem(what: string, v: string): string | undefined {
  return v.length <= 63 && DNS_LABEL.test(v) ? undefined : `${what} '${v}' must be a DNS label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit`;
}

function dnsSubdomainProblem(what: string, v: string): string | undefined {
  return v.length <= 253 && DNS_SUBDOMAIN.test(v) ? undefined : `${what} '${v}' must be a DNS subdomain: lowercase letters, digits, '-' and '.'`;
}

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Schema checks; `at(path)` gives the line of a path inside the document. */
function checkObject(o: unknown, report: (path: (string | number)[], msg: string) => void): o is ManifestObject {
  if (!isMap(o)) {
    report([], 'a manifest must be a mapping with apiVersion, kind and metadata');
    return false;
  }
  let ok = true;
  const bad = (path: (string | number)[], msg: string) => {
    ok = false;
    report(path, msg);
  };
  if (typeof o.kind !== 'string' || !o.kind) {
    bad([], 'missing kind');
    return false;
  }
  const info = KINDS[o.kind];
  if (!info) {
    bad(['kind'], `unknown kind '${o.kind}' (the lab accepts ${Object.keys(KINDS).join(', ')})`);
    return false;
  }
  if (typeof o.apiVersion !== 'string' || !info.apiVersions.includes(o.apiVersion)) {
    bad(o.apiVersion === undefined ? [] : ['apiVersion'], `kind ${o.kind} needs apiVersion ${info.apiVersions.join(' or ')}${o.apiVersion === undefined ? '' : `, not '${String(o.apiVersion)}'`}`);
  }
  const md = o.metadata;
  if (!isMap(md)) {
    bad([], 'missing metadata (a mapping with at least name)');
    return false;
  }
  if (typeof md.name !== 'string' || !md.name) {
    bad(['metadata'], 'missing metadata.name');
  } else {
    const p = o.kind === 'Namespace' || o.kind === 'Service' ? dnsLabelProblem('metadata.name', md.name) : dnsSubdomainProblem('metadata.name', md.name);
    if (p) bad(['metadata', 'name'], p);
  }
  if (md.namespace !== undefined) {
    if (!info.namespaced) bad(['metadata', 'namespace'], `${o.kind} is cluster-scoped: remove metadata.namespace`);
    else if (typeof md.namespace !== 'string') bad(['metadata', 'namespace'], 'metadata.namespace must be a string');
    else {
      const p = dnsLabelProblem('metadata.namespace', md.namespace);
      if (p) bad(['metadata', 'namespace'], p);
    }
  }
  for (const field of ['labels', 'annotations'] as const) {
    const m = md[field];
    if (m === undefined || m === null) continue;
    if (!isMap(m)) {
      bad(['metadata', field], `metadata.${field} must be a mapping of strings`);
      continue;
    }
    for (const [k, v] of Object.entries(m)) {
      if (typeof v !== 'string') bad(['metadata', field, k], `metadata.${field}.${k} must be a string (quote it)`);
      else if (field === 'labels') {
        const p = labelKeyProblem(k) ?? labelValueProblem(v);
        if (p) bad(['metadata', field, k], p);
      }
    }
  }
  if (md.uid !== undefined && (typeof md.uid !== 'string' || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(md.uid))) {
    bad(['metadata', 'uid'], 'metadata.uid must be a lowercase UUID (or leave it out: the lab assigns one)');
  }
  const spec = o.spec;
  if (spec !== undefined && spec !== null && !isMap(spec)) bad(['spec'], 'spec must be a mapping');
  const s = isMap(spec) ? spec : {};
  switch (o.kind) {
    case 'Service': {
      const ports = s.ports;
      if (!Array.isArray(ports) || ports.length === 0) bad(isMap(spec) ? ['spec'] : [], 'a Service needs spec.ports (a non-empty list)');
      else
        ports.forEach((p, i) => {
          if (!isMap(p) || !Number.isInteger(p.port) || (p.port as number) < 1 || (p.port as number) > 65535) bad(['spec', 'ports', i], 'each service port needs port: 1-65535');
          else {
            if (p.protocol !== undefined && !['TCP', 'UDP', 'SCTP'].includes(p.protocol as string)) bad(['spec', 'ports', i, 'protocol'], 'protocol must be TCP, UDP or SCTP');
            const tp = p.targetPort;
            if (tp !== undefined && !(Number.isInteger(tp) && (tp as number) >= 1 && (tp as number) <= 65535) && typeof tp !== 'string') bad(['spec', 'ports', i, 'targetPort'], 'targetPort must be a port number or a port name');
          }
        });
      if (s.selector !== undefined && (!isMap(s.selector) || Object.values(s.selector).some((v) => typeof v !== 'string'))) bad(['spec', 'selector'], 'spec.selector must be a mapping of strings');
      if (s.clusterIP !== undefined && s.clusterIP !== 'None' && (typeof s.clusterIP !== 'string' || !inBenchmarkRange(s.clusterIP))) {
        bad(['spec', 'clusterIP'], `spec.clusterIP '${String(s.clusterIP)}' must be an IPv4 address in 198.18.0.0/15 (or leave it out: the lab assigns one)`);
      }
      break;
    }
    case 'Pod':
      if (s.nodeName !== undefined && typeof s.nodeName !== 'string') bad(['spec', 'nodeName'], 'spec.nodeName must be a string');
      if (s.serviceAccountName !== undefined && (typeof s.serviceAccountName !== 'string' || dnsSubdomainProblem('', s.serviceAccountName))) {
        bad(['spec', 'serviceAccountName'], 'spec.serviceAccountName must be a DNS subdomain name');
      }
      break;
    case 'AuthorizationPolicy':
      if (s.action !== undefined && !['ALLOW', 'DENY'].includes(s.action as string)) bad(['spec', 'action'], `spec.action must be ALLOW or DENY, not '${String(s.action)}'`);
      if (s.rules !== undefined && !Array.isArray(s.rules)) bad(['spec', 'rules'], 'spec.rules must be a list');
      if (s.selector !== undefined && !isMap(s.selector)) bad(['spec', 'selector'], 'spec.selector must be a mapping (matchLabels: …)');
      break;
    case 'PeerAuthentication': {
      const mode = isMap(s.mtls) ? s.mtls.mode : undefined;
      if (s.mtls !== undefined && !isMap(s.mtls)) bad(['spec', 'mtls'], 'spec.mtls must be a mapping (mode: STRICT|PERMISSIVE)');
      else if (mode !== undefined && !['STRICT', 'PERMISSIVE', 'DISABLE', 'UNSET'].includes(mode as string)) bad(['spec', 'mtls', 'mode'], `spec.mtls.mode must be STRICT, PERMISSIVE, DISABLE or UNSET, not '${String(mode)}'`);
      break;
    }
  }
  return ok;
}

/** Parses YAML text (one or more documents) and checks every object. Throws ManifestError. */
export function parseManifests(text: string, file: string): SourcedObject[] {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, uniqueKeys: true }) as unknown as Document.Parsed[];
  const problems: ManifestProblem[] = [];
  const out: SourcedObject[] = [];
  const lineAt = (offset: number | undefined) => (offset === undefined ? 1 : lc.linePos(offset).line);
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) problems.push({ file, line: lineAt(e.pos[0]), message: `invalid YAML: ${e.message.split('\n')[0]}` });
      continue;
    }
    if (doc.contents === null) continue; // empty document (e.g. a trailing ---)
    const docLine = lineAt(doc.contents.range?.[0]);
    const lineOf = (path: (string | number)[]) => {
      // The line of the key (or list item) of the deepest existing node on the path.
      let node: unknown = doc.contents;
      let line = docLine;
      for (const step of path) {
        if (isYamlMap(node)) {
          const pair = node.items.find((it) => (isScalar(it.key) ? it.key.value : it.key) === step);
          if (!pair) break;
          const keyRange = (pair.key as { range?: number[] } | null)?.range;
          if (keyRange) line = lineAt(keyRange[0]);
          node = pair.value;
        } else if (isSeq(node) && typeof step === 'number' && node.items[step]) {
          node = node.items[step];
          const r = (node as { range?: number[] }).range;
          if (r) line = lineAt(r[0]);
        } else break;
      }
      return line;
    };
    const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    if (value === null || value === undefined) continue; // empty document (e.g. a trailing ---)
    const before = problems.length;
    if (checkObject(value, (path, message) => problems.push({ file, line: lineOf(path), message })) && problems.length === before) {
      out.push({ object: value, file, line: docLine });
    }
  }
  if (problems.length > 0) throw new ManifestError(problems);
  return out;
}

/** Reads files, and every *.yaml / *.yml / *.json file of directories (sorted, not recursive). */
export function loadManifests(paths: string | string[]): SourcedObject[] {
  const problems: ManifestProblem[] = [];
  const files: string[] = [];
  for (const path of Array.isArray(paths) ? paths : [paths]) {
    let st;
    try {
      st = statSync(path);
    } catch {
      problems.push({ file: path, line: 1, message: 'no such file or directory' });
      continue;
    }
    if (!st.isDirectory()) files.push(path);
    else files.push(...readdirSync(path).filter((f) => /\.(ya?ml|json)$/.test(f) && !f.startsWith('.')).sort().map((f) => join(path, f)));
  }
  const out: SourcedObject[] = [];
  for (const f of files) {
    try {
      out.push(...parseManifests(readFileSync(f, 'utf8'), f));
    } catch (err) {
      if (err instanceof ManifestError) problems.push(...err.problems);
      else throw err;
    }
  }
  const seen = new Map<string, SourcedObject>();
  for (const o of out) {
    const key = objectKey(o.object);
    const first = seen.get(key);
    if (first) problems.push({ file: o.file, line: o.line, message: `${describeObject(o.object)} is also defined at ${first.file}:${first.line}` });
    else seen.set(key, o);
  }
  if (problems.length > 0) throw new ManifestError(problems);
  if (out.length === 0) throw new ManifestError([{ file: String(paths), line: 1, message: 'no manifests found (expected YAML documents, or *.yaml files in a directory)' }]);
  return out;
}
