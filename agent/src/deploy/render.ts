// `weft manifest`: the install objects rendered with values, as plain YAML for kubectl apply.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { InvalidArgumentError } from '../common/errors.js';
import { VERSION } from '../common/version.js';
import { INSTALL_OBJECTS } from './objects.js';
import { emitObject, evaluate, goTruthy, type Context } from './template.js';
import { defaultValues, mergeValues, validateValues, type Json } from './values.js';

export const DEFAULT_NAMESPACE = 'weft-system';

/** The directory holding Weft's package.json (works from the source tree, dist/ and a packed install). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'weft') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find Weft's package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** deploy/crds: the CRDs (owned by the control plane), the one copy both outputs use. */
export const crdDir = (): string => join(packageRoot(), 'deploy', 'crds');

export function crdFiles(): { name: string; text: string }[] {
  return readdirSync(crdDir()).filter((f) => f.endsWith('.yaml')).sort().map((name) => ({ name, text: readFileSync(join(crdDir(), name), 'utf8') }));
}

export interface RenderOptions {
  /** --set / --values overrides, merged over the defaults in order */
  overrides?: { [k: string]: Json }[];
  namespace?: string;
  /** include the CRDs (default true; Helm installs them from crds/) */
  includeCrds?: boolean;
  /** include a Namespace object (default true: kubectl apply needs it, helm has --create-namespace) */
  includeNamespace?: boolean;
}

export function resolveValues(overrides: { [k: string]: Json }[] = []): { [k: string]: Json } {
  let values = defaultValues();
  for (const o of overrides) values = mergeValues(values, o);
  validateValues(values);
  return values;
}

/** The install as YAML documents, in apply order: Namespace, CRDs, RBAC, workloads. */
export function renderManifest(opts: RenderOptions = {}): string {
  const ns = opts.namespace ?? DEFAULT_NAMESPACE;
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns) || ns.length > 63) {
    throw new InvalidArgumentError('namespace', `'${ns}' is not a valid namespace name (lower-case letters, digits and '-', at most 63)`);
  }
  const ctx: Context = { values: resolveValues(opts.overrides), namespace: ns, appVersion: VERSION };
  const docs: string[] = [];
  if (opts.includeNamespace ?? true) {
    docs.push(`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${JSON.stringify(ns)}\n  labels:\n    app.kubernetes.io/part-of: weft\n`);
  }
  if (opts.includeCrds ?? true) for (const c of crdFiles()) docs.push(c.text.endsWith('\n') ? c.text : c.text + '\n');
  for (const o of INSTALL_OBJECTS) {
    if (o.when && !goTruthy(evaluate(o.when, ctx))) continue;
    docs.push(`# Source: weft/templates/${o.file}\n` + emitObject(o.object, { kind: 'render', ctx }));
  }
  return docs.map((d) => `---\n${d}`).join('');
}

/** Parses a multi-document YAML stream into objects (skipping empty documents). */
export function parseObjects(text: string): Record<string, unknown>[] {
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length) throw d.errors[0]!;
    return d.toJS() as Record<string, unknown> | null;
  }).filter((o): o is Record<string, unknown> => o !== null && typeof o === 'object');
}
