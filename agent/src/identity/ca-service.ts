// istio.v1.auth.IstioCertificateService/CreateCertificate on the controller. Node
// authorization: the caller's bearer token names its node, and it gets a certificate for the
// ImpersonatedIdentity only when a pod with that service account runs on that node. Nothing
// else mints identities.
import { status, type ServerUnaryCall, type sendUnaryData, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { logger } from '../common/log.js';
import { IstioCertificateResponseSchema, type IstioCertificateRequest, type IstioCertificateResponse } from '../xds/gen/istio/v1/auth/ca_pb.js';
import type { CertificateAuthority } from './ca.js';
import { CsrRejectedError } from './csr.js';
import { bearerToken, UnauthenticatedError, type NodeAuthenticator, type NodeCaller } from './node-auth.js';
import { formatSpiffeId, InvalidSpiffeIdError, parseSpiffeId, type Identity } from './spiffe.js';

export const IMPERSONATED_IDENTITY = 'ImpersonatedIdentity';

/** What the CA asks the cluster state: does this node run a pod with this identity? */
export interface NodeIdentityIndex {
  hasIdentityOnNode(node: string, identity: Identity): boolean;
}

export interface GrpcFailure {
  code: status;
  details: string;
}

function fail(code: status, details: string): GrpcFailure {
  return { code, details };
}

export async function authenticateCall(auth: NodeAuthenticator, values: Array<string | Buffer>): Promise<NodeCaller> {
  return auth.authenticate(bearerToken(values));
}

/** The handler logic, separated from grpc-js plumbing; throws GrpcFailure-shaped objects. */
export async function createCertificate(
  ca: CertificateAuthority, auth: NodeAuthenticator, index: NodeIdentityIndex,
  authorization: Array<string | Buffer>, req: IstioCertificateRequest,
): Promise<string[]> {
  const log = logger('ca');
  let caller: NodeCaller;
  try {
    caller = await authenticateCall(auth, authorization);
  } catch (err) {
    const reason = err instanceof UnauthenticatedError ? err.message : `authentication failed: ${(err as Error).message}`;
    log.warn({ reason }, 'refused certificate request: unauthenticated');
    throw fail(status.UNAUTHENTICATED, reason);
  }
  const requested = req.metadata?.[IMPERSONATED_IDENTITY];
  if (typeof requested !== 'string' || requested === '') {
    log.warn({ caller: caller.subject }, 'refused certificate request: no ImpersonatedIdentity');
    throw fail(status.INVALID_ARGUMENT, `metadata.${IMPERSONATED_IDENTITY} is required: node agents request certificates on behalf of a pod`);
  }
  let identity: Identity;
  try {
    identity = parseSpiffeId(requested);
  } catch (err) {
    throw fail(status.INVALID_ARGUMENT, (err as InvalidSpiffeIdError).message);
  }
  const id = formatSpiffeId(identity);
  if (identity.trustDomain !== ca.trustDomain) {
    log.warn({ caller: caller.subject, node: caller.node, identity: id }, 'refused certificate request: foreign trust domain');
    throw fail(status.PERMISSION_DENIED, `trust domain '${identity.trustDomain}' is not this mesh's ('${ca.trustDomain}')`);
  }
  if (!index.hasIdentityOnNode(caller.node, identity)) {
    log.warn({ caller: caller.subject, node: caller.node, identity: id }, 'refused certificate request: no pod with this identity on the caller\'s node');
    throw fail(status.PERMISSION_DENIED, `node ${caller.node} runs no pod with service account ${identity.namespace}/${identity.serviceAccount}, so it may not obtain ${id}`);
  }
  try {
    const chain = await ca.sign(req.csr, identity, Number(req.validityDuration));
    log.info({ caller: caller.subject, node: caller.node, identity: id }, 'issued certificate');
    return chain;
  } catch (err) {
    if (err instanceof CsrRejectedError) {
      log.warn({ caller: caller.subject, identity: id, reason: err.message }, 'refused certificate request: bad CSR');
      throw fail(status.INVALID_ARGUMENT, err.message);
    }
    log.error({ err }, 'CA failure');
    throw fail(status.INTERNAL, `the CA failed: ${(err as Error).message}`);
  }
}

export function certificateServiceImplementation(
  ca: CertificateAuthority, auth: NodeAuthenticator, index: NodeIdentityIndex,
): UntypedServiceImplementation {
  return {
    CreateCertificate: (call: ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>, cb: sendUnaryData<IstioCertificateResponse>) => {
      createCertificate(ca, auth, index, call.metadata.get('authorization'), call.request).then(
        (certChain) => cb(null, create(IstioCertificateResponseSchema, { certChain })),
        (err: GrpcFailure) => cb({ code: err.code ?? status.INTERNAL, details: err.details ?? String(err) }),
      );
    },
  };
}
