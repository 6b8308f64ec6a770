// The struct codec lays keys and values out exactly as clang lays out the C structs; checked
// against the BTF clang wrote into build/bpf/selftest.bpf.o (opening an object needs no privilege).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../agent/src/common/errors.js';
import { BpfObject, bpfObjectPath, defineStruct, ipv6Bytes, ipv6String } from '../../agent/src/native/index.js';

const Layout = defineStruct('selftest_layout', { a: 'u8', port_be: 'be16', ip4: 'ipv4', cookie: 'u64', tail: 'u8' });

test('struct layout matches the C layout compiled into the BPF object (BTF)', () => {
  const obj = BpfObject.open(bpfObjectPath('selftest'));
  try {
    const c = obj.btfStruct('selftest_layout');
    assert.equal(Layout.size, c.size);
    assert.deepEqual(
      Layout.fields.map((f) => ({ name: f.name, offset: f.offset, size: f.size })),
      c.members.map((m) => ({ name: m.name, offset: m.offset, size: m.size })),
    );
  } finally {
    obj.close();
  }
});

test('encode puts big-endian fields and IPv4 addresses in network order, the rest in host order, padding zero', () => {
  const b = Layout.encode({ a: 7, port_be: 15001, ip4: '198.18.0.9', cookie: 0x0102030405060708n, tail: 255 });
  assert.equal(b.length, 24);
  assert.equal(b[0], 7);
  assert.equal(b[1], 0, 'padding is zero');
  assert.deepEqual([...b.subarray(2, 4)], [0x3a, 0x99]); // 15001 = 0x3a99, network order
  assert.deepEqual([...b.subarray(4, 8)], [198, 18, 0, 9]);
  assert.equal(b.readBigUInt64LE(8), 0x0102030405060708n);
  assert.equal(b[16], 255);
  assert.ok(b.subarray(17).every((x) => x === 0), 'tail padding is zero');
  assert.deepEqual(Layout.decode(b), { a: 7, port_be: 15001, ip4: '198.18.0.9', cookie: 0x0102030405060708n, tail: 255 });
});

test('arrays, bytes, signed values and explicit padding round-trip', () => {
  const S = defineStruct('s', { n: 'i32', ports: { array: 'u16', length: 3 }, _pad: { pad: 2 }, raw: { bytes: 5 }, v6: 'ipv6', x: 'i64' });
  assert.deepEqual(S.fields.map((f) => f.offset), [0, 4, 10, 12, 20, 40]);
  assert.equal(S.size, 48);
  const v = { n: -5, ports: [1, 2, 65535], raw: Buffer.from('hello'), v6: 'fd00::1:2', x: -9n };
  const d = S.decode(S.encode(v));
  assert.deepEqual(d, v);
  assert.equal('_pad' in d, false, 'padding is not decoded');
});

test('a packed struct has no padding', () => {
  const P = defineStruct('p', { a: 'u8', b: 'u32' }, { packed: true });
  assert.equal(P.size, 5);
  assert.equal(P.fields[1]!.offset, 1);
});

test('out-of-range and mistyped values are refused naming struct and field', () => {
  assert.throws(() => Layout.encode({ a: 256, port_be: 1, ip4: '1.2.3.4', cookie: 0n, tail: 0 }), (e: unknown) => e instanceof InvalidArgumentError && e.parameter === 'selftest_layout.a');
  assert.throws(() => Layout.encode({ a: 1, port_be: 70000, ip4: '1.2.3.4', cookie: 0n, tail: 0 }), (e: unknown) => e instanceof InvalidArgumentError && e.parameter === 'selftest_layout.port_be');
  assert.throws(() => Layout.encode({ a: 1, port_be: 1, ip4: '1.2.3', cookie: 0n, tail: 0 }), (e: unknown) => e instanceof InvalidArgumentError && e.parameter === 'selftest_layout.ip4');
  assert.throws(() => Layout.encode({ a: 1, port_be: 1, ip4: '1.2.3.4', cookie: -1n, tail: 0 }), (e: unknown) => e instanceof InvalidArgumentError && e.parameter === 'selftest_layout.cookie');
  assert.throws(() => Layout.decode(Buffer.alloc(23)), /needs 24 bytes/);
  assert.throws(() => defineStruct('bad', { f: 'u24' as never }), (e: unknown) => e instanceof InvalidArgumentError && e.parameter === 'bad.f');
});

test('IPv6 text and bytes convert both ways (RFC 5952 output)', () => {
  for (const [text, canonical] of [['::', '::'], ['::1', '::1'], ['fd00:0:0:0:0:0:0:1', 'fd00::1'], ['2001:db8::ffff:1.2.3.4', '2001:db8::ffff:102:304'], ['1:0:0:2:0:0:0:3', '1:0:0:2::3']] as const) {
    const b = ipv6Bytes(text);
    assert.equal(b.length, 16);
    assert.equal(ipv6String(b), canonical, text);
  }
  assert.deepEqual([...ipv6Bytes('::1')], [...Array(15).fill(0), 1]);
});
