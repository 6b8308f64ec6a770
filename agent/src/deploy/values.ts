// The install's values: one spec (type, default, doc) per key. From it come the chart's
// values.yaml and values.schema.json (which Helm enforces) and the defaults and validation
// `weft manifest` applies, so both front ends accept and reject the same values.
import { DeployValuesError } from './errors.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface Leaf {
  type: 'string' | 'integer' | 'boolean' | 'object' | 'array';
  default: Json;
  doc: string;
  enum?: string[];
  minimum?: number;
  maximum?: number;
  /** Item schema for arrays / value schema for free-form maps (JSON schema). */
  items?: Record<string, unknown>;
  additionalProperties?: Record<string, unknown>;
}
export type Spec = { [k: string]: Spec | Leaf };

const isLeaf = (s: Spec | Leaf): s is Leaf => typeof (s as Leaf).type === 'string' && 'default' in s;

const resources = (cpu: string, memory: string, limit: string): Leaf => ({
  type: 'object',
  default: { requests: { cpu, memory }, limits: { memory: limit } },
  doc: 'Container resources (requests/limits), as in a Pod spec.',
});

export const VALUES_SPEC: Spec = {
  image: {
    repository: { type: 'string', default: 'ghcr.io/weft-mesh/weft', doc: 'Image with the `weft` command (deploy/Dockerfile); used by the agent and the controller.' },
    tag: { type: 'string', default: '', doc: 'Image tag; empty means the chart\'s appVersion (the Weft version).' },
    pullPolicy: { type: 'string', default: 'IfNotPresent', enum: ['Always', 'IfNotPresent', 'Never'], doc: 'Image pull policy.' },
  },
  logLevel: { type: 'string', default: 'info', enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal'], doc: 'Log level of the agent and the controller (WEFT_LOG_LEVEL).' },
  trustDomain: { type: 'string', default: 'cluster.local', doc: 'SPIFFE trust domain: identities are spiffe://<trustDomain>/ns/<ns>/sa/<sa>.' },
  agent: {
    hostNetwork: {
      type: 'boolean', default: false,
      doc: 'Run the agent in the node\'s network namespace. Not needed: the agent enters pod network\nnamespaces through /proc/<pid>/ns/net. With it, the old and new agent share the node\'s ports\n15020/15021 during a surge update (the agent binds them with SO_REUSEPORT).',
    },
    tokenAudience: { type: 'string', default: 'weft', doc: 'Audience of the projected service-account token the agent presents to the controller.' },
    terminationGracePeriodSeconds: { type: 'integer', default: 30, minimum: 1, doc: 'How long Kubernetes waits for an agent to stop; keep it above drainDeadlineSeconds.' },
    drainDeadlineSeconds: { type: 'integer', default: 25, minimum: 0, maximum: 3600, doc: 'How long a stopping agent keeps proxying open connections while its successor takes over (weft agent --drain-deadline).' },
    workers: {
      type: 'integer', default: 1, minimum: 0, maximum: 16,
      doc: 'Data-plane worker threads beside the agent\'s main thread (weft agent --workers): each serves\nevery enrolled pod from its own SO_REUSEPORT listeners. Each adds ~20 MB; 0 keeps the proxy on\nthe main thread (memory-bound nodes).',
    },
    priorityClassName: { type: 'string', default: 'system-node-critical', doc: 'The agent carries every enrolled pod\'s traffic: evict it last.' },
    resources: resources('100m', '128Mi', '1Gi'),
    nodeSelector: { type: 'object', default: { 'kubernetes.io/os': 'linux' }, additionalProperties: { type: 'string' }, doc: 'Nodes that run an agent.' },
    tolerations: { type: 'array', default: [{ operator: 'Exists' }], items: { type: 'object' }, doc: 'Tolerate every taint by default: a node without an agent leaves its enrolled pods without the mesh.' },
  },
  controller: {
    replicas: { type: 'integer', default: 1, minimum: 1, doc: 'Controller replicas.' },
    resources: resources('100m', '128Mi', '512Mi'),
    nodeSelector: { type: 'object', default: { 'kubernetes.io/os': 'linux' }, additionalProperties: { type: 'string' }, doc: 'Nodes that may run the controller.' },
    tolerations: { type: 'array', default: [], items: { type: 'object' }, doc: 'Controller tolerations.' },
  },
  resourceQuota: {
    enabled: {
      type: 'boolean', default: false,
      doc: 'Create a ResourceQuota that admits pods of agent.priorityClassName in this namespace.\nNeeded on GKE, which refuses system-node-critical pods outside kube-system without one.',
    },
    pods: { type: 'integer', default: 5000, minimum: 1, doc: 'Pods of that priority allowed in the namespace (two per node during an upgrade).' },
  },
  podMonitor: {
    enabled: { type: 'boolean', default: false, doc: 'Create a Prometheus Operator PodMonitor (monitoring.coreos.com/v1) for the agents\' metrics port.' },
    interval: { type: 'string', default: '15s', doc: 'Scrape interval.' },
    labels: { type: 'object', default: {}, additionalProperties: { type: 'string' }, doc: 'Labels on the PodMonitor (to match your Prometheus\'s podMonitorSelector).' },
  },
};

/** The default values, as a plain object. */
export function defaultValues(spec: Spec = VALUES_SPEC): { [k: string]: Json } {
  const out: { [k: string]: Json } = {};
  for (const [k, s] of Object.entries(spec)) out[k] = isLeaf(s) ? structuredClone(s.default) : defaultValues(s);
  return out;
}

/** values.schema.json: every key typed, unknown keys refused (a typo in --set is an error). */
export function valuesSchema(spec: Spec = VALUES_SPEC, top = true): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(spec)) {
    if (isLeaf(s)) {
      const p: Record<string, unknown> = { type: s.type, description: s.doc.replace(/\n/g, ' ') };
      if (s.enum) p.enum = s.enum;
      if (s.minimum !== undefined) p.minimum = s.minimum;
      if (s.maximum !== undefined) p.maximum = s.maximum;
      if (s.items) p.items = s.items;
      if (s.additionalProperties) p.additionalProperties = s.additionalProperties;
      properties[k] = p;
    } else {
      properties[k] = valuesSchema(s, false);
    }
  }
  return { ...(top ? { $schema: 'http://json-schema.org/draft-07/schema#' } : {}), type: 'object', additionalProperties: false, properties };
}

function typeOf(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/** Checks merged values against the spec, like Helm does with values.schema.json. */
export function validateValues(values: { [k: string]: Json }, spec: Spec = VALUES_SPEC, prefix = ''): void {
  for (const [k, v] of Object.entries(values)) {
    const path = prefix + k;
    const s = spec[k];
    if (!s) throw new DeployValuesError(path, `unknown value (known here: ${Object.keys(spec).join(', ')})`);
    if (!isLeaf(s)) {
      if (typeOf(v) !== 'object') throw new DeployValuesError(path, `must be a map of ${Object.keys(s).join(', ')}, not ${typeOf(v)}`);
      validateValues(v as { [k: string]: Json }, s, path + '.');
      continue;
    }
    const t = typeOf(v);
    if (t !== s.type) throw new DeployValuesError(path, `must be ${s.type === 'integer' ? 'an' : 'a'} ${s.type}, not ${t}${t === 'integer' && s.type === 'string' ? ' (use --set-string for numbers meant as strings)' : ''}`);
    if (s.enum && !s.enum.includes(v as string)) throw new DeployValuesError(path, `must be one of ${s.enum.join(', ')}, not '${String(v)}'`);
    if (s.minimum !== undefined && (v as number) < s.minimum) throw new DeployValuesError(path, `must be at least ${s.minimum}`);
    if (s.maximum !== undefined && (v as number) > s.maximum) throw new DeployValuesError(path, `must be at most ${s.maximum}`);
    if (s.additionalProperties?.type === 'string') {
      for (const [mk, mv] of Object.entries(v as object)) {
        if (typeof mv !== 'string') throw new DeployValuesError(`${path}.${mk}`, `must be a string, not ${typeOf(mv as Json)}`);
      }
    }
    if (s.items?.type === 'object') {
      (v as Json[]).forEach((item, i) => {
        if (typeOf(item) !== 'object') throw new DeployValuesError(`${path}[${i}]`, `must be a map, not ${typeOf(item)}`);
      });
    }
  }
}

/** Helm's coalescing: maps merge key by key, anything else (lists too) replaces; null deletes. */
export function mergeValues(base: { [k: string]: Json }, over: { [k: string]: Json }): { [k: string]: Json } {
  const out: { [k: string]: Json } = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    if (v === null) delete out[k];
    else if (typeOf(v) === 'object' && b !== undefined && typeOf(b) === 'object') out[k] = mergeValues(b as { [k: string]: Json }, v as { [k: string]: Json });
    else out[k] = v;
  }
  return out;
}

/**
 * Parses one `--set` (or `--set-string`) argument the way Helm's strvals does for the forms
 * documented here: `a.b=c`, several pairs separated by commas, `\.` and `\,` escapes,
 * `{x,y}` lists; with typed=true, `true`/`false`/`null` and integers become typed values.
 * Index syntax (`a[0]=x`) is refused with a hint rather than half-supported.
 */
export function parseSet(arg: string, typed = true): { [k: string]: Json } {
  const out: { [k: string]: Json } = {};
  for (const pair of splitUnescaped(arg, ',', true)) {
    const eq = indexUnescaped(pair, '=');
    if (eq < 0) throw new DeployValuesError(pair, 'a --set item must be key=value');
    const keyText = pair.slice(0, eq);
    const valueText = pair.slice(eq + 1);
    if (/(^|[^\\])\[/.test(keyText)) throw new DeployValuesError(keyText, 'list indexes in --set keys are not supported; use --values FILE for lists');
    const keys = splitUnescaped(keyText, '.', false).map((k) => k.replace(/\\(.)/g, '$1'));
    if (keys.some((k) => k === '')) throw new DeployValuesError(keyText, 'empty key segment');
    let value: Json;
    if (valueText.startsWith('{') && valueText.endsWith('}')) {
      const inner = valueText.slice(1, -1);
      value = inner === '' ? [] : splitUnescaped(inner, ',', false).map((x) => scalar(x.replace(/\\(.)/g, '$1'), typed));
    } else {
      value = scalar(valueText.replace(/\\(.)/g, '$1'), typed);
    }
    let at = out;
    keys.forEach((k, i) => {
      if (i === keys.length - 1) at[k] = value;
      else at = (at[k] = typeOf(at[k] ?? null) === 'object' ? at[k]! : {}) as { [k: string]: Json };
    });
  }
  return out;
}

function scalar(s: string, typed: boolean): Json {
  if (!typed) return s;
  const lower = s.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  if (lower === 'null') return null;
  // strvals: integers (not floats) become numbers; a leading zero keeps it a string.
  if ((s === '0' || /^[-+]?[1-9][0-9]*$/.test(s)) && Number.isSafeInteger(Number(s))) return Number(s);
  return s;
}

function indexUnescaped(s: string, ch: string): number {
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === ch) return i;
  }
  return -1;
}

/** Splits on ch not escaped by a backslash; with braces=true, not inside {…} either. */
function splitUnescaped(s: string, ch: string, braces: boolean): string[] {
  const parts: string[] = [];
  let cur = '';
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) {
      cur += c + s[++i];
      continue;
    }
    if (braces && c === '{') depth++;
    if (braces && c === '}') depth--;
    if (c === ch && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  return parts;
}

/** Spec entries in order, for values.yaml. */
export function specEntries(spec: Spec = VALUES_SPEC): [string, Spec | Leaf, boolean][] {
  return Object.entries(spec).map(([k, s]) => [k, s, isLeaf(s)]);
}
