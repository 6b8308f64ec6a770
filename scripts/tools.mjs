#!/usr/bin/env node
// Test tools that are not npm packages, installed on first use into a project-local cache
// (node_modules/.cache/weft-tools: survives `node-gyp rebuild`, which wipes build/):
//   helm                 `go install helm.sh/helm/v3/cmd/helm@HELM_VERSION` (the Go module proxy)
//   kubernetes-validate  `pip install --target` from PyPI: Kubernetes' OpenAPI schemas as JSON schema
//   prometheus-operator-crds  `go mod download` of the Prometheus Operator: its CRDs (PodMonitor)
//   kube-apiserver       a real control plane for test/netns/kube-real-apiserver.test.ts: etcd and
//                        kube-apiserver built from their Go modules (`go mod download` + `go build`)
//   kube-node            the rest of a one-node cluster for scripts/kube-cluster.mjs: kubelet,
//                        kube-controller-manager, kube-scheduler, kube-proxy, kubectl, containerd
//                        (+ shim, ctr) and the CNI bridge/host-local/loopback plugins, from Go modules
// Usage: node scripts/tools.mjs helm|kubernetes-validate|prometheus-operator-crds|kube-apiserver|kube-node
//   -> prints the path on stdout (kube-apiserver, kube-node: the directory holding the binaries).
// Exit 3 when the toolchain (go, python3/pip) is missing; under CI=true that is exit 1 with a
// loud message, so CI never passes by skipping. Not part of `npm start`.
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HELM_VERSION = 'v3.19.5';
// What helm's Makefile stamps into release binaries: its version, and the Kubernetes version of
// its client-go (v0.34 -> 1.34), which `helm template` and `helm lint` assume for kubeVersion.
const HELM_LDFLAGS = [
  `-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}`,
  ...['pkg/lint/rules', 'pkg/chartutil'].flatMap((p) => [`-X helm.sh/helm/v3/${p}.k8sVersionMajor=1`, `-X helm.sh/helm/v3/${p}.k8sVersionMinor=34`]),
].join(' ');
export const KUBE_VALIDATE_VERSION = '1.34.1';
// The Prometheus Operator's CRDs (PodMonitor's schema), from its Go module on the module proxy.
export const PROMETHEUS_OPERATOR_VERSION = 'v0.85.0';

// A real kube-apiserver and etcd for the install test. Neither has a release binary we can reach,
// and neither module builds with `go install` (replace directives pointing into their repos), so
// the module zip is unpacked and its go.mod rewritten to the published sibling modules.
export const KUBERNETES_VERSION = 'v1.34.4';
export const ETCD_VERSION = 'v3.5.21';

const root = fileURLToPath(new URL('..', import.meta.url));
export const toolsDir = join(root, 'node_modules', '.cache', 'weft-tools');

class MissingToolchain extends Error {}

function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/local/go/bin'])) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
}

function runOrThrow(cmd, args, env) {
  process.stderr.write(`tools: ${cmd} ${args.join(' ')}\n`);
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`\`${cmd} ${args.join(' ')}\` failed (exit ${r.status ?? r.signal})`);
}

/** Path of helm HELM_VERSION, built with `go install` the first time (minutes on 2 cores). */
export function ensureHelm() {
  const dir = join(toolsDir, 'helm', `${HELM_VERSION}-k1.34`);
  const bin = join(dir, 'helm');
  if (existsSync(bin)) return bin;
  const go = which('go');
  if (!go) throw new MissingToolchain('go is not installed (needed to build helm: go install helm.sh/helm/v3/cmd/helm)');
  mkdirSync(dir, { recursive: true });
  runOrThrow(go, ['install', '-trimpath', '-ldflags', HELM_LDFLAGS, `helm.sh/helm/v3/cmd/helm@${HELM_VERSION}`], { GOBIN: dir, GOFLAGS: '-buildvcs=false' });
  if (!existsSync(bin)) throw new Error(`go install finished but ${bin} is missing`);
  return bin;
}

/** PYTHONPATH directory holding kubernetes_validate KUBE_VALIDATE_VERSION. */
export function ensureKubeValidate() {
  const dir = join(toolsDir, 'kubernetes-validate', KUBE_VALIDATE_VERSION);
  if (existsSync(join(dir, 'kubernetes_validate'))) return dir;
  const py = which('python3');
  if (!py) throw new MissingToolchain('python3 is not installed (needed for kubernetes-validate from PyPI)');
  const tmp = `${dir}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  runOrThrow(py, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-warn-script-location', '--target', tmp, `kubernetes-validate==${KUBE_VALIDATE_VERSION}`], { PIP_ROOT_USER_ACTION: 'ignore' });
  renameSync(tmp, dir);
  return dir;
}

/** Directory with the Prometheus Operator's CRD YAML files (go mod download, cached by Go). */
export function ensurePrometheusOperatorCrds() {
  const go = which('go');
  if (!go) throw new MissingToolchain('go is not installed (needed to fetch the Prometheus Operator CRDs from the Go module proxy)');
  mkdirSync(toolsDir, { recursive: true });
  const mod = `github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}`;
  const r = spawnSync(go, ['mod', 'download', '-json', mod], { cwd: toolsDir, encoding: 'utf8', env: { ...process.env, GOFLAGS: '-mod=mod', GO111MODULE: 'on' } });
  if (r.status !== 0) throw new Error(`go mod download ${mod} failed: ${r.stderr || r.stdout}`);
  const dir = join(JSON.parse(r.stdout).Dir, 'example', 'prometheus-operator-crd');
  if (!existsSync(join(dir, 'monitoring.coreos.com_podmonitors.yaml'))) throw new Error(`${dir} has no PodMonitor CRD`);
  return dir;
}

function goModuleDir(go, mod) {
  mkdirSync(toolsDir, { recursive: true });
  const r = spawnSync(go, ['mod', 'download', '-json', mod], { cwd: toolsDir, encoding: 'utf8', env: { ...process.env, GOFLAGS: '-mod=mod', GO111MODULE: 'on' } });
  if (r.status !== 0) throw new Error(`go mod download ${mod} failed: ${r.stderr || r.stdout}`);
  return JSON.parse(r.stdout).Dir;
}

/** A writable copy of a module from the module cache, with its go.mod rewritten by edit. */
function writableModule(go, mod, dest, edit) {
  rmSync(dest, { recursive: true, force: true });
  cpSync(goModuleDir(go, mod), dest, { recursive: true });
  chmodSync(dest, 0o755);
  const gomod = join(dest, 'go.mod');
  chmodSync(gomod, 0o644);
  writeFileSync(gomod, edit(readFileSync(gomod, 'utf8')));
  rmSync(join(dest, 'go.work'), { force: true });
  return dest;
}

/**
 * Directory with `etcd` ETCD_VERSION and `kube-apiserver` KUBERNETES_VERSION, built from source the
 * first time (measured on 2 busy cores, empty Go build cache: etcd 1 min, kube-apiserver 4.5 min,
 * 1.8 GB peak; plus the module downloads).
 */
export function ensureKubeApiserver() {
  const dir = join(toolsDir, 'kube-apiserver', `${KUBERNETES_VERSION}-etcd-${ETCD_VERSION}`);
  const etcd = join(dir, 'etcd');
  const apiserver = join(dir, 'kube-apiserver');
  if (existsSync(etcd) && existsSync(apiserver)) return dir;
  const go = which('go');
  if (!go) throw new MissingToolchain('go is not installed (needed to build etcd and kube-apiserver from their Go modules)');
  mkdirSync(dir, { recursive: true });
  const env = { GOFLAGS: '-buildvcs=false -mod=mod', GO111MODULE: 'on' };
  if (!existsSync(etcd)) {
    // go.etcd.io/etcd/server/v3 points its siblings (api, client, pkg, raft) at ../: use the
    // published ones it already requires at the same version.
    const src = writableModule(go, `go.etcd.io/etcd/server/v3@${ETCD_VERSION}`, join(dir, 'etcd-src'), (m) => m.replace(/\nreplace \([^)]*\)\n/g, '\n'));
    runOrThrow(go, ['-C', src, 'build', '-trimpath', '-o', `${etcd}.partial`, '.'], env);
    renameSync(`${etcd}.partial`, etcd);
    rmSync(src, { recursive: true, force: true });
  }
  if (!existsSync(apiserver)) buildKubernetes(go, dir, ['kube-apiserver']);
  return dir;
}

/** Builds the given ./cmd/<name> of k8s.io/kubernetes KUBERNETES_VERSION into dir/<name>. */
function buildKubernetes(go, dir, commands) {
  const env = { GOFLAGS: '-buildvcs=false -mod=mod', GO111MODULE: 'on' };
  // k8s.io/kubernetes requires its staging modules as v0.0.0 replaced by ./staging/src/..., which
  // the module zip lacks (nested modules): require the published v0.<minor>.<patch> instead.
  const staging = `v0.${KUBERNETES_VERSION.slice(3)}`;
  const src = writableModule(go, `k8s.io/kubernetes@${KUBERNETES_VERSION}`, join(dir, 'kubernetes-src'), (m) => {
    const names = [...m.matchAll(/^\s*(k8s\.io\/[\w-]+) => \.\/staging\/src\/\S+$/gm)].map((x) => x[1]);
    if (names.length === 0) throw new Error(`k8s.io/kubernetes@${KUBERNETES_VERSION}: no staging replace directives in go.mod (layout changed?)`);
    let out = m.replace(/^\s*k8s\.io\/[\w-]+ => \.\/staging\/src\/\S+\n/gm, '').replace(/\nreplace \(\s*\)\n/g, '\n');
    for (const n of names) out = out.replace(new RegExp(`^(\\s*${n.replace(/[./]/g, '\\$&')}) v0\\.0\\.0$`, 'm'), `$1 ${staging}`);
    return out;
  });
  const [, minor] = /^v1\.(\d+)\./.exec(KUBERNETES_VERSION);
  const ldflags = ['-s', '-w', ...Object.entries({ gitVersion: KUBERNETES_VERSION, gitMajor: '1', gitMinor: minor, gitTreeState: 'clean' }).map(([k, v]) => `-X k8s.io/component-base/version.${k}=${v}`)].join(' ');
  for (const cmd of commands) {
    runOrThrow(go, ['-C', src, 'build', '-trimpath', '-ldflags', ldflags, '-o', join(dir, `${cmd}.partial`), `./cmd/${cmd}`], env);
    renameSync(join(dir, `${cmd}.partial`), join(dir, cmd));
  }
  rmSync(src, { recursive: true, force: true });
}

// The node side of a one-node cluster for test/netns/kube-real-cluster.test.ts: containerd (its
// CRI plugin built in) and the CNI plugins, from their Go modules, with Debian's runc.
export const CONTAINERD_VERSION = 'v1.7.35';
export const CNI_PLUGINS_VERSION = 'v1.9.0';
const KUBE_NODE_COMMANDS = ['kubelet', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy', 'kubectl'];

/**
 * Directory with kubelet, kube-controller-manager, kube-scheduler, kube-proxy, kubectl (KUBERNETES_VERSION),
 * containerd, containerd-shim-runc-v2, ctr (CONTAINERD_VERSION) and cni/{bridge,host-local,loopback}
 * (CNI_PLUGINS_VERSION), built from their Go modules the first time.
 */
export function ensureKubeNode() {
  const dir = join(toolsDir, 'kube-node', `${KUBERNETES_VERSION}-containerd-${CONTAINERD_VERSION}-cni-${CNI_PLUGINS_VERSION}`);
  const containerd = ['containerd', 'containerd-shim-runc-v2', 'ctr'];
  const cni = ['bridge', 'host-local', 'loopback'].map((p) => join('cni', p));
  const all = [...KUBE_NODE_COMMANDS, ...containerd, ...cni];
  if (all.every((b) => existsSync(join(dir, b)))) return dir;
  const go = which('go');
  if (!go) throw new MissingToolchain('go is not installed (needed to build kubelet, containerd and the CNI plugins from their Go modules)');
  mkdirSync(join(dir, 'cni'), { recursive: true });
  const missingKube = KUBE_NODE_COMMANDS.filter((c) => !existsSync(join(dir, c)));
  if (missingKube.length > 0) buildKubernetes(go, dir, missingKube);
  // Neither module has replace directives: build in the (read-only) module cache directory.
  const env = { GOFLAGS: '-buildvcs=false -mod=readonly', GO111MODULE: 'on', CGO_ENABLED: '0' };
  const ctrd = goModuleDir(go, `github.com/containerd/containerd@${CONTAINERD_VERSION}`);
  for (const cmd of containerd) {
    if (existsSync(join(dir, cmd))) continue;
    // no_btrfs: the btrfs snapshotter needs cgo and btrfs headers; overlayfs is what we use
    const ldflags = `-s -w -X github.com/containerd/containerd/version.Version=${CONTAINERD_VERSION}`;
    runOrThrow(go, ['-C', ctrd, 'build', '-trimpath', '-tags', 'no_btrfs no_devmapper no_zfs no_aufs', '-ldflags', ldflags, '-o', join(dir, `${cmd}.partial`), `./cmd/${cmd}`], env);
    renameSync(join(dir, `${cmd}.partial`), join(dir, cmd));
  }
  const plugins = goModuleDir(go, `github.com/containernetworking/plugins@${CNI_PLUGINS_VERSION}`);
  for (const p of ['main/bridge', 'ipam/host-local', 'main/loopback']) {
    const out = join(dir, 'cni', p.split('/')[1]);
    if (existsSync(out)) continue;
    runOrThrow(go, ['-C', plugins, 'build', '-trimpath', '-ldflags', '-s -w', '-o', `${out}.partial`, `./plugins/${p}`], env);
    renameSync(`${out}.partial`, out);
  }
  return dir;
}

/** Runs fn holding a per-tool lock, so test files starting together install a tool once. */
function withLock(name, fn) {
  mkdirSync(toolsDir, { recursive: true });
  const lock = join(toolsDir, `${name}.lock`);
  const deadline = Date.now() + 40 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      // A lock older than any install is left over from a killed run.
      try {
        if (Date.now() - statSync(lock).mtimeMs > 30 * 60_000) rmSync(lock, { recursive: true, force: true });
      } catch { /* gone meanwhile */ }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

const TOOLS = { helm: ensureHelm, 'kubernetes-validate': ensureKubeValidate, 'prometheus-operator-crds': ensurePrometheusOperatorCrds, 'kube-apiserver': ensureKubeApiserver, 'kube-node': ensureKubeNode };

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const name = process.argv[2];
  const fn = TOOLS[name];
  if (!fn) {
    process.stderr.write(`usage: node scripts/tools.mjs ${Object.keys(TOOLS).join('|')}\n`);
    process.exit(2);
  }
  try {
    process.stdout.write(withLock(name, fn) + '\n');
  } catch (err) {
    const ci = process.env.CI === 'true';
    process.stderr.write(`tools: ${name}: ${err.message}${err instanceof MissingToolchain && ci ? ' — under CI=true this is a failure' : ''}\n`);
    process.exit(err instanceof MissingToolchain && !ci ? 3 : 1);
  }
}
