// Crashes: `weft lab up` SIGKILLed half-way, a lab whose apps were killed, a lab left up by a
// command that exited. Sweep (or the next up) removes what is broken and leaves nothing behind;
// a healthy lab is never swept.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { privilegedSkip } from '../helpers/privilege.js';
import { destroyLab, Lab, labHealth, labLeftovers, sweep } from '../../agent/src/lab/index.js';

const skip = privilegedSkip();
const made: string[] = [];
const uniqueName = (p: string) => {
  const n = `${p}${randomBytes(3).toString('hex')}`;
  made.push(n);
  return n;
};
const weft = (...args: string[]) => spawnSync(process.execPath, ['agent/bin/weft.js', ...args], { encoding: 'utf8' });

function assertNothingLeft(name: string): void {
  assert.deepEqual(labLeftovers(name), { netns: [], cgroups: [], pins: [], files: [], processes: [] }, `lab ${name} left something behind`);
}

/** Starts `weft lab up` and SIGKILLs it as soon as a progress line matches `when`. */
function killUpWhen(name: string, when: RegExp, extraDelayMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['agent/bin/weft.js', 'lab', 'up', '--name', name, '--nodes', '2', '--pods-per-node', '3'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    let armed = false;
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (!armed && when.test(err)) {
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), extraDelayMs);
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`weft lab up was not killed (exit ${code}); stderr:\n${err}`));
      else resolve(err);
    });
  });
}

describe('lab crash recovery', { skip }, () => {
  // Whatever happens in a test, its labs go.
  after(async () => {
    for (const n of made) await destroyLab(n);
  });
  it('sweeps a `weft lab up` that was SIGKILLed while starting pods', async () => {
    const name = uniqueName('c');
    await killUpWhen(name, /starting 6 pod/, 150);
    const left = labLeftovers(name);
    assert.ok(left.netns.length > 0 && left.files.length > 0, `the killed build left things behind: ${JSON.stringify(left)}`);
    assert.equal(labHealth(name).state, 'broken');
    const r = weft('lab', 'sweep', '--name', name);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`swept: ${name}`));
    assertNothingLeft(name);
  });

  it('lets the next `up` of the same name sweep a build killed while making the fabric', async () => {
    const name = uniqueName('c');
    await killUpWhen(name, /creating the fabric/, 0);
    const lines: string[] = [];
    const lab = await Lab.up({ name, nodes: 2, podsPerNode: 1, onProgress: (m) => lines.push(m) });
    try {
      assert.equal(lab.health().state, 'healthy');
      assert.equal(lab.status().pods.length, 2);
      const [a, b] = lab.status().pods;
      assert.equal((await lab.tcpEcho(`${a!.namespace}/${a!.name}`, b!.ip, 9000, 'rebuilt')).reply, 'rebuilt');
    } finally {
      await lab.down();
    }
    assertNothingLeft(name);
  });

  it('sweeps a lab whose apps were killed, and never a healthy one', async () => {
    const sick = await Lab.up({ name: uniqueName('k'), nodes: 2, podsPerNode: 1 });
    const well = await Lab.up({ name: uniqueName('w'), nodes: 1, podsPerNode: 1 });
    try {
      for (const p of sick.status().pods) process.kill(p.pid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(sick.health().state, 'broken');
      const r1 = await sweep({ name: sick.name });
      assert.deepEqual(r1, { swept: [sick.name], kept: [] });
      assertNothingLeft(sick.name);
      const r2 = await sweep({ name: well.name });
      assert.deepEqual(r2, { swept: [], kept: [well.name] });
      assert.equal(well.health().state, 'healthy');
    } finally {
      await well.down();
      if (labHealth(sick.name).state !== 'absent') await sick.down();
    }
    assertNothingLeft(well.name);
  });

  it('keeps a lab made by `weft lab up` after the command exits, until `weft lab down`', () => {
    const name = uniqueName('x');
    const up = weft('lab', 'up', '--name', name, '--nodes', '1', '--pods-per-node', '2', '-o', 'json');
    assert.equal(up.status, 0, up.stderr);
    assert.match(up.stderr, /starting 2 pod/);
    const st = JSON.parse(up.stdout);
    assert.equal(st.pods.length, 2);
    assert.equal(labHealth(name).state, 'healthy', 'the apps outlive the command');
    const status = weft('lab', 'status', '--name', name, '-o', 'json');
    assert.deepEqual(JSON.parse(status.stdout).pods.map((p: { pid: number }) => p.pid), st.pods.map((p: { pid: number }) => p.pid));
    const down = weft('lab', 'down', '--name', name);
    assert.equal(down.status, 0, down.stderr);
    assertNothingLeft(name);
    const again = weft('lab', 'status', '--name', name);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /WEFT_E_LAB_NOT_FOUND/);
  });
});
