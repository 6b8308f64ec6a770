// `weft lab demo` (up, show, down on --exit or Ctrl-C/SIGTERM) and Ctrl-C during `weft lab up`.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { privilegedSkip } from '../helpers/privilege.js';
import { destroyLab, labHealth, labLeftovers } from '../../agent/src/lab/index.js';

const skip = privilegedSkip();

function assertNothingLeft(name: string): void {
  assert.deepEqual(labLeftovers(name), { netns: [], cgroups: [], pins: [], files: [], processes: [] }, `lab ${name} left something behind`);
}

describe('weft lab demo and up under signals', { skip }, () => {
  const made: string[] = [];
  // Whatever happens in a test, its lab goes.
  after(async () => {
    for (const n of made) await destroyLab(n);
  });
  it('with --exit walks through every step of the demo, each holding, then tears the lab down (npm start -- --exit)', () => {
    const name = `e${randomBytes(3).toString('hex')}`;
    made.push(name);
    const r = spawnSync(process.execPath, ['agent/bin/weft.js', 'lab', 'demo', '--exit', '--name', name], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /NODE\s+IP/);
    assert.match(r.stdout, /demo\s+client-1\s+node1\s+198\.18\./);
    for (const step of ['Plaintext before the mesh', 'Label namespace demo', 'Encrypted, with SPIFFE identities', 'A DENY policy refuses one caller', 'STRICT refuses plaintext', 'Remove the label: pods released']) {
      assert.match(r.stdout, new RegExp(`✓ \\d\\. ${step}`), `step '${step}' held:\n${r.stdout}`);
    }
    assert.match(r.stdout, /All 6 steps held\./);
    assert.match(r.stderr, /is down/);
    assertNothingLeft(name);
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`keeps the lab up until ${signal}, then tears it down and exits 0`, async () => {
      const name = `e${randomBytes(3).toString('hex')}`;
      made.push(name);
      const child = spawn(process.execPath, ['agent/bin/weft.js', 'lab', 'demo', '--name', name], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8');
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: string) => {
          out += d;
          if (out.includes('until Ctrl-C')) resolve();
        });
        child.on('exit', (code) => reject(new Error(`demo exited early (${code}): ${out}`)));
      });
      try {
        assert.equal(labHealth(name).state, 'healthy');
        const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
        child.kill(signal);
        assert.equal(await exited, 0);
        assertNothingLeft(name);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    });
  }

  it('removes a lab whose `weft lab up` gets Ctrl-C while building, and exits 130', async () => {
    const name = `e${randomBytes(3).toString('hex')}`;
    made.push(name);
    const child = spawn(process.execPath, ['agent/bin/weft.js', 'lab', 'up', '--name', name, '--pods-per-node', '6'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (/starting 12 pod/.test(err) && !child.killed) child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    assert.equal(code, 130, err);
    assert.match(err, /interrupted/);
    assertNothingLeft(name);
  });
});
