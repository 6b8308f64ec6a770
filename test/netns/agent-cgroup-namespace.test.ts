// Pod discovery from a process in its own cgroup namespace, for real: the scanner is moved
// into a cgroup and `unshare -C`d (as a container runtime does for an unprivileged pod), a
// "pod" process with its own netns sits in a cgroupfs-style pod<uid> cgroup elsewhere; the
// scanner reads `0::/../kubepods/pod<uid>/…` and must still name the pod's absolute cgroup.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, type ChildProcess } from 'node:child_process';
import { privilegedSkip } from '../helpers/privilege.js';
import { cgroup2Mount } from '../../agent/src/native/index.js';
import { run } from '../../agent/src/common/exec.js';

const skip = privilegedSkip();
const CHILD = fileURLToPath(new URL('./agent-cgns-child.js', import.meta.url));

describe('pod discovery inside a cgroup namespace (unshare -C)', { skip }, () => {
  const mount = cgroup2Mount()!;
  const top = join(mount ?? '/nonexistent', `weft-cgns-${randomBytes(3).toString('hex')}`);
  const uid = randomUUID();
  const dirs = [top, join(top, 'agent'), join(top, 'kubepods'), join(top, 'kubepods', `pod${uid}`), join(top, 'kubepods', `pod${uid}`, 'ctr')];
  let pod: ChildProcess | undefined;

  before(async () => {
    for (const d of dirs) mkdirSync(d);
    // The pod: its own netns (not the host network), in the pod's container cgroup.
    pod = spawn('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec unshare -n sleep 120', 'weft-cgns-pod', dirs[4]!], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300));
  });

  after(async () => {
    if (pod && pod.exitCode === null) {
      pod.kill('SIGKILL');
      await new Promise((r) => pod!.once('exit', r));
    }
    for (const d of [...dirs].reverse()) if (existsSync(d)) rmdirSync(d);
  });

  it('reads relative paths there and still finds the pod\'s absolute cgroup and its process', async () => {
    assert.ok(mount, 'a cgroup v2 mount');
    const r = await run('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec unshare -C "$2" "$3" "$4" "$5" "$6"', 'weft-cgns-agent', dirs[1]!, process.execPath, CHILD, mount, top, String(pod!.pid)], { allowFailure: true, timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { seen: string; self: string; view: { nested: boolean; root?: string }; pods: Record<string, { pid: number; cgroupPath: string }> };
    const rel = top.slice(mount.length);
    assert.equal(out.self, '0::/', 'the scanner is at its namespace root');
    assert.equal(out.seen, `0::/../kubepods/pod${uid}/ctr`, 'the pod is seen relative to the namespace');
    assert.deepEqual(out.view, { nested: true, root: `${rel}/agent` });
    assert.deepEqual(out.pods[uid], { pid: pod!.pid, cgroupPath: join(top, 'kubepods', `pod${uid}`) });
  });
});
