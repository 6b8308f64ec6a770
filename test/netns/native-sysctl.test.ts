// net.* sysctls of another netns, read and written natively (native/sysctl.cc), and the pod's
// reserved-port list the agent edits through them (pod-routing.ts). A list longer than a page
// must survive both ways: the kernel answers a read in one go and parses a page per write.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { privilegedSkip } from '../helpers/privilege.js';
import { removeNetns, sh, sweepStale, testName } from './native-fixtures.js';
import { sysctlInNetns } from '../../agent/src/native/index.js';
import { formatPortList, parsePortList, PROXY_PORTS, reserveProxyPorts } from '../../agent/src/agent/pod-routing.js';

const skip = privilegedSkip();
const NAME = 'net.ipv4.ip_local_reserved_ports';

describe('sysctlInNetns and the pod reserved-port list', { skip }, () => {
  const ns = testName('weft-nt');
  const path = `/run/netns/${ns}`;
  before(() => {
    sweepStale();
    sh('ip', ['netns', 'add', ns]);
  });
  after(() => removeNetns(ns));

  test('reads and writes inside the netns only, and a list longer than a page round-trips', async () => {
    const host = await sysctlInNetns({ name: NAME });
    // 1,500 single ports: ~9 KB of text, more than two pages.
    const many = Array.from({ length: 1500 }, (_, i) => 20000 + i * 2);
    await sysctlInNetns({ netns: path, name: NAME, value: formatPortList(many) });
    const back = await sysctlInNetns({ netns: path, name: NAME });
    assert.ok(back.length > 8192, `the list is ${back.length} bytes`);
    assert.deepEqual([...parsePortList(back)].sort((a, b) => a - b), many);
    assert.equal(await sysctlInNetns({ name: NAME }), host, 'the host netns is untouched');
  });

  test('reserving the proxy ports keeps every other port of a long list, releasing takes only them out', async () => {
    const many = Array.from({ length: 1500 }, (_, i) => 20000 + i * 2);
    await sysctlInNetns({ netns: path, name: NAME, value: formatPortList([...many, 0]) });
    await reserveProxyPorts(path, true);
    const reserved = parsePortList(await sysctlInNetns({ netns: path, name: NAME }));
    for (const p of [...many, 0, ...PROXY_PORTS]) assert.ok(reserved.has(p), `port ${p} reserved`);
    assert.equal(reserved.size, many.length + 1 + PROXY_PORTS.length);
    await reserveProxyPorts(path, false);
    assert.deepEqual([...parsePortList(await sysctlInNetns({ netns: path, name: NAME }))].sort((a, b) => a - b), [0, ...many]);
    await sysctlInNetns({ netns: path, name: NAME, value: '\n' });
    assert.equal(await sysctlInNetns({ netns: path, name: NAME }), '');
  });

  test('a sysctl outside net.* or a relative directory is refused before anything is opened', async () => {
    await assert.rejects(sysctlInNetns({ netns: path, name: 'kernel.hostname' }), /options\.name/);
    await assert.rejects(sysctlInNetns({ netns: path, name: NAME, dir: 'proc/sys' }), /options\.dir/);
  });
});
