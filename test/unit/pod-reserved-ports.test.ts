// The pod's ip_local_reserved_ports list is edited, not replaced: the proxy's three ports are
// added at enrolment and taken out at release, whatever else the pod reserved stays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatPortList, parsePortList, PROXY_PORTS } from '../../agent/src/agent/pod-routing.js';

test('reserved-port lists round-trip through the kernel format', () => {
  assert.deepEqual([...parsePortList('')], []);
  assert.deepEqual([...parsePortList('8080,100-102')].sort((a, b) => a - b), [100, 101, 102, 8080]);
  assert.equal(formatPortList(parsePortList('15008,15001,15006,15007')), '15001,15006-15008');
  assert.equal(formatPortList([]), '');
  const withProxy = parsePortList('100-200');
  for (const p of PROXY_PORTS) withProxy.add(p);
  assert.equal(formatPortList(withProxy), '100-200,15001,15006,15008');
  const inRange = parsePortList('15000-15010');
  for (const p of PROXY_PORTS) inRange.delete(p);
  assert.equal(formatPortList(inRange), '15000,15002-15005,15007,15009-15010');
});

test('a malformed list is refused with the bad part named', () => {
  assert.throws(() => parsePortList('80,abc'), /'abc' is not a port or port range/);
  assert.throws(() => parsePortList('70000'), /'70000'/);
  assert.throws(() => parsePortList('20-10'), /'20-10'/);
});
