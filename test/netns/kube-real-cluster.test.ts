// The README's "Install on Kubernetes" journey on a REAL one-node cluster: kubelet, containerd
// (runc), kube-proxy, scheduler, controller manager, API server and etcd (scripts/kube-cluster.mjs),
// the Weft image built from deploy/Dockerfile. Install with `weft manifest | kubectl apply`,
// `weft check --kube`, two busybox pods in a namespace, label it, their traffic is captured and
// mutual TLS (the agent's metrics), `weft workloads` through `kubectl port-forward`, an agent
// restart keeps the pods captured, uninstall with `kubectl delete -f` leaves them talking
// plaintext with no BPF program, pin, reserved port or routing rule left; then the same with
// `helm install` / `helm uninstall`.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { privilegedSkip } from '../helpers/privilege.js';
import { buildWeftImage, clusterBinaries, RealKubeCluster } from '../helpers/kube-real-cluster.js';

const BIN = fileURLToPath(new URL('../../../agent/bin/weft.js', import.meta.url));
const IMAGE = 'localhost/weft:kube-test';
const BUSYBOX = 'localhost/weft-kc-busybox:1';
const VALUES = ['--set', 'image.repository=localhost/weft', '--set-string', 'image.tag=kube-test', '--set', 'image.pullPolicy=Never'];

const skip = privilegedSkip();
const tools = skip ? { skip } : clusterBinaries();

function weft(args: string[], env: NodeJS.ProcessEnv = {}): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

async function until<T>(f: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${ms / 1000} s${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const APPS = `
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: server, namespace: demo}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: demo, labels: {app: server}}
spec:
  serviceAccountName: server
  containers:
  - name: httpd
    image: ${BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -p /tmp/www && echo hello-from-server > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: demo}
spec:
  selector: {app: server}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo}
spec:
  containers:
  - name: c
    image: ${BUSYBOX}
    imagePullPolicy: Never
    command: [sleep, '2147483647']
`;

/** Sum of the agent's istio_tcp_connections_opened_total (reporter destination) from client to server with this security policy. */
function openedClientToServer(metrics: string, policy: 'mutual_tls' | 'none'): number {
  let sum = 0;
  for (const l of metrics.split('\n')) {
    if (!l.startsWith('istio_tcp_connections_opened_total{')) continue;
    if (!l.includes('reporter="destination"') || !l.includes(`connection_security_policy="${policy}"`)) continue;
    if (!l.includes('source_principal="spiffe://cluster.local/ns/demo/sa/default"') || !l.includes('destination_principal="spiffe://cluster.local/ns/demo/sa/server"')) continue;
    sum += Number(l.split(' ').pop());
  }
  return sum;
}

/** The host pid of a pod's app (its cgroup v2 path has pod<uid>), and that cgroup directory. */
function podProcess(uid: string, comm: string): { pid: number; cgroup: string } | undefined {
  const unified = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')).find((m) => m[2] === 'cgroup2')![1]!;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cg = /^0::(\/.*)$/m.exec(readFileSync(`/proc/${e}/cgroup`, 'utf8'))?.[1];
      if (!cg?.includes(`/pod${uid}/`) || readFileSync(`/proc/${e}/comm`, 'utf8').trim() !== comm) continue;
      return { pid: Number(e), cgroup: `${unified}${cg.slice(0, cg.indexOf(`/pod${uid}/`))}/pod${uid}` };
    } catch { /* gone */ }
  }
  return undefined;
}

describe('Weft on a real one-node Kubernetes cluster (kubelet + containerd), the README journey', { skip: 'skip' in tools ? tools.skip : false }, () => {
  const c = new RealKubeCluster('kubeNode' in tools ? tools.kubeNode : '');
  const forwards: ChildProcess[] = [];
  let kubeconfig = '';
  let podUid: Record<string, string> = {};

  const get = (ns: string, what: string, jsonpath: string) => c.must(['-n', ns, 'get', what, '-o', `jsonpath=${jsonpath}`]);
  // busybox 1.35's wget -T crashes (SIGSEGV): bound it with timeout instead
  const fetchFromClient = (url: string) => c.kubectl(['-n', 'demo', 'exec', 'client', '--', 'timeout', '10', 'wget', '-q', '-O', '-', url]);

  /** kubectl port-forward to the agent: local ports for its admin (15000) and metrics (15020). */
  async function forwardAgent(): Promise<{ admin: number; metrics: number; proc: ChildProcess }> {
    const p = spawn(c.kubeNodeBin('kubectl'), ['-n', 'weft-system', 'port-forward', 'daemonset/weft-agent', ':15000', ':15020'], { env: { ...process.env, KUBECONFIG: kubeconfig }, stdio: ['ignore', 'pipe', 'pipe'] });
    forwards.push(p);
    const ports: Record<string, number> = {};
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('kubectl port-forward printed no ports in 30 s')), 30_000);
      createInterface({ input: p.stdout! }).on('line', (l) => {
        const m = /^Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)/.exec(l);
        if (m) ports[m[2]!] = Number(m[1]);
        if (ports['15000'] && ports['15020']) {
          clearTimeout(t);
          resolve();
        }
      });
      p.once('exit', (code) => reject(new Error(`kubectl port-forward exited (${code})`)));
    });
    return { admin: ports['15000']!, metrics: ports['15020']!, proc: p };
  }

  async function agentMetrics(): Promise<string> {
    const f = await forwardAgent();
    try {
      return await (await fetch(`http://127.0.0.1:${f.metrics}/metrics`)).text();
    } finally {
      f.proc.kill();
    }
  }

  before(async () => {
    buildWeftImage(IMAGE);
    const info = await c.start([IMAGE]);
    kubeconfig = info.kubeconfig;
    process.stderr.write(`kube-real-cluster: node ${info.node} Ready after ${info.seconds} s\n`);
  }, { timeout: 25 * 60_000 });

  after(async () => {
    for (const p of forwards) p.kill('SIGKILL');
    await c.stop();
    assert.equal(existsSync('/run/netns/weft-kc'), false, 'the cluster netns is gone');
  }, { timeout: 120_000 });

  it('installs with weft manifest | kubectl apply: agent and controller run as pods and weft check --kube is green', { timeout: 180_000 }, async () => {
    const manifest = weft(['manifest', ...VALUES]);
    assert.equal(manifest.code, 0, manifest.err);
    c.must(['apply', '--server-side', '-f', '-'], manifest.out);
    c.must(['-n', 'weft-system', 'rollout', 'status', 'deployment/weft-controller', '--timeout=120s'], undefined, 130_000);
    c.must(['-n', 'weft-system', 'rollout', 'status', 'daemonset/weft-agent', '--timeout=120s'], undefined, 130_000);
    const check = await until(() => {
      const r = weft(['check', '--kube'], { KUBECONFIG: kubeconfig });
      return r.code === 0 && r;
    }, 'weft check --kube exit 0', 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${weft(['check', '--kube'], { KUBECONFIG: kubeconfig }).out}\n${c.kubectl(['-n', 'weft-system', 'logs', 'daemonset/weft-agent', '--tail=30']).out}`);
    });
    assert.match(check.out, /ok +controller +1\/1 replicas ready/);
    assert.match(check.out, /ok +node kc-node1 checks +\d+ kernel checks pass/);
    assert.match(check.out, /Weft is installed and ready on every node\./);
  });

  it('two pods in a namespace talk plaintext before it is enrolled', { timeout: 120_000 }, async () => {
    c.must(['apply', '-f', '-'], APPS);
    c.must(['-n', 'demo', 'wait', '--for=condition=Ready', 'pod', '--all', '--timeout=90s'], undefined, 100_000);
    podUid = { server: get('demo', 'pod/server', '{.metadata.uid}'), client: get('demo', 'pod/client', '{.metadata.uid}') };
    const r = await until(() => {
      const x = fetchFromClient('http://server.demo.svc.cluster.local/');
      return x.code === 0 && x;
    }, 'client reaches server through its Service', 30_000);
    assert.equal(r.out.trim(), 'hello-from-server');
    assert.equal(openedClientToServer(await agentMetrics(), 'mutual_tls'), 0);
    const server = podProcess(podUid.server!, 'httpd');
    assert.ok(server, 'the server pod\'s httpd process is found by its cgroup');
    const reserved = c.inNode(['nsenter', `--net=/proc/${server.pid}/ns/net`, 'cat', '/proc/sys/net/ipv4/ip_local_reserved_ports']);
    assert.equal(reserved.out.trim(), '', 'no reserved ports before Weft');
  });

  it('labelling the namespace enrols both pods: their traffic is captured and mutual TLS, weft workloads shows them', { timeout: 120_000 }, async () => {
    c.must(['label', 'namespace', 'demo', 'weft.io/mesh=enabled']);
    const f = await forwardAgent();
    try {
      const table = await until(async () => {
        const r = weft(['workloads', '--admin', `http://127.0.0.1:${f.admin}`]);
        const lines = r.out.split('\n');
        return ['client', 'server'].every((n) => lines.some((l) => l.startsWith('demo') && l.includes(` ${n} `) && /HBONE .* enrolled/.test(l))) && r.out;
      }, 'both demo pods enrolled in weft workloads', 60_000);
      assert.match(table, /demo +server +\S+ +kc-node1 +HBONE +server +HEALTHY +enrolled/);
      const before = openedClientToServer(await (await fetch(`http://127.0.0.1:${f.metrics}/metrics`)).text(), 'mutual_tls');
      const podIp = get('demo', 'pod/server', '{.status.podIP}');
      for (const url of ['http://server.demo.svc.cluster.local/', `http://${podIp}:8080/`, 'http://server.demo.svc.cluster.local/']) {
        const r = fetchFromClient(url);
        assert.equal(r.code, 0, `${url}: ${r.err}`);
        assert.equal(r.out.trim(), 'hello-from-server');
      }
      const metrics = await (await fetch(`http://127.0.0.1:${f.metrics}/metrics`)).text();
      assert.equal(openedClientToServer(metrics, 'mutual_tls') - before, 3, 'each request went through the mesh, mutual TLS, with both identities');
      assert.equal(openedClientToServer(metrics, 'none'), 0);
    } finally {
      f.proc.kill();
    }
    const check = weft(['check', '--kube'], { KUBECONFIG: kubeconfig });
    assert.equal(check.code, 0, check.out);
  });

  it('an agent restart (pod deleted, the DaemonSet makes a new one) keeps the pods in the mesh', { timeout: 180_000 }, async () => {
    const old = c.must(['-n', 'weft-system', 'get', 'pods', '-l', 'app.kubernetes.io/component=agent', '-o', 'jsonpath={.items[0].metadata.name}']);
    c.must(['-n', 'weft-system', 'delete', 'pod', old, '--wait=true'], undefined, 90_000);
    c.must(['-n', 'weft-system', 'rollout', 'status', 'daemonset/weft-agent', '--timeout=90s'], undefined, 100_000);
    assert.ok(existsSync('/sys/fs/bpf/weft-kc-node1/pods'), 'the pins stayed for the successor');
    const before = openedClientToServer(await agentMetrics(), 'mutual_tls');
    await until(() => fetchFromClient('http://server.demo.svc.cluster.local/').code === 0, 'client reaches server after the restart', 60_000);
    const after = openedClientToServer(await agentMetrics(), 'mutual_tls');
    assert.ok(after > before, `the new agent carried the connection with mutual TLS (${before} -> ${after})`);
  });

  it('uninstalling (weft manifest --skip-crds | kubectl delete -f) releases the pods: plaintext again, no BPF, pins, reserved ports or rules left', { timeout: 180_000 }, async () => {
    const manifest = weft(['manifest', '--skip-crds', ...VALUES]);
    c.must(['delete', '--wait=true', '-f', '-'], manifest.out, 150_000);
    await until(() => c.kubectl(['get', 'namespace', 'weft-system']).code !== 0, 'namespace weft-system gone', 120_000);
    assert.equal(existsSync('/sys/fs/bpf/weft-kc-node1'), false, 'the agent removed its pins');
    for (const [name, comm] of [['server', 'httpd'], ['client', 'sleep']] as const) {
      const p = podProcess(podUid[name]!, comm);
      assert.ok(p, `${name} still runs`);
      const progs = spawnSync('bpftool', ['-j', 'cgroup', 'show', p.cgroup], { encoding: 'utf8' });
      assert.equal(progs.status, 0, progs.stderr);
      assert.deepEqual(JSON.parse(progs.stdout.trim() || '[]'), [], `no BPF program on ${p.cgroup}`);
      const inPod = (cmd: string[]) => c.inNode(['nsenter', `--net=/proc/${p.pid}/ns/net`, ...cmd]).out.trim();
      assert.equal(inPod(['cat', '/proc/sys/net/ipv4/ip_local_reserved_ports']), '', `${name}: reserved ports as before`);
      assert.equal(inPod(['cat', '/proc/sys/net/ipv4/tcp_fwmark_accept']), '0');
      assert.doesNotMatch(inPod(['ip', 'rule']), /fwmark/);
    }
    const r = fetchFromClient('http://server.demo.svc.cluster.local/');
    assert.equal(r.code, 0, `the pods still talk after the uninstall: ${r.err}`);
    assert.equal(r.out.trim(), 'hello-from-server');
    assert.equal(c.must(['-n', 'demo', 'get', 'pods', '-o', 'jsonpath={.items[*].status.containerStatuses[*].restartCount}']).trim(), '0 0', 'no pod was restarted');
  });

  it('the same with Helm: helm install enrols the labelled namespace again, helm uninstall + kubectl delete namespace release it', { timeout: 240_000 }, async () => {
    const tool = spawnSync(process.execPath, [fileURLToPath(new URL('../../../scripts/tools.mjs', import.meta.url)), 'helm'], { encoding: 'utf8', timeout: 30 * 60_000 });
    assert.equal(tool.status, 0, tool.stderr);
    const helm = (args: string[]) => spawnSync(tool.stdout.trim(), args, { encoding: 'utf8', timeout: 180_000, env: { ...process.env, KUBECONFIG: kubeconfig } });
    const chart = fileURLToPath(new URL('../../../deploy/helm/weft', import.meta.url));
    const inst = helm(['install', 'weft', chart, '--namespace', 'weft-system', '--create-namespace', ...VALUES, '--wait', '--timeout', '150s']);
    assert.equal(inst.status, 0, `${inst.stdout}${inst.stderr}`);
    const server = podProcess(podUid.server!, 'httpd')!;
    await until(() => {
      const r = spawnSync('bpftool', ['-j', 'cgroup', 'show', server.cgroup], { encoding: 'utf8' });
      return JSON.parse(r.stdout.trim() || '[]').length > 0;
    }, 'the labelled namespace\'s pods enrolled by the Helm-installed agent', 60_000);
    const before = openedClientToServer(await agentMetrics(), 'mutual_tls');
    assert.equal(fetchFromClient('http://server.demo.svc.cluster.local/').out.trim(), 'hello-from-server');
    assert.equal(openedClientToServer(await agentMetrics(), 'mutual_tls') - before, 1, 'through the mesh');
    // helm deletes the agent's ServiceAccount and RBAC right after the DaemonSet: the agent's
    // GET at SIGTERM is refused, its watch saw the deletion
    const un = helm(['uninstall', 'weft', '--namespace', 'weft-system', '--wait']);
    assert.equal(un.status, 0, `${un.stdout}${un.stderr}`);
    c.must(['delete', 'namespace', 'weft-system', '--wait=true'], undefined, 150_000);
    await until(() => !existsSync('/sys/fs/bpf/weft-kc-node1'), 'the agent removed its pins', 60_000);
    const progs = spawnSync('bpftool', ['-j', 'cgroup', 'show', server.cgroup], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(progs.stdout.trim() || '[]'), []);
    assert.equal(fetchFromClient('http://server.demo.svc.cluster.local/').out.trim(), 'hello-from-server', 'plaintext again');
  });
});
