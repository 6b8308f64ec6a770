// `weft agent` flags: bad input is a usage error naming the flag (exit 2) or a setup error
// naming the file, before anything starts. No privileges needed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { agentOptionsFromFlags, parseDuration, parseHostPort } from '../../agent/src/agent/index.js';
import { cli } from './mesh-helpers.js';

const base = { node: 'node1', controller: '198.19.0.1:15012', 'token-file': '/nonexistent/t', 'ca-root': '/nonexistent/ca.pem' };

describe('weft agent options', () => {
  it('defaults follow ztunnel: admin on localhost 15000, metrics 15020 and readiness 15021 on all addresses', () => {
    const o = agentOptionsFromFlags(base);
    assert.deepEqual(o.admin, { host: '127.0.0.1', port: 15000 });
    assert.deepEqual(o.metrics, { host: '0.0.0.0', port: 15020 });
    assert.deepEqual(o.readiness, { host: '0.0.0.0', port: 15021 });
    assert.equal(o.agentId, 'weft-node1');
    assert.equal(o.bpffs, '/sys/fs/bpf');
    assert.equal(o.drainDeadlineMs, 5000);
    assert.equal(o.trustDomain, 'cluster.local');
    const lab = agentOptionsFromFlags({ ...base, 'bpffs-dir': '/sys/fs/bpf/weft-lab-node1', 'drain-deadline': '1500ms', 'cgroup-root': '/sys/fs/cgroup/unified/weft-lab-node1.slice' });
    assert.equal(lab.agentId, 'weft-lab-node1');
    assert.equal(lab.drainDeadlineMs, 1500);
    assert.equal(lab.cgroupRoot, '/sys/fs/cgroup/unified/weft-lab-node1.slice');
  });

  it('parses durations and addresses, refusing what is not one', () => {
    assert.equal(parseDuration('d', '2m'), 120_000);
    assert.equal(parseDuration('d', '3'), 3000);
    assert.throws(() => parseDuration('d', 'soon'), /--d must be a duration/);
    assert.deepEqual(parseHostPort('a', '[::1]:15000', '127.0.0.1'), { host: '::1', port: 15000 });
    assert.throws(() => parseHostPort('metrics', 'localhost:15020', '0.0.0.0'), /--metrics: 'localhost' is not an IP address/);
    assert.throws(() => parseHostPort('metrics', ':99999', '0.0.0.0'), /out of range/);
  });

  it('refuses missing and malformed flags with exit 2 and the flag named', async () => {
    for (const [argv, re] of [
      [['agent'], /--node is required/],
      [['agent', '--node', 'node1'], /--controller is required/],
      [['agent', '--node', 'Node_1', '--controller', 'x:1', '--token-file', 't', '--ca-root', 'c'], /--node 'Node_1' is not a valid node name/],
      [['agent', '--node', 'n', '--controller', 'nohost', '--token-file', 't', '--ca-root', 'c'], /--controller must be HOST:PORT/],
      [['agent', '--node', 'n', '--controller', 'h:1', '--token-file', 't', '--ca-root', 'c', '--bpffs-dir', '/sys/fs/bpf/other'], /must start with 'weft'/],
      [['agent', '--node', 'n', '--controller', 'h:1', '--token-file', 't', '--ca-root', 'c', '--cgroup-root', 'relative'], /--cgroup-root must be an absolute path/],
    ] as const) {
      const r = await cli([...argv]);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err}`);
      assert.match(r.err, re);
    }
  });

  it('a missing CA root file is a setup error that names the file and what to pass', async () => {
    const r = await cli(['agent', ...Object.entries(base).flatMap(([k, v]) => [`--${k}`, v]), '--no-redirect']);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /WEFT_E_AGENT_SETUP/);
    assert.match(r.err, /\/nonexistent\/ca\.pem/);
  });
});
