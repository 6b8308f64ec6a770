// Child of agent-cgroup-namespace.test.ts: runs inside its own cgroup namespace (unshare -C)
// and reports what pod discovery finds there. argv: cgroupMount cgroupRoot podPid
import { readFileSync } from 'node:fs';
import { PodDiscovery } from '../../agent/src/agent/index.js';

const [mount, root, podPid] = process.argv.slice(2) as [string, string, string];
const d = new PodDiscovery({ proc: '/proc', cgroupMount: mount, cgroupRoot: root });
const r = d.scan();
const unified = (f: string) => readFileSync(f, 'utf8').split('\n').find((l) => l.startsWith('0::'));
process.stdout.write(JSON.stringify({
  seen: unified(`/proc/${podPid}/cgroup`),
  self: unified('/proc/self/cgroup'),
  view: d.namespaceView(), // as the scan found it
  pods: Object.fromEntries([...r.pods].map(([uid, p]) => [uid, { pid: p.pid, cgroupPath: p.cgroupPath }])),
}));
