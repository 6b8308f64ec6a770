// The lab's lock (one changer at a time, dead holders detected) and address-slot claims.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withLabLock } from '../../agent/src/lab/lock.js';
import { claimSlot, releaseSlots, slotsOf } from '../../agent/src/lab/slots.js';
import { processStartTime } from '../../agent/src/lab/process.js';
import { LabBusyError } from '../../agent/src/lab/index.js';

describe('lab lock and slots', () => {
  let root: string;
  const saved = process.env.WEFT_LAB_ROOT;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'weft-lab-lock-'));
    process.env.WEFT_LAB_ROOT = root;
  });
  after(() => {
    if (saved === undefined) delete process.env.WEFT_LAB_ROOT;
    else process.env.WEFT_LAB_ROOT = saved;
    rmSync(root, { recursive: true, force: true });
  });

  it('serialises operations on one lab inside a process and releases the lock', async () => {
    const order: string[] = [];
    await Promise.all([
      withLabLock('one', async () => {
        order.push('a+');
        await new Promise((r) => setTimeout(r, 30));
        order.push('a-');
      }),
      withLabLock('one', async () => {
        order.push('b+');
        order.push('b-');
      }),
    ]);
    assert.deepEqual(order, ['a+', 'a-', 'b+', 'b-']);
    assert.equal(existsSync(join(root, 'one.lock')), false);
    await assert.rejects(withLabLock('one', async () => {
      throw new Error('boom');
    }), /boom/);
    assert.equal(existsSync(join(root, 'one.lock')), false, 'released after a failure too');
  });

  it('breaks the lock of a dead holder and waits for a live one', async () => {
    writeFileSync(join(root, 'two.lock'), JSON.stringify({ pid: 2 ** 22 + 7, start: '1' }));
    assert.equal(await withLabLock('two', async () => 'ran'), 'ran');
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 50));
      writeFileSync(join(root, 'two.lock'), JSON.stringify({ pid: sleeper.pid, start: processStartTime(sleeper.pid!) }));
      await assert.rejects(withLabLock('two', async () => 'ran', 300), (e: unknown) => e instanceof LabBusyError && e.code === 'WEFT_E_LAB_BUSY' && e.message.includes(String(sleeper.pid)));
    } finally {
      sleeper.kill('SIGKILL');
    }
    await new Promise((r) => sleeper.once('exit', r));
    assert.equal(await withLabLock('two', async () => 'after'), 'after');
  });

  it('gives labs distinct slots and takes over the slot of a lab that is gone', () => {
    mkdirSync(join(root, 'la'));
    mkdirSync(join(root, 'lb'));
    const a = claimSlot('la');
    const b = claimSlot('lb');
    assert.notEqual(a, b);
    assert.equal(claimSlot('la'), a, 'claiming again returns the same slot');
    rmSync(join(root, 'la'), { recursive: true });
    const c = claimSlot('lc');
    assert.equal(c, a, 'the slot of a lab without state is free again');
    assert.deepEqual(slotsOf('la'), []);
    releaseSlots('lb');
    assert.deepEqual(slotsOf('lb'), []);
  });
});
