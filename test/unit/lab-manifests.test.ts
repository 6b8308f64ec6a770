// Manifest checking for `weft lab apply/delete`: bad input is reported with file and line.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadManifests, parseManifests, ManifestError, objectKey } from '../../agent/src/lab/index.js';

function problemsOf(fn: () => unknown) {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ManifestError, `expected ManifestError, got ${String(err)}`);
    assert.equal(err.code, 'WEFT_E_MANIFEST_INVALID');
    return err.problems;
  }
  assert.fail('expected the manifests to be refused');
}

describe('lab manifests', () => {
  it('parses several documents and keys them by kind, namespace and name', () => {
    const objs = parseManifests(
      'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: extra\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n---\n',
      'a.yaml',
    );
    assert.deepEqual(objs.map((o) => objectKey(o.object)), ['Namespace//extra', 'Service/default/web']);
    assert.deepEqual(objs.map((o) => o.line), [1, 6]);
  });

  it('reports invalid YAML with its line', () => {
    const p = problemsOf(() => parseManifests('apiVersion: v1\nkind: Pod\nmetadata:\n  name: [oops\n', 'bad.yaml'));
    assert.equal(p[0]!.file, 'bad.yaml');
    assert.match(p[0]!.message, /invalid YAML/);
    assert.ok(p[0]!.line >= 4, `line ${p[0]!.line}`);
  });

  it('refuses an unknown kind at the line of kind', () => {
    const p = problemsOf(() => parseManifests('apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n', 'k.yaml'));
    assert.equal(p.length, 1);
    assert.equal(p[0]!.line, 6);
    assert.match(p[0]!.message, /unknown kind 'Deployment'/);
  });

  it('checks the schema: name, apiVersion, namespace scope, ports, policy fields, labels', () => {
    const cases: Array<[string, RegExp, number]> = [
      ['apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {a: b}\n', /missing metadata.name/, 3],
      ['apiVersion: v2\nkind: Pod\nmetadata: {name: p}\n', /needs apiVersion v1/, 1],
      ['apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  namespace: x\n', /cluster-scoped/, 5],
      ['apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: 70000\n', /port: 1-65535/, 6],
      ['apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  clusterIP: 10.0.0.1\n  ports: [{port: 80}]\n', /198.18.0.0\/15/, 5],
      ['apiVersion: security.weft.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  action: MAYBE\n', /ALLOW or DENY/, 5],
      ['apiVersion: security.weft.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec:\n  mtls:\n    mode: SOMETIMES\n', /STRICT, PERMISSIVE/, 6],
      ['apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\n', /DNS subdomain/, 4],
      ['apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    app: 3\n', /must be a string/, 6],
      ['apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    "bad key!": x\n', /label key/, 6],
      ['- just\n- a list\n', /must be a mapping/, 1],
    ];
    for (const [text, re, line] of cases) {
      const p = problemsOf(() => parseManifests(text, 'c.yaml'));
      assert.match(p[0]!.message, re, text);
      assert.equal(p[0]!.line, line, `${text} → ${p[0]!.message}`);
    }
  });

  it('accepts the policy kinds under security.weft.io/v1 only', () => {
    assert.equal(parseManifests('apiVersion: security.weft.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: demo}\nspec: {action: DENY}\n', 'p.yaml').length, 1);
    const p = problemsOf(() => parseManifests('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n', 'p.yaml'));
    assert.match(p[0]!.message, /security.weft.io\/v1/);
  });

  it('loads a directory, reports every bad file, and refuses duplicates across files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-lab-manifests-'));
    try {
      writeFileSync(join(dir, 'a.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: one}\n');
      writeFileSync(join(dir, 'b.yml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: two}\n');
      writeFileSync(join(dir, 'notes.txt'), 'not a manifest');
      assert.deepEqual(loadManifests(dir).map((o) => o.object.metadata.name), ['one', 'two']);
      writeFileSync(join(dir, 'c.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: one}\n');
      writeFileSync(join(dir, 'd.yaml'), 'kind: [\n');
      const p = problemsOf(() => loadManifests(dir));
      assert.ok(p.some((x) => x.file.endsWith('c.yaml') && /also defined at .*a.yaml:1/.test(x.message)), JSON.stringify(p));
      assert.ok(p.some((x) => x.file.endsWith('d.yaml') && /invalid YAML/.test(x.message)), JSON.stringify(p));
      const missing = problemsOf(() => loadManifests(join(dir, 'nope.yaml')));
      assert.match(missing[0]!.message, /no such file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
