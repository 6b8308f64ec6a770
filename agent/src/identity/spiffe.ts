// SPIFFE IDs of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, the
// only identity shape the mesh issues and accepts.
import { WeftError } from '../common/errors.js';

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

export interface Identity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

export class InvalidSpiffeIdError extends WeftError {
  constructor(id: string, reason: string) {
    super('WEFT_E_SPIFFE_ID', `invalid SPIFFE ID '${id}': ${reason}`, {
      hint: 'use spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>',
    });
  }
}

const SEGMENT = /^[A-Za-z0-9._-]+$/;

export function formatSpiffeId(id: Identity): string {
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/** Parses a SPIFFE ID; throws InvalidSpiffeIdError naming what is wrong. */
export function parseSpiffeId(text: string): Identity {
  if (!text.startsWith('spiffe://')) throw new InvalidSpiffeIdError(text, "it does not start with 'spiffe://'");
  const parts = text.slice('spiffe://'.length).split('/');
  if (parts.length !== 5 || parts[1] !== 'ns' || parts[3] !== 'sa') {
    throw new InvalidSpiffeIdError(text, "the path is not '/ns/<namespace>/sa/<service-account>'");
  }
  const [trustDomain, , namespace, , serviceAccount] = parts as [string, string, string, string, string];
  for (const [what, v] of [['trust domain', trustDomain], ['namespace', namespace], ['service account', serviceAccount]] as const) {
    if (!SEGMENT.test(v)) throw new InvalidSpiffeIdError(text, `the ${what} '${v}' is empty or has characters outside [A-Za-z0-9._-]`);
  }
  return { trustDomain: trustDomain.toLowerCase(), namespace, serviceAccount };
}

export function tryParseSpiffeId(text: string): Identity | undefined {
  try {
    return parseSpiffeId(text);
  } catch {
    return undefined;
  }
}

export function sameIdentity(a: Identity, b: Identity): boolean {
  return a.trustDomain === b.trustDomain && a.namespace === b.namespace && a.serviceAccount === b.serviceAccount;
}
