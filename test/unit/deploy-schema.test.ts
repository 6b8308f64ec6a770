// Every object of the install validates against the Kubernetes OpenAPI schema of its kind
// (kubernetes-validate, strict: unknown fields refused), at the oldest supported and a current
// Kubernetes version, for default and non-default values.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseObjects, renderManifest } from '../../agent/src/deploy/render.js';
import { MIN_KUBERNETES } from '../../agent/src/deploy/kube-check.js';
import { parseSet } from '../../agent/src/deploy/values.js';
import { join } from 'node:path';
import { tool, validateCustomResources, validateKubernetes } from '../helpers/deploy-tools.js';

const validator = tool('kubernetes-validate');
const skip = 'skip' in validator ? validator.skip : false;
const VERSIONS = [`${MIN_KUBERNETES.join('.')}.0`, '1.34.0'];

describe('install objects against the Kubernetes OpenAPI schemas', { skip, timeout: 10 * 60_000 }, () => {
  const py = 'path' in validator ? validator.path : '';

  const variants: [string, string[]][] = [
    ['default values', []],
    ['non-default values', ['agent.hostNetwork=true,logLevel=debug,controller.replicas=3,agent.terminationGracePeriodSeconds=90', 'controller.nodeSelector=null,agent.tolerations=null,resourceQuota.enabled=true', 'agent.resources.limits.cpu=2']],
  ];
  for (const [name, sets] of variants) {
    it(`every object validates (strict) at Kubernetes ${VERSIONS.join(' and ')}: ${name}`, () => {
      const objects = parseObjects(renderManifest({ overrides: sets.map((s) => parseSet(s)) }));
      // PodMonitor is the Prometheus Operator's kind, not Kubernetes': checked against its CRD below.
      const k8s = objects.filter((o) => o.apiVersion !== 'monitoring.coreos.com/v1');
      assert.ok(k8s.length >= 14, `expected the whole install, got ${k8s.length} objects`);
      const results = validateKubernetes(py, k8s, VERSIONS);
      assert.equal(results.length, k8s.length * VERSIONS.length);
      const bad = results.filter((r) => !r.ok);
      assert.deepEqual(bad, [], bad.map((b) => `${b.version} ${b.kind}/${b.name}: ${b.error}`).join('\n'));
    });
  }

  it('the validator is strict: it refuses an unknown field, a wrong type and a missing required field', () => {
    const objects = parseObjects(renderManifest({}));
    const ds = structuredClone(objects.find((o) => o.kind === 'DaemonSet')!) as { spec: { template: { spec: { containers: Record<string, unknown>[]; hostNetwrk?: boolean } } } };
    const typo = structuredClone(ds);
    typo.spec.template.spec.hostNetwrk = true;
    const wrongType = structuredClone(ds);
    wrongType.spec.template.spec.containers[0]!.ports = [{ containerPort: 'fifteen' }];
    const noName = structuredClone(ds);
    delete noName.spec.template.spec.containers[0]!.name;
    const results = validateKubernetes(py, [typo, wrongType, noName], ['1.34.0']);
    assert.deepEqual(results.map((r) => r.ok), [false, false, false], JSON.stringify(results));
  });
});

const crds = tool('prometheus-operator-crds');
describe('the PodMonitor against the Prometheus Operator\'s CRD', { skip: skip || ('skip' in crds ? crds.skip : false), timeout: 10 * 60_000 }, () => {
  const py = 'path' in validator ? validator.path : '';
  const crdFile = 'path' in crds ? join(crds.path, 'monitoring.coreos.com_podmonitors.yaml') : '';

  it('validates (unknown fields refused), with default and non-default settings', () => {
    for (const sets of [['podMonitor.enabled=true'], ['podMonitor.enabled=true,podMonitor.interval=1m,podMonitor.labels.release=kube-prometheus']]) {
      const pm = parseObjects(renderManifest({ overrides: sets.map((x) => parseSet(x)) })).filter((o) => o.kind === 'PodMonitor');
      assert.equal(pm.length, 1);
      const [r] = validateCustomResources(py, [crdFile], pm);
      assert.ok(r!.ok, r!.error);
    }
  });

  it('the check is real: a misspelt field and a bad interval are refused', () => {
    const pm = parseObjects(renderManifest({ overrides: [parseSet('podMonitor.enabled=true')] })).find((o) => o.kind === 'PodMonitor') as { spec: Record<string, unknown> };
    const typo = structuredClone(pm);
    typo.spec.podMetricEndpoints = typo.spec.podMetricsEndpoints;
    delete typo.spec.podMetricsEndpoints;
    const badInterval = structuredClone(pm) as { spec: { podMetricsEndpoints: { interval: string }[] } };
    badInterval.spec.podMetricsEndpoints[0]!.interval = 'often';
    const results = validateCustomResources(py, [crdFile], [typo, badInterval]);
    assert.deepEqual(results.map((r) => r.ok), [false, false], JSON.stringify(results));
  });
});
