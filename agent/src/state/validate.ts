// Decoding and checking of the resources an agent receives. Anything malformed is refused with
// the resource name and the reason, which becomes the NACK's error_detail.
import { fromBinary } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { WeftError } from '../common/errors.js';
import { AddressSchema, type Address, type Service, type Workload } from '../xds/gen/istio/workload/workload_pb.js';
import { AuthorizationSchema, type Authorization, type Address as PolicyAddress, type Match } from '../xds/gen/istio/security/authorization_pb.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../xds/types.js';

export class InvalidResourceError extends WeftError {
  constructor(readonly resource: string, readonly reason: string) {
    super('WEFT_E_XDS_RESOURCE', `resource '${resource}': ${reason}`, { hint: 'the controller sent a resource this agent cannot use; it keeps its last good state' });
  }
}

function decode<T>(name: string, any: Any, typeUrl: string, f: () => T): T {
  if (any.typeUrl !== typeUrl) throw new InvalidResourceError(name, `type URL is '${any.typeUrl}', expected '${typeUrl}'`);
  try {
    return f();
  } catch (err) {
    throw new InvalidResourceError(name, `cannot decode: ${(err as Error).message}`);
  }
}

function checkIp(name: string, field: string, b: Uint8Array): void {
  if (b.length !== 4 && b.length !== 16) throw new InvalidResourceError(name, `${field} has ${b.length} bytes; an IP address has 4 or 16`);
}

export function checkWorkload(name: string, w: Workload): void {
  if (!w.uid) throw new InvalidResourceError(name, 'workload has no uid');
  if (w.uid !== name) throw new InvalidResourceError(name, `workload uid '${w.uid}' differs from the resource name`);
  w.addresses.forEach((a, i) => checkIp(name, `addresses[${i}]`, a));
  for (const key of Object.keys(w.services)) {
    if (!/^[^/]+\/[^/]+$/.test(key)) throw new InvalidResourceError(name, `services key '${key}' is not namespace/hostname`);
  }
}

export function checkService(name: string, s: Service): void {
  if (!s.hostname) throw new InvalidResourceError(name, 'service has no hostname');
  if (`${s.namespace}/${s.hostname}` !== name) throw new InvalidResourceError(name, `service key '${s.namespace}/${s.hostname}' differs from the resource name`);
  s.addresses.forEach((a, i) => checkIp(name, `addresses[${i}].address`, a.address));
  s.ports.forEach((p, i) => {
    if (p.servicePort < 1 || p.servicePort > 65535) throw new InvalidResourceError(name, `ports[${i}].service_port ${p.servicePort} is not 1-65535`);
  });
}

export function decodeAddress(name: string, any: Any): Address {
  const a = decode(name, any, ADDRESS_TYPE_URL, () => fromBinary(AddressSchema, any.value));
  if (a.type.case === 'workload') checkWorkload(name, a.type.value);
  else if (a.type.case === 'service') checkService(name, a.type.value);
  else throw new InvalidResourceError(name, 'address is neither a workload nor a service');
  return a;
}

function checkCidrs(name: string, field: string, list: PolicyAddress[]): void {
  list.forEach((a, i) => {
    checkIp(name, `${field}[${i}].address`, a.address);
    if (a.length > a.address.length * 8) throw new InvalidResourceError(name, `${field}[${i}].length ${a.length} is longer than the address`);
  });
}

function checkMatch(name: string, f: string, m: Match): void {
  for (const [k, list] of [['namespaces', m.namespaces], ['not_namespaces', m.notNamespaces], ['principals', m.principals], ['not_principals', m.notPrincipals]] as const) {
    list.forEach((s, i) => {
      if (s.matchType.case === undefined) throw new InvalidResourceError(name, `${f}.${k}[${i}] has no match type`);
    });
  }
  checkCidrs(name, `${f}.source_ips`, m.sourceIps);
  checkCidrs(name, `${f}.not_source_ips`, m.notSourceIps);
  checkCidrs(name, `${f}.destination_ips`, m.destinationIps);
  checkCidrs(name, `${f}.not_destination_ips`, m.notDestinationIps);
  for (const p of [...m.destinationPorts, ...m.notDestinationPorts]) {
    if (p > 65535) throw new InvalidResourceError(name, `${f} has port ${p} > 65535`);
  }
}

export function decodeAuthorization(name: string, any: Any): Authorization {
  const a = decode(name, any, AUTHORIZATION_TYPE_URL, () => fromBinary(AuthorizationSchema, any.value));
  if (!a.name || !a.namespace) throw new InvalidResourceError(name, 'policy lacks name or namespace');
  if (`${a.namespace}/${a.name}` !== name) throw new InvalidResourceError(name, `policy key '${a.namespace}/${a.name}' differs from the resource name`);
  a.rules.forEach((r, i) => r.clauses.forEach((c, j) => c.matches.forEach((m, k) => checkMatch(name, `rules[${i}].clauses[${j}].matches[${k}]`, m))));
  return a;
}
