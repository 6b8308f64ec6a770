// Type URLs and the Any wrapping used on the delta ADS stream. Weft serves exactly the two
// type URLs ztunnel subscribes to.
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { AnySchema, type Any } from '@bufbuild/protobuf/wkt';
import { AddressSchema, type Address } from './gen/istio/workload/workload_pb.js';
import { AuthorizationSchema, type Authorization } from './gen/istio/security/authorization_pb.js';

export const ADDRESS_TYPE_URL = 'type.googleapis.com/istio.workload.Address';
export const AUTHORIZATION_TYPE_URL = 'type.googleapis.com/istio.security.Authorization';
export const TYPE_URLS = [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL] as const;
export type TypeUrl = (typeof TYPE_URLS)[number];

export function isTypeUrl(s: string): s is TypeUrl {
  return (TYPE_URLS as readonly string[]).includes(s);
}

/** Packs a message into an Any with the type.googleapis.com/ prefix. */
export function pack<D extends DescMessage>(schema: D, msg: MessageShape<D>): Any {
  return create(AnySchema, { typeUrl: `type.googleapis.com/${schema.typeName}`, value: toBinary(schema, msg) });
}

/** Unpacks an Any, checking its type URL; throws on a mismatch or malformed bytes. */
export function unpack<D extends DescMessage>(schema: D, any: Any): MessageShape<D> {
  const want = `type.googleapis.com/${schema.typeName}`;
  if (any.typeUrl !== want) throw new Error(`expected ${want}, got ${any.typeUrl || '(empty type URL)'}`);
  return fromBinary(schema, any.value);
}

export function packAddress(a: Address): Any {
  return pack(AddressSchema, a);
}
export function packAuthorization(a: Authorization): Any {
  return pack(AuthorizationSchema, a);
}
