// Errors of the install renderer and the cluster checks.
import { WeftError } from '../common/errors.js';

/** A value given to `weft manifest` (--set, --values) that the chart's schema refuses. */
export class DeployValuesError extends WeftError {
  constructor(readonly key: string, reason: string) {
    super('WEFT_E_DEPLOY_VALUES', `value '${key}': ${reason}`, {
      hint: 'see deploy/helm/weft/values.yaml for every value, its type and its default',
    });
  }
}

/** The chart files on disk do not match what the TypeScript objects generate. */
export class StaleChartError extends WeftError {
  constructor(files: string[]) {
    super('WEFT_E_CHART_STALE', `the Helm chart is out of date with agent/src/deploy: ${files.join(', ')}`, {
      hint: 'run `npm run gen:chart` and commit deploy/helm/weft',
    });
  }
}

/** The Kubernetes API could not be reached or configured for `weft check --kube`. */
export class KubeUnreachableError extends WeftError {
  constructor(reason: string) {
    super('WEFT_E_KUBE_UNREACHABLE', `cannot reach the Kubernetes API: ${reason}`, {
      hint: 'check --kubeconfig / $KUBECONFIG and the current context (kubectl cluster-info)',
    });
  }
}
