// What the Kubernetes API said when it refused a request, from client-node's errors and from our
// own client's (kube-api.ts: KubeApiError, `statusCode` and the Status as `body`). client-node's ApiException
// message is "HTTP-Code: 403\nMessage: Unknown API Status Code!\nBody: …": its first line drops
// the API's own reason (e.g. `pods is forbidden: User "system:serviceaccount:weft-system:weft-controller"
// cannot list resource "pods" …`), which is what an operator needs to fix RBAC.

/** The HTTP status of a client-node error (numeric `code`) or a KubeApiError (`statusCode`), if it has one. */
export function kubeStatusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } } | null;
  for (const c of [e?.statusCode, e?.code, e?.response?.statusCode]) if (typeof c === 'number') return c;
  return undefined;
}

/** One line: "HTTP <code>: <the API's Status message>", or the error's first line. */
export function kubeErrorReason(err: unknown): string {
  const code = kubeStatusCode(err);
  let body = (err as { body?: unknown } | null)?.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch { /* not a Status */ }
  }
  const message = (body as { message?: unknown } | null)?.message;
  if (code !== undefined && typeof message === 'string' && message !== '') return `HTTP ${code}: ${message.split('\n')[0]}`;
  if (code !== undefined) return `HTTP ${code}`;
  return ((err as Error | null)?.message ?? String(err)).split('\n')[0]!;
}
