// `weft lab` argument handling, without touching the machine: help texts, usage errors (exit 2)
// and clear errors for bad names and missing labs (exit 1).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../agent/src/cli/main.js';

async function weft(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe('weft lab (arguments)', () => {
  let root: string;
  const saved = process.env.WEFT_LAB_ROOT;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'weft-lab-root-'));
    process.env.WEFT_LAB_ROOT = root;
  });
  after(() => {
    if (saved === undefined) delete process.env.WEFT_LAB_ROOT;
    else process.env.WEFT_LAB_ROOT = saved;
    rmSync(root, { recursive: true, force: true });
  });

  it('lists its subcommands and explains each', async () => {
    const r = await weft('lab', '--help');
    assert.equal(r.code, 0);
    for (const c of ['up', 'status', 'exec', 'apply', 'delete', 'label', 'down', 'sweep', 'demo']) assert.match(r.out, new RegExp(`^  ${c} `, 'm'));
    for (const c of ['up', 'status', 'exec', 'apply', 'delete', 'label', 'down', 'sweep', 'demo']) {
      const h = await weft('lab', c, '--help');
      assert.equal(h.code, 0);
      assert.match(h.out, new RegExp(`weft lab ${c}`));
      assert.match(h.out, /--name/);
    }
  });

  it('answers bad usage with exit 2', async () => {
    const cases: string[][] = [
      ['lab', 'up', '--nodes', 'two'],
      ['lab', 'up', '--bogus'],
      ['lab', 'exec', 'demo/client-1'],
      ['lab', 'label', 'namespace', 'demo'],
      ['lab', 'label', 'service', 'demo/x', 'a=b'],
      ['lab', 'apply'],
      ['lab', 'status', '-o', 'yaml'],
      ['lab', 'nope'],
    ];
    for (const argv of cases) {
      const r = await weft(...argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err}`);
    }
  });

  it('refuses bad lab names and says when a lab is not up', async () => {
    const bad = await weft('lab', 'status', '--name', 'Bad-Name');
    assert.equal(bad.code, 1);
    assert.match(bad.err, /lab name: 'Bad-Name' is not valid.*WEFT_E_INVALID_ARGUMENT/);
    const nodes = await weft('lab', 'up', '--name', 'x', '--nodes', '99');
    assert.equal(nodes.code, 1);
    assert.match(nodes.err, /nodes: must be 1-15/);
    const missing = await weft('lab', 'status', '--name', 'nolab');
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no lab named 'nolab' is up.*WEFT_E_LAB_NOT_FOUND\]\nhint: start it with `weft lab up --name nolab`/s);
  });
});
