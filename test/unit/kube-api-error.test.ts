// The API's own reason in errors from @kubernetes/client-node (its ApiException message starts
// with "HTTP-Code: 403", which says nothing about what RBAC refused).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ApiException } from '@kubernetes/client-node';
import { kubeErrorReason, kubeStatusCode } from '../../agent/src/common/kube-api-error.js';

const forbidden = 'pods is forbidden: User "system:serviceaccount:weft-system:weft-controller" cannot list resource "pods" in API group "" at the cluster scope';

describe('kubeErrorReason', () => {
  it('gives the status code and the Status message, whether the body is parsed or text', () => {
    const status = { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: forbidden, reason: 'Forbidden', code: 403 };
    assert.equal(kubeErrorReason(new ApiException(403, 'Unknown API Status Code!', status, {})), `HTTP 403: ${forbidden}`);
    assert.equal(kubeErrorReason(new ApiException(403, 'Unknown API Status Code!', JSON.stringify(status), {})), `HTTP 403: ${forbidden}`);
    assert.equal(kubeStatusCode(new ApiException(429, 'x', undefined, {})), 429);
  });

  it('falls back to the code alone, or the first line of any other error', () => {
    assert.equal(kubeErrorReason(new ApiException(401, 'Unauthorized', undefined, {})), 'HTTP 401');
    assert.equal(kubeErrorReason(new ApiException(502, 'x', '<html>bad gateway</html>', {})), 'HTTP 502');
    assert.equal(kubeErrorReason(new Error('connect ECONNREFUSED 127.0.0.1:6443\nmore')), 'connect ECONNREFUSED 127.0.0.1:6443');
    assert.equal(kubeErrorReason('Premature close'), 'Premature close');
  });
});
