// A minimal agent for the restart test: opens the redirector, reconciles to the pods given in
// argv[2] (JSON {agentId, pods}), prints "ready" and waits to be killed (kill -9 in the test).
import { Redirector, type PodSpec } from '../../agent/src/redirect/index.js';

const { agentId, pods } = JSON.parse(process.argv[2] ?? '{}') as { agentId: string; pods: PodSpec[] };
const r = await Redirector.open({ agentId });
const res = await r.reconcile(pods);
if (res.failed.length) {
  process.stderr.write(JSON.stringify(res.failed.map((f) => ({ uid: f.uid, code: f.error.code, message: f.error.message }))));
  process.exit(1);
}
process.stdout.write('ready\n');
setInterval(() => undefined, 1 << 30);
