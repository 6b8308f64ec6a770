// The agent's side of `weft check --kube`: it publishes its node preflight (the same
// CheckResult[] `weft check` prints) as the node annotation weft.io/node-checks, with a JSON
// merge patch (application/merge-patch+json) that touches nothing else, sent by the agent's own
// client (common/kube-api.ts). The agent's ClusterRole grants nodes get/patch for this.
import { kubePatch, type KubeConnection } from '../common/kube-api.js';
import { WeftError } from '../common/errors.js';
import { kubeErrorReason } from '../common/kube-api-error.js';
import type { CheckResult } from '../preflight/node-checks.js';
import { NODE_CHECKS_ANNOTATION } from './objects.js';

export interface NodeChecksPayload { version: string; time: string; ok: boolean; checks: CheckResult[] }

export class NodeChecksPublishError extends WeftError {
  constructor(node: string, reason: string) {
    super('WEFT_E_NODE_CHECKS_PUBLISH', `cannot publish ${NODE_CHECKS_ANNOTATION} on node ${node}: ${reason}`, {
      hint: 'the agent needs nodes get/patch (ClusterRole weft-agent) and WEFT_NODE_NAME set from spec.nodeName',
    });
  }
}

/** The annotation value: compact JSON, verdict computed like `weft check` does. */
export function nodeChecksAnnotation(checks: CheckResult[], version: string, now = new Date()): string {
  const payload: NodeChecksPayload = { version, time: now.toISOString(), ok: checks.every((c) => c.ok || !c.required), checks };
  return JSON.stringify(payload);
}

/** The merge patch body that sets only this annotation. */
export function nodeChecksPatch(value: string): { metadata: { annotations: Record<string, string> } } {
  return { metadata: { annotations: { [NODE_CHECKS_ANNOTATION]: value } } };
}

/** Publishes the checks on the agent's node (call at start and when a result changes). */
export async function publishNodeChecks(conn: KubeConnection, nodeName: string, checks: CheckResult[], version: string, timeoutMs = 10_000): Promise<void> {
  try {
    await kubePatch(conn, `/api/v1/nodes/${encodeURIComponent(nodeName)}`, 'merge', nodeChecksPatch(nodeChecksAnnotation(checks, version)), { timeoutMs });
  } catch (err) {
    throw new NodeChecksPublishError(nodeName, kubeErrorReason(err));
  }
}
