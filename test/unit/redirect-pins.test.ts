// Pin layout naming and the per-pod mutex that makes enrol/release safe to call concurrently.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../agent/src/common/errors.js';
import { PinLayout, checkUid } from '../../agent/src/redirect/pins.js';
import { KeyedMutex } from '../../agent/src/redirect/keyed-mutex.js';

describe('redirect pin layout', () => {
  it('puts each agent in its own directory, named so the lab sweep finds it', () => {
    const p = new PinLayout('/sys/fs/bpf', 'weft-lab1-node2');
    assert.equal(p.mapsDir, '/sys/fs/bpf/weft-lab1-node2/maps');
    assert.equal(p.link('0b6c-uid', 'sockops'), '/sys/fs/bpf/weft-lab1-node2/pods/0b6c-uid/sockops');
  });

  it('refuses agent ids and uids that could escape or collide', () => {
    for (const bad of ['', 'agent', '../weft', 'weft/x', `weft${'x'.repeat(63)}`]) {
      assert.throws(() => new PinLayout('/sys/fs/bpf', bad), InvalidArgumentError, bad);
    }
    for (const bad of ['', '..', 'a/b', '.hidden']) assert.throws(() => checkUid(bad), /pod\.uid/, bad);
  });
});

describe('KeyedMutex', () => {
  it('runs work for one key in order and work for different keys in parallel', async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    const step = (tag: string, ms: number) => async () => {
      log.push(`${tag}+`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`${tag}-`);
    };
    await Promise.all([m.run('a', step('a1', 30)), m.run('a', step('a2', 1)), m.run('b', step('b1', 5))]);
    assert.ok(log.indexOf('a1-') < log.indexOf('a2+'), `same key overlapped: ${log}`);
    assert.ok(log.indexOf('b1+') < log.indexOf('a1-'), `different keys were serialised: ${log}`);
  });

  it('keeps going after a failure', async () => {
    const m = new KeyedMutex();
    await assert.rejects(m.run('a', async () => { throw new Error('boom'); }), /boom/);
    assert.equal(await m.run('a', async () => 7), 7);
  });
});
