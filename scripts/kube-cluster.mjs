#!/usr/bin/env node
// A real one-node Kubernetes cluster on this machine, for verifying the install end to end:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy and kubelet
// (v1.34.4), containerd (CRI) with Debian's runc and the CNI bridge plugin, all built from their
// Go modules by scripts/tools.mjs. Everything runs in its own network namespace (pods on a bridge
// in it), so nothing is added to the host's network but one veth pair:
//   host 198.18.199.1/30 <-> node 198.18.199.2/30 (API server :6443, kubelet, DNS :53)
//   pods 198.18.200.0/24, services 198.19.0.0/16
// Processes live in the cgroup /weft-kc (every hierarchy; kubelet's cgroup root), so stopping
// kills the whole tree, shims and containers included. State lives in one directory.
//
// Usage (root):
//   node scripts/kube-cluster.mjs up [--images ref,...]   start; prints one JSON line
//       {"ready":true,"kubeconfig":…,"dir":…,"node":…} when the node is Ready, then runs until
//       SIGTERM/SIGINT or its stdin closes, and tears everything down
//   node scripts/kube-cluster.mjs cleanup             remove what a killed run left behind
// One cluster at a time (the addresses are fixed): /run/lock/weft-kube-cluster.lock.
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
export const NETNS = 'weft-kc';
export const NODE = 'kc-node1';
const HOST_IF = 'weft-kc-h';
const HOST_IP = '198.18.199.1';
export const NODE_IP = '198.18.199.2';
export const POD_CIDR = '198.18.200.0/24';
export const SERVICE_CIDR = '198.19.0.0/16';
const CGROUP = 'weft-kc';
export const PAUSE_IMAGE = 'localhost/weft-kc-pause:1';
export const BUSYBOX_IMAGE = 'localhost/weft-kc-busybox:1';
const STATE = '/run/weft-kube-cluster';
const ADMIN_TOKEN = 'weft-kc-admin';

const log = (m) => process.stderr.write(`kube-cluster: ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`\`${cmd} ${args.join(' ')}\` failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.stdout || '').trim()}`);
  return r;
}

function tool(name) {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'tools.mjs'), name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) {
    const e = new Error(`scripts/tools.mjs ${name} failed (exit ${r.status})`);
    e.exitCode = r.status;
    throw e;
  }
  return r.stdout.trim();
}

/** Mount points of the cgroup hierarchies: [{ dir, v2 }]. */
function cgroupMounts() {
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' '))
    .filter((f) => f[2] === 'cgroup' || f[2] === 'cgroup2').map((f) => ({ dir: f[1], v2: f[2] === 'cgroup2' }));
}

function cgroupDirs(rel) {
  return cgroupMounts().map((m) => join(m.dir, rel));
}

/** Every pid in the cgroup tree rel (any hierarchy: runc and we put every process in all of them). */
function cgroupPids(rel) {
  const pids = new Set();
  const walk = (d) => {
    let entries;
    try {
      for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p) pids.add(Number(p));
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(join(d, e.name));
  };
  for (const d of cgroupDirs(rel)) walk(d);
  return [...pids];
}

function rmCgroupTree(d) {
  let entries = [];
  try {
    entries = readdirSync(d, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) rmCgroupTree(join(d, e.name));
  try {
    rmdirSync(d);
  } catch { /* busy or gone */ }
}

function mountsUnder(dir) {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m && (m === dir || m.startsWith(dir + '/')))
    .map((m) => m.replace(/\\040/g, ' '));
}

/** Tears down everything a run made; safe to call on a half-made or already-clean state. */
export function teardown(dir) {
  // 1. every process of the cluster: control plane, containerd, shims, containers
  for (let i = 0; i < 50; i++) {
    const pids = cgroupPids(CGROUP).filter((p) => p !== process.pid);
    if (pids.length === 0) break;
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch { /* gone */ }
    }
    spawnSync('sleep', ['0.1']);
  }
  // 2. mounts: pod volumes, container root filesystems, netns files, kubelet's rshared root
  if (dir) {
    for (let i = 0; i < 5; i++) {
      const ms = mountsUnder(dir).sort((a, b) => b.length - a.length);
      if (ms.length === 0) break;
      for (const m of ms) spawnSync('umount', ['-l', m]);
    }
  }
  // 3. cgroups, network namespace (takes the veth pair and the bridge along), BPF pins of the agent
  for (const d of cgroupDirs(CGROUP)) rmCgroupTree(d);
  spawnSync('ip', ['netns', 'delete', NETNS], { stdio: 'ignore' });
  spawnSync('ip', ['link', 'delete', HOST_IF], { stdio: 'ignore' });
  rmSync(`/sys/fs/bpf/weft-${NODE}`, { recursive: true, force: true });
  // containerd 1.7's shims keep their sockets in /run/containerd/s (a fixed path) and a killed
  // shim leaves its socket: with no containerd or shim left running on the machine, those are
  // all dead ones, and the directories go if nothing else is in them.
  const running = (args) => (spawnSync('pgrep', args).stdout?.length ?? 0) > 0;
  if (!running(['-x', 'containerd']) && !running(['-f', 'containerd-shim'])) {
    try {
      for (const e of readdirSync('/run/containerd/s', { withFileTypes: true })) if (e.isSocket()) rmSync(join('/run/containerd/s', e.name), { force: true });
      rmdirSync('/run/containerd/s');
      rmdirSync('/run/containerd');
    } catch { /* absent, or holds something else */ }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  rmSync(join(STATE, 'dir'), { force: true });
  rmSync(join(STATE, 'pid'), { force: true });
}

function leftover() {
  try {
    return { pid: Number(readFileSync(join(STATE, 'pid'), 'utf8')), dir: readFileSync(join(STATE, 'dir'), 'utf8').trim() };
  } catch {
    return undefined;
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Cleans up after a run whose supervisor is gone (SIGKILL, crash). */
export function cleanupLeftover() {
  const l = leftover();
  if (l && alive(l.pid) && l.pid !== process.pid) throw new Error(`a cluster run (pid ${l.pid}) is still going: stop it first`);
  if (l || existsSync(`/run/netns/${NETNS}`) || cgroupDirs(CGROUP).some((d) => existsSync(d))) log(`removing what an earlier run left (${l?.dir ?? 'no directory recorded'})`);
  teardown(l?.dir);
}

// ---------------------------------------------------------------- images

/** A busybox image (Debian's busybox-static) for apps, and one that only sleeps for sandboxes. */
function buildImages(dir, ctr) {
  if (!existsSync('/bin/busybox')) sh('apt-get', ['install', '-y', '-q', 'busybox-static'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  const files = mkdtempSync(join(dir, 'img-'));
  mkdirSync(join(files, 'bin'));
  sh('cp', ['/bin/busybox', join(files, 'bin', 'busybox')]);
  for (const a of ['sh', 'sleep', 'echo', 'cat', 'wget', 'httpd', 'nc', 'mkdir', 'ls', 'hostname', 'timeout']) sh('ln', ['-s', 'busybox', join(files, 'bin', a)]);
  mkdirSync(join(files, 'tmp'), { mode: 0o1777 });
  for (const [ref, cmd] of [[BUSYBOX_IMAGE, ['/bin/sh']], [PAUSE_IMAGE, ['/bin/busybox', 'sleep', '2147483647']]]) {
    const archive = join(dir, `${ref.split('/')[1].replace(':', '-')}.tar`);
    const w = sh('buildah', ['from', 'scratch']).stdout.trim();
    try {
      sh('buildah', ['copy', w, `${files}/`, '/']);
      sh('buildah', ['config', '--entrypoint', JSON.stringify(cmd), '--cmd', '[]', w]);
      sh('buildah', ['commit', '--quiet', '--format', 'docker', w, `docker-archive:${archive}:${ref}`]);
    } finally {
      sh('buildah', ['rm', w], { allowFail: true });
    }
    ctr(['images', 'import', archive]);
    rmSync(archive);
  }
  rmSync(files, { recursive: true, force: true });
}

function importImage(dir, ctr, ref) {
  const archive = join(dir, 'import.tar');
  sh('podman', ['save', '--quiet', '--format', 'docker-archive', '-o', archive, ref]);
  ctr(['images', 'import', archive]);
  rmSync(archive);
}

// ---------------------------------------------------------------- the cluster

class Cluster {
  procs = new Map();
  logs = {};

  constructor(dir, bins) {
    this.dir = dir;
    this.bins = bins;
  }

  spawn(name, file, args, env = {}) {
    const out = join(this.dir, 'logs', `${name}.log`);
    const fd = openSync(out, 'a');
    const ns = [`--net=/run/netns/${NETNS}`, ...(this.mountNs ? [`--mount=${this.mountNs}`] : [])];
    const p = spawn('nsenter', [...ns, '--', file, ...args], { stdio: ['ignore', fd, fd], cwd: this.dir, env: { ...process.env, ...env } });
    // into the cluster's cgroup before it forks anything (nsenter execs, keeping the pid)
    for (const d of cgroupDirs(join(CGROUP, 'system'))) {
      try {
        writeFileSync(join(d, 'cgroup.procs'), String(p.pid));
      } catch { /* exited already */ }
    }
    closeSync(fd);
    this.procs.set(name, p);
    p.once('exit', (code, sig) => {
      if (!this.stopping) log(`${name} exited (${code ?? sig}); its log: ${out}`);
    });
    return p;
  }

  tail(name, lines = 40) {
    try {
      return readFileSync(join(this.dir, 'logs', `${name}.log`), 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  async until(what, name, ok, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = this.procs.get(name);
      if (p && (p.exitCode !== null || p.signalCode !== null)) throw new Error(`${what} exited (${p.exitCode ?? p.signalCode}):\n${this.tail(name)}`);
      if (await ok().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`${what} not ready in ${timeoutMs / 1000} s:\n${this.tail(name)}`);
      await sleep(300);
    }
  }

  api(method, path, body) {
    const data = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = httpsRequest({
        host: NODE_IP, port: 6443, path, method, ca: this.caPem,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, accept: 'application/json', ...(data ? { 'content-type': 'application/json' } : {}) },
      }, (res) => {
        let t = '';
        res.on('data', (d) => (t += d));
        res.on('end', () => {
          let b = t;
          try {
            b = JSON.parse(t);
          } catch { /* text */ }
          resolve({ status: res.statusCode, body: b });
        });
      });
      req.on('error', reject);
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.end(data);
    });
  }

  kubeconfig(server) {
    return JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'weft-kc',
      clusters: [{ name: 'weft-kc', cluster: { server, 'certificate-authority-data': Buffer.from(this.caPem).toString('base64') } }],
      users: [{ name: 'admin', user: { token: ADMIN_TOKEN } }],
      contexts: [{ name: 'weft-kc', context: { cluster: 'weft-kc', user: 'admin' } }],
    }, null, 2);
  }

  network() {
    sh('ip', ['netns', 'add', NETNS]);
    const inNs = (...a) => sh('ip', ['-n', NETNS, ...a]);
    inNs('link', 'set', 'lo', 'up');
    sh('ip', ['link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NETNS]);
    sh('ip', ['addr', 'add', `${HOST_IP}/30`, 'dev', HOST_IF]);
    sh('ip', ['link', 'set', HOST_IF, 'up']);
    inNs('addr', 'add', `${NODE_IP}/30`, 'dev', 'eth0');
    inNs('link', 'set', 'eth0', 'up');
    // No default route: nothing leaves the namespace but to the host end of the veth. A packet to
    // a Service IP that kube-proxy has not rewritten (yet) gets "unreachable" at once instead of
    // leaving: a SYN that left un-NATed would pin its conntrack entry, and its retransmissions
    // would never reach the endpoint (the client hangs until its SYN retries run out).
    inNs('route', 'add', 'unreachable', SERVICE_CIDR);
    sh('ip', ['netns', 'exec', NETNS, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  }

  cgroups() {
    for (const m of cgroupMounts()) {
      for (const rel of [CGROUP, join(CGROUP, 'system')]) {
        const d = join(m.dir, rel);
        mkdirSync(d, { recursive: true });
        // a new cpuset cgroup has no CPUs or memory nodes until given its parent's
        if (existsSync(join(d, 'cpuset.cpus')) && !m.v2) {
          for (const f of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(d, f), readFileSync(join(d, '..', f), 'utf8').trim() || '0');
        }
      }
    }
  }

  async up(images) {
    const d = this.dir;
    for (const sub of ['logs', 'pki', 'containerd', 'cni/net.d', 'cni/ipam', 'kubelet', 'pod-logs']) mkdirSync(join(d, sub), { recursive: true });
    this.network();
    this.cgroups();
    // One mount namespace for the node: the kubelet's volumes, containerd's root filesystems and
    // netns files live and die with it (no mount outlives the run, even after SIGKILL). In it,
    // /sys/fs/bpf is made a shared mount as on systemd hosts (the agent's HostToContainer mount
    // needs a shared or slave source); the host's own mount stays as it is.
    // The kubelet also sets host-wide kernel sysctls (vm.overcommit_memory=1, kernel.panic=10,
    // kernel.panic_on_oops=1, …) unless they already have its values: in this namespace those
    // files are copies, so the host's settings stay as they are.
    const sysctls = ['vm/overcommit_memory', 'vm/panic_on_oom', 'kernel/panic', 'kernel/panic_on_oops', 'kernel/keys/root_maxkeys', 'kernel/keys/root_maxbytes'];
    mkdirSync(join(d, 'sysctl'));
    const binds = sysctls.map((f) => {
      const copy = join(d, 'sysctl', f.replace(/\//g, '.'));
      writeFileSync(copy, readFileSync(`/proc/sys/${f}`));
      return `mount --bind '${copy}' /proc/sys/${f}`;
    });
    const holder = this.spawn('mount-namespace', 'unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', ['set -e', ...binds, 'mount --make-shared /sys/fs/bpf', 'exec sleep 2147483647'].join('\n')]);
    await this.until('mount namespace', 'mount-namespace', async () => {
      const m = readFileSync(`/proc/${holder.pid}/mountinfo`, 'utf8').split('\n').map((l) => l.split(' '));
      return m.some((f) => f[4] === '/sys/fs/bpf' && f.slice(6).some((x) => x.startsWith('shared:'))) && sysctls.every((f) => m.some((x) => x[4] === `/proc/sys/${f}`));
    }, 10_000);
    this.mountNs = `/proc/${holder.pid}/ns/mnt`;
    const { kube, node } = this.bins;
    const T = (s) => s * 1000;

    this.spawn('etcd', join(kube, 'etcd'), ['--name', 'weft-kc', '--data-dir', join(d, 'etcd'), '--log-level', 'warn', '--unsafe-no-fsync',
      '--listen-client-urls', 'http://127.0.0.1:2379', '--advertise-client-urls', 'http://127.0.0.1:2379',
      '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380', '--initial-cluster', 'weft-kc=http://127.0.0.1:2380',
      '--listen-metrics-urls', '']);

    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(d, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(d, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(join(d, 'tokens.csv'), `${ADMIN_TOKEN},weft-kc-admin,weft-kc-admin,"system:masters"\n`);
    this.spawn('kube-apiserver', join(kube, 'kube-apiserver'), [
      '--etcd-servers', 'http://127.0.0.1:2379', '--bind-address', '0.0.0.0', '--advertise-address', NODE_IP, '--secure-port', '6443',
      '--cert-dir', join(d, 'pki'), '--service-cluster-ip-range', SERVICE_CIDR, '--token-auth-file', join(d, 'tokens.csv'),
      '--authorization-mode', 'Node,RBAC', '--service-account-issuer', 'https://kubernetes.default.svc.cluster.local',
      '--service-account-key-file', join(d, 'sa.pub'), '--service-account-signing-key-file', join(d, 'sa.key'),
      '--allow-privileged=true', '--kubelet-preferred-address-types', 'InternalIP', '--v', '1',
    ]);
    await this.until('kube-apiserver', 'kube-apiserver', async () => {
      if (!this.caPem) this.caPem = readFileSync(join(d, 'pki', 'apiserver.crt'), 'utf8');
      return (await this.api('GET', '/readyz')).status === 200;
    }, T(120));
    const kc = join(d, 'admin.kubeconfig');
    writeFileSync(kc, this.kubeconfig(`https://${NODE_IP}:6443`));

    this.spawn('kube-controller-manager', join(node, 'kube-controller-manager'), ['--kubeconfig', kc, '--leader-elect=false',
      '--service-account-private-key-file', join(d, 'sa.key'), '--root-ca-file', join(d, 'pki', 'apiserver.crt'),
      '--use-service-account-credentials=false', '--secure-port', '0', '--cluster-cidr', POD_CIDR, '--service-cluster-ip-range', SERVICE_CIDR, '--v', '1']);
    this.spawn('kube-scheduler', join(node, 'kube-scheduler'), ['--kubeconfig', kc, '--leader-elect=false', '--secure-port', '0', '--v', '1']);

    // containerd with its own root, state and socket; the CRI plugin puts pod netns files under
    // its state directory, so every mount it makes is below this run's directory
    const sock = join(d, 'containerd', 'containerd.sock');
    writeFileSync(join(d, 'containerd', 'config.toml'), [
      'version = 2',
      `root = ${JSON.stringify(join(d, 'containerd', 'root'))}`,
      `state = ${JSON.stringify(join(d, 'containerd', 'state'))}`,
      `[grpc]\n  address = ${JSON.stringify(sock)}`,
      `[ttrpc]\n  address = ${JSON.stringify(sock + '.ttrpc')}`,
      `[plugins."io.containerd.internal.v1.opt"]\n  path = ${JSON.stringify(join(d, 'containerd', 'opt'))}`,
      '[plugins."io.containerd.grpc.v1.cri"]',
      `  sandbox_image = ${JSON.stringify(PAUSE_IMAGE)}`,
      '  netns_mounts_under_state_dir = true',
      '  disable_apparmor = true',
      // without CAP_SYS_RESOURCE runc cannot lower oom_score_adj (the sandbox's -998) and fails
      '  restrict_oom_score_adj = true',
      '  [plugins."io.containerd.grpc.v1.cri".containerd]',
      '    snapshotter = "overlayfs"',
      '    default_runtime_name = "runc"',
      '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
      '      runtime_type = "io.containerd.runc.v2"',
      '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
      // Debian's crun refuses hybrid cgroup hosts; runc also puts containers into cgroup v2
      '        BinaryName = "/usr/sbin/runc"',
      '        SystemdCgroup = false',
      `        Root = ${JSON.stringify(join(d, 'runc'))}`,
      '  [plugins."io.containerd.grpc.v1.cri".cni]',
      `    bin_dir = ${JSON.stringify(join(node, 'cni'))}`,
      `    conf_dir = ${JSON.stringify(join(d, 'cni', 'net.d'))}`,
      '',
    ].join('\n'));
    writeFileSync(join(d, 'cni', 'net.d', '10-weft-kc.conflist'), JSON.stringify({
      cniVersion: '1.0.0', name: 'weft-kc',
      plugins: [{
        type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: POD_CIDR }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(d, 'cni', 'ipam') },
      }],
    }, null, 2));
    this.spawn('containerd', join(node, 'containerd'), ['--config', join(d, 'containerd', 'config.toml'), '--log-level', 'warn'], { PATH: `${node}:${process.env.PATH}` });
    const ctr = (args) => sh(join(node, 'ctr'), ['--address', sock, '--namespace', 'k8s.io', ...args]);
    await this.until('containerd', 'containerd', async () => existsSync(sock) && spawnSync(join(node, 'ctr'), ['--address', sock, 'version']).status === 0, T(30));
    buildImages(d, ctr);
    for (const ref of images) importImage(d, ctr, ref);

    writeFileSync(join(d, 'resolv.conf'), `nameserver ${NODE_IP}\n`);
    writeFileSync(join(d, 'kubelet', 'config.yaml'), JSON.stringify({
      apiVersion: 'kubelet.config.k8s.io/v1beta1', kind: 'KubeletConfiguration',
      cgroupDriver: 'cgroupfs', cgroupRoot: `/${CGROUP}`, failSwapOn: false, failCgroupV1: false,
      containerRuntimeEndpoint: `unix://${sock}`,
      authentication: { anonymous: { enabled: true }, webhook: { enabled: false } }, authorization: { mode: 'AlwaysAllow' },
      address: NODE_IP, readOnlyPort: 0, healthzBindAddress: '127.0.0.1', healthzPort: 10248,
      clusterDNS: [NODE_IP], clusterDomain: 'cluster.local', resolvConf: join(d, 'resolv.conf'),
      podLogsDir: join(d, 'pod-logs'),
      evictionHard: { 'memory.available': '50Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
      imageGCHighThresholdPercent: 100, imageGCLowThresholdPercent: 99,
      serializeImagePulls: false, protectKernelDefaults: false,
    }, null, 2));
    this.spawn('kubelet', join(node, 'kubelet'), ['--config', join(d, 'kubelet', 'config.yaml'), '--kubeconfig', kc, '--root-dir', join(d, 'kubelet'),
      '--cert-dir', join(d, 'kubelet', 'pki'), '--hostname-override', NODE, '--node-ip', NODE_IP, '--v', '1']);
    this.spawn('kube-proxy', join(node, 'kube-proxy'), ['--kubeconfig', kc, '--hostname-override', NODE, '--cluster-cidr', POD_CIDR,
      '--proxy-mode', 'iptables', '--conntrack-max-per-core', '0', '--metrics-bind-address', '127.0.0.1:10249', '--healthz-bind-address', '127.0.0.1:10256', '--v', '1']);
    this.spawn('dns', process.execPath, [fileURLToPath(import.meta.url), 'dns', kc]);

    await this.until('node Ready', 'kubelet', async () => {
      const r = await this.api('GET', `/api/v1/nodes/${NODE}`);
      return r.status === 200 && r.body.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    }, T(120));
    // the default service account exists once the controller manager's token controller ran
    await this.until('default service account', 'kube-controller-manager', async () => (await this.api('GET', '/api/v1/namespaces/default/serviceaccounts/default')).status === 200, T(60));
    const hostKc = join(d, 'kubeconfig');
    writeFileSync(hostKc, this.kubeconfig(`https://${NODE_IP}:6443`));
    return { kubeconfig: hostKc, dir: d, node: NODE, netns: NETNS, nodeIp: NODE_IP, ctr: [join(node, 'ctr'), '--address', sock, '--namespace', 'k8s.io'] };
  }

  async stop() {
    this.stopping = true;
    // the kubelet first (so it does not restart what goes next), then the rest at once; what
    // is left after 5 s (containers, shims) is killed with the cgroup
    const term = async (names) => {
      const ps = names.map((n) => this.procs.get(n)).filter((p) => p && p.exitCode === null && p.signalCode === null);
      for (const p of ps) p.kill('SIGTERM');
      await Promise.race([Promise.all(ps.map((p) => new Promise((r) => p.once('exit', r)))), sleep(5000)]);
    };
    await term(['kubelet']);
    await term([...this.procs.keys()].filter((n) => n !== 'kubelet' && n !== 'mount-namespace'));
    teardown(this.dir);
  }
}


// ---------------------------------------------------------------- cluster DNS

/**
 * A minimal cluster DNS on NODE_IP:53 (UDP): A records of Services
 * (<name>.<namespace>.svc.cluster.local -> ClusterIP), NXDOMAIN for every other name, no AAAA.
 * Enough for the in-cluster names Weft uses; CoreDNS would need an image we cannot pull.
 */
async function dns(kubeconfigPath) {
  const kc = JSON.parse(readFileSync(kubeconfigPath, 'utf8'));
  const ca = Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64').toString();
  const server = new URL(kc.clusters[0].cluster.server);
  const token = kc.users[0].user.token;
  const get = (path) => new Promise((resolve) => {
    const req = httpsRequest({ host: server.hostname, port: server.port, path, ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let t = '';
      res.on('data', (d) => (t += d));
      res.on('end', () => resolve(res.statusCode === 200 ? JSON.parse(t) : undefined));
    });
    req.on('error', () => resolve(undefined));
    req.end();
  });
  const sock = createSocket('udp4');
  sock.on('message', async (msg, rinfo) => {
    if (msg.length < 12) return;
    // question: labels from offset 12, then type and class
    const labels = [];
    let o = 12;
    while (o < msg.length && msg[o] !== 0) {
      labels.push(msg.subarray(o + 1, o + 1 + msg[o]).toString('latin1').toLowerCase());
      o += 1 + msg[o];
    }
    const qtype = msg.readUInt16BE(o + 1);
    const qend = o + 5;
    let ip;
    const m = labels.join('.').match(/^([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local$/);
    let rcode = 3;
    if (m) {
      const svc = await get(`/api/v1/namespaces/${m[2]}/services/${m[1]}`);
      if (svc) {
        rcode = 0;
        ip = svc.spec.clusterIP;
      }
    }
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2);
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2);
    header.writeUInt16BE(1, 4);
    const answer = rcode === 0 && qtype === 1 && ip && ip !== 'None';
    header.writeUInt16BE(answer ? 1 : 0, 6);
    const parts = [header, msg.subarray(12, qend)];
    if (answer) {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0);
      rr.writeUInt16BE(1, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(5, 6);
      rr.writeUInt16BE(4, 10);
      ip.split('.').forEach((b, i) => (rr[12 + i] = Number(b)));
      parts.push(rr);
    }
    sock.send(Buffer.concat(parts), rinfo.port, rinfo.address);
  });
  sock.bind(53, NODE_IP);
}

// ---------------------------------------------------------------- main

async function main() {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === 'dns') return dns(rest[0]);
  if (process.getuid?.() !== 0) throw new Error('kube-cluster needs root (network namespace, cgroups, mounts, containerd)');
  mkdirSync(STATE, { recursive: true });
  const lock = '/run/lock/weft-kube-cluster.lock';
  if (cmd === 'cleanup') {
    cleanupLeftover();
    rmSync(lock, { recursive: true, force: true });
    return;
  }
  if (cmd !== 'up') {
    process.stderr.write('usage: node scripts/kube-cluster.mjs up [--images ref,...] | cleanup\n');
    process.exit(2);
  }
  const images = rest[0] === '--images' && rest[1] ? rest[1].split(',') : [];
  try {
    mkdirSync(lock);
  } catch {
    const l = leftover();
    if (l && alive(l.pid)) throw new Error(`another cluster run (pid ${l.pid}) holds ${lock}`);
    // the holder is gone
  }
  cleanupLeftover();
  if (existsSync(`/sys/fs/bpf/weft-${NODE}`)) throw new Error(`/sys/fs/bpf/weft-${NODE} exists: an agent for node ${NODE} runs outside this cluster?`);
  const bins = { kube: tool('kube-apiserver'), node: tool('kube-node') };
  const dir = mkdtempSync(join(tmpdir(), 'weft-kc-'));
  writeFileSync(join(STATE, 'pid'), String(process.pid));
  writeFileSync(join(STATE, 'dir'), dir);
  const c = new Cluster(dir, bins);
  let stopping;
  const stop = (why) => {
    stopping ??= (async () => {
      log(`stopping (${why})`);
      await c.stop().catch((e) => log(`stop: ${e.message}`));
      rmSync(lock, { recursive: true, force: true });
      process.exit(0);
    })();
    return stopping;
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.stdin.on('end', () => stop('stdin closed'));
  process.stdin.on('error', () => stop('stdin error'));
  process.stdin.resume();
  const t0 = Date.now();
  try {
    const info = await c.up(images);
    process.stdout.write(JSON.stringify({ ready: true, seconds: Math.round((Date.now() - t0) / 1000), ...info }) + '\n');
  } catch (e) {
    log(`failed: ${e.message}`);
    process.stdout.write(JSON.stringify({ ready: false, error: e.message }) + '\n');
    await stop('start failed');
  }
}

main().catch((e) => {
  process.stderr.write(`kube-cluster: ${e.message}\n`);
  process.exit(1);
});
