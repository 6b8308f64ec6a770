import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { privilegedSkip } from '../helpers/privilege.js';
import { BPF_NEEDS, loadProber } from '../../agent/src/preflight/node-checks.js';

const bin = fileURLToPath(new URL('../../../agent/bin/weft.js', import.meta.url));

describe('weft check on this node (root)', { skip: privilegedSkip() }, () => {
  test('passes, one entry per check, each program type Weft loads probed by loading', () => {
    const r = spawnSync(process.execPath, [bin, 'check', '-o', 'json'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout) as { ok: boolean; checks: { name: string; ok: boolean; detail: string }[] };
    assert.equal(report.ok, true);
    const names = report.checks.map((c) => c.name);
    for (const n of ['kernel', 'btf', 'cgroup2', 'bpffs', 'cap BPF', 'cap NET_ADMIN', 'cap SYS_ADMIN']) assert.ok(names.includes(n), n);
    for (const need of BPF_NEEDS) {
      assert.ok(names.includes(`prog ${need.progType}`), need.progType);
      assert.ok(names.includes(`helpers ${need.progType}`), need.progType);
    }
    const cg = report.checks.find((c) => c.name === 'cgroup2')!;
    assert.match(cg.detail, /mounted at \//);
  });

  test('the table output has one line per check and says the node is usable', () => {
    const r = spawnSync(process.execPath, [bin, 'check'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ok\s+kernel/m);
    assert.match(r.stdout, /This node can run Weft\./);
  });

  test('the probes are real: a helper a program type may not call is reported missing', async () => {
    const prober = await loadProber();
    if (prober instanceof Error) throw prober;
    // bpf_sk_assign exists for tc programs but not for cgroup/connect4.
    assert.equal(prober.probeHelper('cgroup_sock_addr', 'sk_assign'), false);
    assert.equal(prober.probeHelper('sched_cls', 'sk_assign'), true);
  });
});
