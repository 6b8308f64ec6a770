// One description of the install, two outputs. Objects are plain data with a few markers
// (a value, the namespace, a string built from parts, a conditional field, a comment). The
// same emitter writes them either as Helm templates (markers become Go template actions) or
// as final YAML (markers resolved against the values). Each marker maps to one small Go
// template idiom whose semantics are mirrored here (quote, int64, default, printf, if, toYaml),
// so the chart and `weft manifest` cannot drift apart; a test compares them with real helm.
import type { Json } from './values.js';

export type ScalarType = 'string' | 'integer' | 'boolean';

export type Expr =
  | { $: 'value'; path: string[]; type: ScalarType | 'yaml'; fallback?: Expr }
  | { $: 'namespace' }
  | { $: 'appVersion' }
  | { $: 'concat'; parts: (string | Expr)[] };

export interface IfNode { $: 'if'; cond: Expr; then: Node }
export interface CommentNode { $: 'comment'; text: string; node: Node }
export type Node = Json | Expr | IfNode | CommentNode | Node[] | { [k: string]: Node };

const EXPR_TAGS = new Set(['value', 'namespace', 'appVersion', 'concat']);
const isTagged = (n: Node): n is { $: string } & Node => typeof n === 'object' && n !== null && !Array.isArray(n) && typeof (n as { $?: unknown }).$ === 'string';
const isExpr = (n: Node): n is Expr => isTagged(n) && EXPR_TAGS.has((n as { $: string }).$);
const isIf = (n: Node): n is IfNode => isTagged(n) && (n as { $: string }).$ === 'if';
const isComment = (n: Node): n is CommentNode => isTagged(n) && (n as { $: string }).$ === 'comment';

// ---- builders used by objects.ts

/** A value by dotted path (`agent.hostNetwork`), emitted as the given type. */
export const val = (path: string, type: ScalarType | 'yaml', fallback?: Expr): Expr => ({ $: 'value', path: path.split('.'), type, ...(fallback ? { fallback } : {}) });
export const namespace: Expr = { $: 'namespace' };
export const appVersion: Expr = { $: 'appVersion' };
export const concat = (...parts: (string | Expr)[]): Expr => ({ $: 'concat', parts });
/** A map field (or list item) present only when cond is true in Go template terms. */
export const when = (cond: Expr, then: Node): IfNode => ({ $: 'if', cond, then });
/** A comment line above a field or list item, kept in both outputs. */
export const note = (text: string, node: Node): CommentNode => ({ $: 'comment', text, node });

// ---- evaluation (what Helm computes)

export interface Context { values: { [k: string]: Json }; namespace: string; appVersion: string }

/** Go template truth: false, 0, nil, "" and empty maps/lists are false. */
export function goTruthy(v: Json | undefined): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

export function evaluate(e: Expr, ctx: Context): Json {
  switch (e.$) {
    case 'namespace': return ctx.namespace;
    case 'appVersion': return ctx.appVersion;
    case 'concat': return e.parts.map((p) => (typeof p === 'string' ? p : String(evaluate(p, ctx)))).join('');
    case 'value': {
      let v: Json | undefined = ctx.values;
      for (const k of e.path) v = v !== null && typeof v === 'object' && !Array.isArray(v) ? v[k] : undefined;
      if (e.fallback && !goTruthy(v)) return evaluate(e.fallback, ctx);
      return v ?? null;
    }
  }
}

// ---- Go template text for an expression

function goExpr(e: Expr): string {
  switch (e.$) {
    case 'namespace': return '.Release.Namespace';
    case 'appVersion': return '.Chart.AppVersion';
    case 'concat': {
      const fmt = e.parts.map((p) => (typeof p === 'string' ? p.replace(/%/g, '%%') : '%v')).join('');
      const args = e.parts.filter((p): p is Expr => typeof p !== 'string').map(goArg);
      return `printf ${JSON.stringify(fmt)} ${args.join(' ')}`;
    }
    case 'value': {
      const ref = `.Values.${e.path.join('.')}`;
      return e.fallback ? `${ref} | default ${goArg(e.fallback)}` : ref;
    }
  }
}
const goArg = (e: Expr): string => (e.$ === 'value' && !e.fallback) || e.$ === 'namespace' || e.$ === 'appVersion' ? goExpr(e) : `(${goExpr(e)})`;
const scalarTypeOf = (e: Expr): ScalarType | 'yaml' => (e.$ === 'value' ? e.type : 'string');

function goScalar(e: Expr): string {
  const t = scalarTypeOf(e);
  if (t === 'string') return `{{ ${goExpr(e)} | quote }}`;
  if (t === 'integer') return `{{ ${goExpr(e)} | int64 }}`;
  return `{{ ${goExpr(e)} }}`;
}

// ---- YAML emission

export type Mode = { kind: 'template' } | { kind: 'render'; ctx: Context };

const PLAIN_KEY = /^[A-Za-z0-9_][A-Za-z0-9_./-]*$/;
const yamlKey = (k: string) => (PLAIN_KEY.test(k) && !/^(true|false|null|yes|no|on|off|y|n|~)$/i.test(k) ? k : JSON.stringify(k));

function yamlScalar(v: Json): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

function renderScalar(e: Expr, ctx: Context): string {
  const v = evaluate(e, ctx);
  const t = scalarTypeOf(e);
  if (t === 'string') return JSON.stringify(v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  return yamlScalar(v);
}

const isEmptyCollection = (v: Node) => (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && !Array.isArray(v) && !isTagged(v) && Object.keys(v).length === 0);

function emitField(key: string, node: Node, indent: number, mode: Mode, out: string[]): void {
  const pad = ' '.repeat(indent);
  const k = yamlKey(key);
  if (isComment(node)) {
    for (const line of node.text.split('\n')) out.push(`${pad}# ${line}`);
    return emitField(key, node.node, indent, mode, out);
  }
  if (isIf(node)) {
    if (mode.kind === 'template') {
      out.push(`${pad}{{- if ${goExpr(node.cond)} }}`);
      emitField(key, node.then, indent, mode, out);
      out.push(`${pad}{{- end }}`);
    } else if (goTruthy(evaluate(node.cond, mode.ctx))) {
      emitField(key, node.then, indent, mode, out);
    }
    return;
  }
  if (isExpr(node)) {
    if (scalarTypeOf(node) === 'yaml') {
      if (mode.kind === 'template') {
        out.push(`${pad}${k}:`, `${pad}  {{- toYaml ${goExpr(node)} | nindent ${indent + 2} }}`);
      } else {
        emitField(key, evaluate(node, mode.ctx), indent, mode, out);
      }
      return;
    }
    out.push(`${pad}${k}: ${mode.kind === 'template' ? goScalar(node) : renderScalar(node, mode.ctx)}`);
    return;
  }
  if (isEmptyCollection(node)) {
    out.push(`${pad}${k}: ${Array.isArray(node) ? '[]' : '{}'}`);
    return;
  }
  if (Array.isArray(node)) {
    out.push(`${pad}${k}:`);
    emitList(node, indent + 2, mode, out);
    return;
  }
  if (typeof node === 'object' && node !== null) {
    out.push(`${pad}${k}:`);
    emitMap(node as { [k: string]: Node }, indent + 2, mode, out);
    return;
  }
  out.push(`${pad}${k}: ${yamlScalar(node)}`);
}

export function emitMap(map: { [k: string]: Node }, indent: number, mode: Mode, out: string[]): void {
  for (const [k, v] of Object.entries(map)) emitField(k, v, indent, mode, out);
}

function emitList(items: Node[], indent: number, mode: Mode, out: string[]): void {
  const pad = ' '.repeat(indent);
  for (const item of items) {
    if (isComment(item)) {
      for (const line of item.text.split('\n')) out.push(`${pad}# ${line}`);
      emitList([item.node], indent, mode, out);
    } else if (isIf(item)) {
      if (mode.kind === 'template') {
        out.push(`${pad}{{- if ${goExpr(item.cond)} }}`);
        emitList([item.then], indent, mode, out);
        out.push(`${pad}{{- end }}`);
      } else if (goTruthy(evaluate(item.cond, mode.ctx))) {
        emitList([item.then], indent, mode, out);
      }
    } else if (isExpr(item)) {
      if (scalarTypeOf(item) === 'yaml') throw new Error('a yaml value cannot be a list item; use it as the whole list');
      out.push(`${pad}- ${mode.kind === 'template' ? goScalar(item) : renderScalar(item, mode.ctx)}`);
    } else if (Array.isArray(item)) {
      throw new Error('nested lists are not supported');
    } else if (typeof item === 'object' && item !== null) {
      if (Object.keys(item).length === 0) {
        out.push(`${pad}- {}`);
        continue;
      }
      const lines: string[] = [];
      emitMap(item as { [k: string]: Node }, indent + 2, mode, lines);
      const first = lines[0]!;
      const inner = ' '.repeat(indent + 2);
      // Put the first key on the dash line when it is a plain key line.
      if (first.startsWith(inner) && !/^\s*(#|\{\{)/.test(first)) lines[0] = `${pad}- ${first.slice(inner.length)}`;
      else lines.unshift(`${pad}-`);
      out.push(...lines);
    } else {
      out.push(`${pad}- ${yamlScalar(item)}`);
    }
  }
}

/** One object as a YAML document body (no `---`). */
export function emitObject(obj: { [k: string]: Node }, mode: Mode): string {
  const out: string[] = [];
  emitMap(obj, 0, mode, out);
  return out.join('\n') + '\n';
}

/** The Go template text of a condition (for whole-object conditionals). */
export const goCondition = (e: Expr): string => goExpr(e);
