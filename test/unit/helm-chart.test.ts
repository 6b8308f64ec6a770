// The Helm chart and `weft manifest` are one install: the chart is generated from
// agent/src/deploy (and must be committed fresh), it lints, and real `helm template` renders the
// same objects as `weft manifest` for default and non-default values; both refuse the same values.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../agent/src/cli/main.js';
import { VERSION } from '../../agent/src/common/version.js';
import { staleChartFiles } from '../../agent/src/deploy/chart.js';
import { parseObjects } from '../../agent/src/deploy/render.js';
import { MIN_KUBERNETES } from '../../agent/src/deploy/kube-check.js';
import { helm, tool } from '../helpers/deploy-tools.js';

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } };

async function weftManifest(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['manifest', ...args], { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

function byKey(objs: Record<string, unknown>[]): Map<string, Obj> {
  const m = new Map<string, Obj>();
  for (const o of objs as Obj[]) {
    const key = `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    assert.ok(!m.has(key), `duplicate object ${key}`);
    m.set(key, o);
  }
  return m;
}

const helmTool = tool('helm');
const skip = 'skip' in helmTool ? helmTool.skip : false;

describe('helm chart (deploy/helm/weft)', { skip, timeout: 25 * 60_000 }, () => {
  const helmPath = 'path' in helmTool ? helmTool.path : '';
  const dir = mkdtempSync(join(tmpdir(), 'weft-helm-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const valuesFile = join(dir, 'values.yaml');
  // Strings YAML and Go templates treat specially: quotes, backslashes, printf verbs, comment and
  // mapping characters, non-ASCII, newlines, YAML 1.1 booleans and octal-looking numbers.
  const trickyFile = join(dir, 'tricky.yaml');
  before(() => writeFileSync(trickyFile, [
    'trustDomain: "td \\"quoted\\" back\\\\slash %s %v %% #not-a-comment: ü 雪\\nsecond line"',
    'image: { repository: "repo%d/x:y", tag: "on" }',
    'agent:',
    '  tokenAudience: "yes"',
    '  nodeSelector: { "on": "off", "a.b/c": "null", "x": "0o17", "y": "1e3", "z": "" }',
    'podMonitor: { enabled: true, interval: "012", labels: { "true": "~", "k": "- item" } }',
    '',
  ].join('\n')));
  before(() => writeFileSync(valuesFile, [
    'agent:',
    '  resources: { requests: { cpu: 250m, memory: 256Mi }, limits: { cpu: "2", memory: 2Gi } }',
    '  tolerations:',
    '    - { key: dedicated, operator: Equal, value: mesh, effect: NoSchedule }',
    '    - { key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 300 }',
    '  nodeSelector: { mesh.example/enabled: "yes" }',
    'controller:',
    '  tolerations: [{ operator: Exists }]',
    '  resources: { requests: { cpu: 50m } }',
    '',
  ].join('\n')));

  it('the committed chart is exactly what agent/src/deploy generates (run `npm run gen:chart`)', () => {
    assert.deepEqual(staleChartFiles(), []);
  });

  it('helm lint --strict passes, with default and non-default values', () => {
    for (const extra of [[], ['-f', valuesFile, '--set', 'podMonitor.enabled=true,agent.hostNetwork=true']]) {
      const r = helm(helmPath, ['lint', '--strict', 'deploy/helm/weft', ...extra]);
      assert.equal(r.code, 0, r.out + r.err);
      assert.match(r.out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  const cases: { name: string; ns: string; args: string[] }[] = [
    { name: 'default values', ns: 'weft-system', args: [] },
    { name: 'strings YAML and Go templates treat specially', ns: 'weft-system', args: ['-f', '@tricky'] },
    {
      name: 'non-default values (--set, --set-string, a values file)', ns: 'mesh',
      args: [
        '-f', '@values',
        '--set', 'agent.hostNetwork=true,logLevel=debug,trustDomain=example.org',
        '--set', 'image.repository=registry.example/weft,image.pullPolicy=Always',
        '--set', 'podMonitor.enabled=true,podMonitor.labels.release=prom,podMonitor.interval=30s',
        '--set', 'agent.terminationGracePeriodSeconds=60,agent.drainDeadlineSeconds=50,controller.replicas=2',
        '--set', 'agent.nodeSelector.node-role\\.kubernetes\\.io/mesh=yes',
        '--set', 'controller.nodeSelector=null,resourceQuota.enabled=true,resourceQuota.pods=300',
        '--set-string', 'image.tag=1234',
      ],
    },
  ];
  for (const c of cases) {
    it(`helm template and weft manifest render the same objects: ${c.name}`, async () => {
      const args = c.args.map((a) => (a === '@values' ? valuesFile : a === '@tricky' ? trickyFile : a));
      const h = helm(helmPath, ['template', 'weft', 'deploy/helm/weft', '--namespace', c.ns, '--include-crds', '--kube-version', '1.31.0', ...args]);
      assert.equal(h.code, 0, h.err);
      const w = await weftManifest(['--namespace', c.ns, ...args]);
      assert.equal(w.code, 0, w.err);
      const fromHelm = byKey(parseObjects(h.out));
      const fromWeft = byKey(parseObjects(w.out));
      // weft manifest adds the Namespace (kubectl apply needs it; helm has --create-namespace).
      const nsObj = fromWeft.get(`Namespace//${c.ns}`);
      assert.ok(nsObj, 'weft manifest includes the Namespace');
      fromWeft.delete(`Namespace//${c.ns}`);
      assert.deepEqual([...fromWeft.keys()].sort(), [...fromHelm.keys()].sort());
      for (const [k, o] of fromHelm) assert.deepEqual(fromWeft.get(k), o, `object ${k} differs`);
      // The values really took effect (so equality is not two renderings of the defaults).
      const ds = fromHelm.get(`DaemonSet/${c.ns}/weft-agent`) as unknown as { spec: { template: { spec: { hostNetwork: boolean; containers: { image: string }[] } } } };
      if (c.args[1] === '@tricky') {
 const a = (ds.spec.template.spec.containers[0] as unknown as { args: string[] }).args;
        assert.equal(a[a.indexOf('--trust-domain') + 1], 'td "quoted" back\\slash %s %v %% #not-a-comment: ü 雪\nsecond line');
        assert.equal(ds.spec.template.spec.containers[0]!.image, 'repo%d/x:y:on');
      } else if (c.args.length) {
        assert.equal(ds.spec.template.spec.hostNetwork, true);
        assert.equal(ds.spec.template.spec.containers[0]!.image, 'registry.example/weft:1234');
        assert.ok(fromHelm.has(`PodMonitor/${c.ns}/weft-agent`));
      } else {
        assert.equal(ds.spec.template.spec.hostNetwork, false);
        assert.equal(ds.spec.template.spec.containers[0]!.image, `ghcr.io/weft-mesh/weft:${VERSION}`);
        assert.ok(!fromHelm.has(`PodMonitor/${c.ns}/weft-agent`));
      }
    });
  }

  it('the chart refuses Kubernetes older than the minimum weft check --kube enforces', () => {
    const old = helm(helmPath, ['template', 'weft', 'deploy/helm/weft', '--kube-version', '1.26.9']);
    assert.notEqual(old.code, 0);
    assert.match(old.err, /chart requires kubeVersion: >=1\.27\.0-0/);
    assert.equal(helm(helmPath, ['template', 'weft', 'deploy/helm/weft', '--kube-version', `${MIN_KUBERNETES.join('.')}.0`]).code, 0);
  });

  const refused: [string, string[]][] = [
    ['a value outside its enum', ['--set', 'logLevel=loud']],
    ['a misspelt key', ['--set', 'agent.hostNetwrk=true']],
    ['a string where an integer belongs', ['--set', 'agent.terminationGracePeriodSeconds=abc']],
    ['an integer where a string belongs', ['--set', 'image.tag=5']],
    ['a boolean in a map of strings', ['--set', 'agent.nodeSelector.mesh=true']],
    ['an integer below its minimum', ['--set', 'controller.replicas=0']],
  ];
  for (const [what, args] of refused) {
    it(`helm and weft manifest both refuse ${what}`, async () => {
      const h = helm(helmPath, ['template', 'weft', 'deploy/helm/weft', '--kube-version', '1.31.0', ...args]);
      assert.notEqual(h.code, 0, `helm accepted ${args.join(' ')}`);
      assert.match(h.err, /values don't meet the specifications of the schema/);
      const w = await weftManifest(args);
      assert.equal(w.code, 1, w.out);
      assert.match(w.err, /WEFT_E_DEPLOY_VALUES/);
      assert.equal(w.out, '', 'nothing is printed for refused values');
    });
  }
});
