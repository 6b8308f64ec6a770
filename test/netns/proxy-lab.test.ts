// The node proxy between real network namespaces, through the real agents (redirection,
// listeners in pod netns, transparent dials): 1 GiB each way cross-node with equal SHA-256 and
// a half-close, and 1,000 concurrent connections cross-node carried by pooled HBONE.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { privilegedSkip } from '../helpers/privilege.js';
import { Lab, type PodStatus } from '../../agent/src/lab/index.js';
import { nodeHttp, waitForEnrolled } from './mesh-helpers.js';

const skip = privilegedSkip();
const CLIENT = fileURLToPath(new URL('./proxy-lab-client.js', import.meta.url));
const BULK = Number(process.env.WEFT_BULK_BYTES ?? 1024 * 1024 * 1024);

describe('node proxy in the lab', { skip }, () => {
  const name = `p${randomBytes(3).toString('hex')}`;
  let lab: Lab;
  let server: PodStatus;

  before(async () => {
    lab = await Lab.up({ name, nodes: 2, podsPerNode: 2, mesh: true });
    server = lab.pod('demo/server-1');
    assert.equal(lab.pod('demo/client-1').node, 'node1');
    assert.equal(server.node, 'node2');
    await lab.label('namespace', 'demo', 'weft.io/mesh=enabled');
    await waitForEnrolled(lab, 'demo', 30_000);
  });

  after(async () => {
    await lab?.down();
  });

  const client = async (args: string[], timeoutMs: number) => {
    const r = await lab.exec('demo/client-1', [process.execPath, CLIENT, ...args], { timeoutMs });
    const line = String(r.stdout ?? '').trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`client printed no JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`);
    }
  };

  it(`moves ${BULK} bytes each way cross-node with equal SHA-256, half-close honoured`, { timeout: 900_000 }, async () => {
    const r = await client(['bulk', server.ip, '9000', String(BULK)], 880_000);
    assert.equal(r.error, undefined, String(r.error));
    assert.equal(r.received, BULK, 'the whole echo came back and then the FIN');
    assert.equal(r.receivedSha, r.sentSha);
    process.stderr.write(`lab bulk: ${((2 * BULK) / Number(r.seconds) / 1e6).toFixed(0)} MB/s both ways combined\n`);
    const m = await nodeHttp(lab, 'node2', 15020, '/metrics');
    assert.match(m.body, /istio_tcp_received_bytes_total\{reporter="destination",[^}]*source_principal="spiffe:\/\/cluster.local\/ns\/demo\/sa\/client"[^}]*\} \d{10}/, 'a GiB counted on the destination');
  });

  it('carries 1,000 concurrent connections cross-node', { timeout: 300_000 }, async () => {
    const r = await client(['concurrent', server.ip, '9000', '1000'], 280_000);
    assert.deepEqual(r.errors, {});
    assert.equal(r.ok, 1000);
    assert.equal(r.openAtOnce, 1000, 'all were open at the same time');
  });
});
