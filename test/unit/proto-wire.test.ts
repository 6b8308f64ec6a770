// Field numbers are wire facts shared with Istio and Envoy. These tests decode the encoded
// bytes by hand, so a renumbered field in agent/proto fails here even if both sides of Weft
// agreed with each other.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { create, toBinary, fromBinary } from '@bufbuild/protobuf';
import { AddressSchema, WorkloadSchema, ServiceSchema, TunnelProtocol, PortListSchema } from '../../agent/src/xds/gen/istio/workload/workload_pb.js';
import { AuthorizationSchema, ClauseSchema, MatchSchema, StringMatchSchema, Action, Scope } from '../../agent/src/xds/gen/istio/security/authorization_pb.js';
import { IstioCertificateRequestSchema } from '../../agent/src/xds/gen/istio/v1/auth/ca_pb.js';
import { DeltaDiscoveryRequestSchema, DeltaDiscoveryResponseSchema, ResourceSchema } from '../../agent/src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { ADDRESS_TYPE_URL, packAddress, unpack } from '../../agent/src/xds/types.js';

interface Field { num: number; wire: number; bytes?: Uint8Array; varint?: bigint }

/** Minimal protobuf reader: the top-level fields of a message, in order. */
function fields(buf: Uint8Array): Field[] {
  let i = 0;
  const varint = (): bigint => {
    let v = 0n, shift = 0n;
    for (;;) {
      const b = buf[i++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
    }
  };
  const out: Field[] = [];
  while (i < buf.length) {
    const tag = Number(varint());
    const f: Field = { num: tag >>> 3, wire: tag & 7 };
    if (f.wire === 0) f.varint = varint();
    else if (f.wire === 2) { const n = Number(varint()); f.bytes = buf.subarray(i, i + n); i += n; }
    else throw new Error(`unexpected wire type ${f.wire}`);
    out.push(f);
  }
  return out;
}
const text = (b?: Uint8Array) => new TextDecoder().decode(b);

describe('istio.workload wire format', () => {
  it('puts Workload.uid at field 20 and authorization_policies at 16', () => {
    const bytes = toBinary(WorkloadSchema, create(WorkloadSchema, { uid: 'u1', authorizationPolicies: ['ns/p'] }));
    // tag bytes: (20<<3|2) = 0xa2 0x01; (16<<3|2) = 0x82 0x01
    const hex = Buffer.from(bytes).toString('hex');
    assert.ok(hex.includes('a2010275' + '31'), `no field-20 tag in ${hex}`);
    assert.ok(hex.includes('820104'), `no field-16 tag in ${hex}`);
    const fs = fields(bytes);
    assert.deepEqual(fs.map((f) => f.num).sort((a, b) => a - b), [16, 20]);
    assert.equal(text(fs.find((f) => f.num === 16)?.bytes), 'ns/p');
  });

  it('numbers the remaining Workload fields as Istio does', () => {
    const w = create(WorkloadSchema, {
      name: 'n', namespace: 'ns', addresses: [new Uint8Array([198, 18, 0, 5])], network: 'net',
      tunnelProtocol: TunnelProtocol.HBONE, trustDomain: 'td', serviceAccount: 'sa', node: 'node1',
      canonicalName: 'cn', canonicalRevision: 'cr', workloadName: 'wn', nativeTunnel: true,
      clusterId: 'c', hostname: 'h', services: { 'ns/svc.ns.svc.cluster.local': create(PortListSchema, { ports: [{ servicePort: 80, targetPort: 8080 }] }) },
    });
    const byNum = new Map(fields(toBinary(WorkloadSchema, w)).map((f) => [f.num, f]));
    assert.equal(text(byNum.get(1)?.bytes), 'n');
    assert.equal(text(byNum.get(2)?.bytes), 'ns');
    assert.deepEqual([...byNum.get(3)!.bytes!], [198, 18, 0, 5]);
    assert.equal(text(byNum.get(4)?.bytes), 'net');
    assert.equal(byNum.get(5)?.varint, 1n);
    assert.equal(text(byNum.get(6)?.bytes), 'td');
    assert.equal(text(byNum.get(7)?.bytes), 'sa');
    assert.equal(text(byNum.get(9)?.bytes), 'node1');
    assert.equal(text(byNum.get(10)?.bytes), 'cn');
    assert.equal(text(byNum.get(11)?.bytes), 'cr');
    assert.equal(text(byNum.get(13)?.bytes), 'wn');
    assert.equal(byNum.get(14)?.varint, 1n);
    assert.equal(text(byNum.get(18)?.bytes), 'c');
    assert.equal(text(byNum.get(21)?.bytes), 'h');
    // map entry: key = 1, value (PortList) = 2, whose ports = 1, service_port = 1, target_port = 2
    const entry = fields(byNum.get(22)!.bytes!);
    assert.equal(text(entry[0]!.bytes), 'ns/svc.ns.svc.cluster.local');
    const port = fields(fields(entry[1]!.bytes!)[0]!.bytes!);
    assert.deepEqual(port.map((f) => [f.num, f.varint]), [[1, 80n], [2, 8080n]]);
  });

  it('wraps Workload as Address field 1 and Service as field 2, with Service.ports at 5', () => {
    const a = toBinary(AddressSchema, create(AddressSchema, { type: { case: 'workload', value: { uid: 'x' } } }));
    assert.equal(fields(a)[0]!.num, 1);
    const s = toBinary(AddressSchema, create(AddressSchema, { type: { case: 'service', value: create(ServiceSchema, { hostname: 'h', ports: [{ servicePort: 1 }] }) } }));
    const svc = fields(fields(s)[0]!.bytes!);
    assert.equal(fields(s)[0]!.num, 2);
    assert.deepEqual(svc.map((f) => f.num), [3, 5]);
  });

  it('packs an Address into an Any with the type URL agents subscribe to', () => {
    const any = packAddress(create(AddressSchema, { type: { case: 'workload', value: { uid: 'u' } } }));
    assert.equal(any.typeUrl, ADDRESS_TYPE_URL);
    assert.equal(unpack(AddressSchema, any).type.case, 'workload');
    assert.throws(() => unpack(AuthorizationSchema, any), /expected type\.googleapis\.com\/istio\.security\.Authorization/);
  });
});

describe('istio.security wire format', () => {
  it('puts Clause.matches at field 2 (not 1)', () => {
    const bytes = toBinary(ClauseSchema, create(ClauseSchema, { matches: [create(MatchSchema, {})] }));
    assert.deepEqual([...bytes], [0x12, 0x00]);
  });

  it('numbers Authorization and Match fields as Istio does', () => {
    const auth = create(AuthorizationSchema, {
      name: 'p', namespace: 'ns', scope: Scope.WORKLOAD_SELECTOR, action: Action.DENY, dryRun: true,
      rules: [{ clauses: [{ matches: [{
        notPrincipals: [create(StringMatchSchema, { matchType: { case: 'presence', value: {} } })],
        destinationPorts: [8080], notDestinationPorts: [22],
        notSourceIps: [{ address: new Uint8Array([10, 0, 0, 0]), length: 8 }],
      }] }] }],
    });
    const top = fields(toBinary(AuthorizationSchema, auth));
    assert.deepEqual(top.map((f) => [f.num, f.wire]), [[1, 2], [2, 2], [3, 0], [4, 0], [5, 2], [6, 0]]);
    assert.equal(top[2]!.varint, 2n);
    assert.equal(top[3]!.varint, 1n);
    const rule = fields(top[4]!.bytes!);
    assert.equal(rule[0]!.num, 1);
    const clause = fields(rule[0]!.bytes!);
    assert.equal(clause[0]!.num, 2);
    const match = new Map(fields(clause[0]!.bytes!).map((f) => [f.num, f]));
    // not_principals = 4 holding StringMatch{presence = 4 (empty message)}
    assert.deepEqual([...match.get(4)!.bytes!], [0x22, 0x00]);
    assert.deepEqual([...fields(match.get(6)!.bytes!).map((f) => f.num)], [1, 2]);
    assert.deepEqual([...match.get(9)!.bytes!], [0x90, 0x3f]); // packed 8080
    assert.deepEqual([...match.get(10)!.bytes!], [22]);
  });
});

describe('istio.v1.auth and envoy delta ADS wire format', () => {
  it('numbers IstioCertificateRequest fields csr=1, validity_duration=3, metadata=4', () => {
    const req = create(IstioCertificateRequestSchema, {
      csr: 'PEM', validityDuration: 86400n,
      metadata: { ImpersonatedIdentity: "spiffe://cluster.local/ns/a/sa/b" },
    });
    const fs = fields(toBinary(IstioCertificateRequestSchema, req));
    assert.deepEqual(fs.map((f) => f.num), [1, 3, 4]);
    assert.equal(fs[1]!.varint, 86400n);
    assert.ok(text(fs[2]!.bytes).includes('ImpersonatedIdentity'));
  });

  it('numbers DeltaDiscoveryRequest/Response and Resource fields as Envoy does', () => {
    const req = create(DeltaDiscoveryRequestSchema, {
      node: { id: 'n' }, typeUrl: 't', resourceNamesSubscribe: ['*'], resourceNamesUnsubscribe: ['x'],
      initialResourceVersions: { a: '1' }, responseNonce: 'nonce', errorDetail: { code: 3, message: 'bad' },
    });
    assert.deepEqual(fields(toBinary(DeltaDiscoveryRequestSchema, req)).map((f) => f.num), [1, 2, 3, 4, 5, 6, 7]);
    const resp = create(DeltaDiscoveryResponseSchema, {
      systemVersionInfo: 'v', resources: [create(ResourceSchema, { version: '1', name: 'r', aliases: ['al'] })],
      typeUrl: 't', nonce: 'n', removedResources: ['gone'],
    });
    const rf = fields(toBinary(DeltaDiscoveryResponseSchema, resp));
    assert.deepEqual(rf.map((f) => f.num), [1, 2, 4, 5, 6]);
    assert.deepEqual(fields(rf[1]!.bytes!).map((f) => f.num), [1, 3, 4]);
    const round = fromBinary(DeltaDiscoveryResponseSchema, toBinary(DeltaDiscoveryResponseSchema, resp));
    assert.deepEqual(round.removedResources, ['gone']);
  });
});
