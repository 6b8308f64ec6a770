// Child process for controller-lab.test.ts: one node's control-plane side (NodeSync + admin
// on 127.0.0.1:15000), run inside that node's network namespace like a real agent.
// argv: node address rootCertFile token
import { readFileSync } from 'node:fs';
import { NodeSync } from '../../agent/src/state/node-sync.js';
import { configDump } from '../../agent/src/state/dump.js';
import { startAdminServer } from '../../agent/src/telemetry/admin-server.js';

const [node, address, rootFile, token] = process.argv.slice(2) as [string, string, string, string];
const sync = new NodeSync({ node, address, rootCertPem: readFileSync(rootFile, 'utf8'), token: () => token, xdsBackoff: { initialMs: 100, maxMs: 1000 } });
sync.start();
await sync.waitSynced(15_000);
const admin = await startAdminServer({ configDump: () => configDump(sync.state, sync.certs.list(), { node, connected: sync.xds.connected, synced: sync.xds.synced }) });
process.stdout.write('ready\n');
const stop = async () => {
  sync.stop();
  await admin.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
