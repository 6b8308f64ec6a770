// Runs as one agent process for bench/controller-xds.ts: a delta ADS client feeding
// WorkloadState. argv[2]: JSON {address, rootCertPem, token, node, watchUid}. Prints JSON lines:
// {ready} once loaded, then (after a "go" line on stdin, so all agents connect at once and
// process start-up is not measured) {synced: wallMs, rssBytes, heapBytes}, then
// {changed: wallMs} whenever watchUid's node changes.
import { DeltaAdsClient } from '../agent/src/xds/client.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../agent/src/xds/types.js';
import { WorkloadState } from '../agent/src/state/workload-state.js';

const o = JSON.parse(process.argv[2] ?? '{}') as { address: string; rootCertPem: string; token: string; node: string; watchUid: string };
const wall = () => performance.timeOrigin + performance.now();
const state = new WorkloadState();
const first = () => state.workload(o.watchUid)?.node;
let initialNode: string | undefined;
const client = new DeltaAdsClient({
  address: o.address, rootCertPem: o.rootCertPem, token: () => o.token,
  node: { id: o.node }, typeUrls: [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL],
  apply: (u) => {
    state.apply(u);
    if (initialNode !== undefined && first() !== initialNode) {
      process.stdout.write(JSON.stringify({ changed: wall() }) + '\n');
      initialNode = first();
    }
  },
});
process.stdout.write(JSON.stringify({ ready: wall() }) + '\n');
await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
client.start();
await client.waitSynced(300_000);
initialNode = first();
global.gc?.();
const mem = process.memoryUsage();
process.stdout.write(JSON.stringify({ synced: wall(), workloads: state.workloads().length, rssBytes: mem.rss, heapBytes: mem.heapUsed }) + '\n');
process.on('SIGTERM', () => { client.stop(); process.exit(0); });
