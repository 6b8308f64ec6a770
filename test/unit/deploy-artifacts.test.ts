// deploy/Dockerfile and deploy/grafana: without a Docker engine, the Dockerfile is parsed and
// every path it copies is checked against the repository and the build output; the dashboard
// only queries metrics and labels the agent exports (Istio's standard names).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../agent/src/deploy/render.js';
import { TCP_LABELS } from '../../agent/src/telemetry/tcp-metrics.js';

const root = packageRoot();

interface Instr { op: string; args: string; line: number }
function parseDockerfile(text: string): Instr[] {
  const out: Instr[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let l = lines[i]!;
    const start = i + 1;
    if (/^\s*(#|$)/.test(l)) continue;
    while (l.endsWith('\\') && i + 1 < lines.length) l = l.slice(0, -1) + ' ' + lines[++i]!.trim();
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(l);
    assert.ok(m, `Dockerfile line ${start} is not an instruction: ${l}`);
    out.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
  }
  return out;
}

function stages(instrs: Instr[]): { name: string; base: string; body: Instr[] }[] {
  const out: { name: string; base: string; body: Instr[] }[] = [];
  for (const i of instrs) {
    if (i.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(i.args)!;
      out.push({ name: m[2] ?? String(out.length), base: m[1]!, body: [] });
    } else out.at(-1)?.body.push(i);
  }
  return out;
}

/** A glob with * in the last segment only, against the filesystem. */
function globExists(path: string): boolean {
  if (!path.includes('*')) return existsSync(path);
  const dir = path.slice(0, path.lastIndexOf('/'));
  const re = new RegExp('^' + path.slice(dir.length + 1).replace(/[.]/g, '\\.').replace(/\*/g, '.*') + '$');
  return existsSync(dir) && readdirSync(dir).some((f) => re.test(f));
}

describe('deploy/Dockerfile', () => {
  const text = readFileSync(join(root, 'deploy/Dockerfile'), 'utf8');
  const instrs = parseDockerfile(text);
  const [builder, runtime] = stages(instrs);

  it('is multi-stage: a Debian + Node 20 builder with the BPF toolchain, a slim Debian runtime', () => {
    assert.equal(stages(instrs).length, 2);
    assert.equal(builder!.name, 'builder');
    assert.equal(runtime!.name, 'runtime');
    assert.match(instrs.find((i) => i.op === 'ARG')!.args, /^NODE_VERSION=20$/);
    assert.equal(builder!.base, 'node:${NODE_VERSION}-bookworm');
    assert.equal(runtime!.base, 'node:${NODE_VERSION}-bookworm-slim');
    const buildRuns = builder!.body.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    for (const pkg of ['clang', 'llvm', 'bpftool', 'libbpf-dev', 'libelf-dev', 'zlib1g-dev', 'pkg-config', 'g++']) assert.match(buildRuns, new RegExp(`\\s${pkg.replace('+', '\\+')}\\s`), pkg);
    assert.match(buildRuns, /npm ci\b/);
    assert.match(buildRuns, /npm run build\b/);
    assert.match(buildRuns, /npm prune --omit=dev/);
    const runRuns = runtime!.body.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    for (const pkg of ['libbpf1', 'libelf1', 'zlib1g', 'iproute2']) assert.match(runRuns, new RegExp(`\\s${pkg}\\s`), pkg);
    assert.doesNotMatch(runRuns, /\b(clang|gcc|g\+\+|-dev)\b/, 'no compilers in the runtime image');
  });

  it('every path copied from the build context exists in the repository', () => {
    const copies = instrs.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'));
    assert.ok(copies.length > 5);
    for (const c of copies) {
      const parts = c.args.split(/\s+/);
      for (const src of parts.slice(0, -1)) {
        if (src.endsWith('*')) continue; // optional (deploy/vmlinux.h*)
        assert.ok(existsSync(join(root, src)), `line ${c.line}: ${src} is missing`);
      }
    }
    const ignored = readFileSync(join(root, 'deploy/Dockerfile.dockerignore'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    for (const c of copies) for (const src of c.args.split(/\s+/).slice(0, -1)) assert.ok(!ignored.some((g) => src === g || src.startsWith(`${g}/`)), `${src} is copied but ignored`);
  });

  it('the runtime copies what the build produces and what the CLI needs to find its root', () => {
    const fromBuilder = runtime!.body.filter((i) => i.op === 'COPY' && i.args.startsWith('--from=builder')).map((i) => i.args.split(/\s+/)[1]!);
    for (const need of ['/app/node_modules', '/app/dist/agent', '/app/agent/bin', '/app/build/Release/weft_native.node', '/app/build/bpf/*.bpf.o', '/app/package.json', '/app/binding.gyp']) {
      assert.ok(fromBuilder.includes(need), `runtime copies ${need}`);
    }
    // Those paths are what `npm run build` makes in this checkout (the build the image runs).
    for (const p of fromBuilder) {
      const rel = p.replace(/^\/app\//, '');
      if (rel === 'node_modules') continue;
      assert.ok(globExists(join(root, rel)), `${rel} exists after npm run build`);
    }
    const bpfSources = readdirSync(join(root, 'bpf')).filter((f) => f.endsWith('.bpf.c'));
    for (const s of bpfSources) assert.ok(existsSync(join(root, 'build/bpf', s.replace(/\.c$/, '.o'))), `build/bpf/${s.replace(/\.c$/, '.o')}`);
    const entry = runtime!.body.find((i) => i.op === 'ENTRYPOINT')!;
    assert.deepEqual(JSON.parse(entry.args), ['node', '/app/agent/bin/weft.js']);
  });

  it('runs as non-root 65532 by default (the controller); only the agent DaemonSet asks for root', () => {
    const users = runtime!.body.filter((i) => i.op === 'USER');
    assert.deepEqual(users.map((u) => u.args), ['65532:65532']);
    assert.ok(runtime!.body.indexOf(users[0]!) > runtime!.body.findLastIndex((i) => i.op === 'RUN'), 'USER comes after the last RUN');
  });

  it('documents where vmlinux.h comes from (CO-RE: the build machine\'s BTF or a supplied file)', () => {
    assert.match(text, /\/sys\/kernel\/btf\/vmlinux/);
    assert.match(text, /CO-RE/);
    assert.match(text, /deploy\/vmlinux\.h/);
  });
});

describe('deploy/grafana/weft-dashboard.json', () => {
  const dash = JSON.parse(readFileSync(join(root, 'deploy/grafana/weft-dashboard.json'), 'utf8')) as { uid: string; panels: { type: string; title: string; targets?: { expr: string }[]; gridPos: { x: number; y: number; w: number; h: number } }[]; templating: { list: { name: string }[] } };
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

  // Names the agent registers (scanned from its telemetry source) and the waypoint's Istio names.
  const telemetrySrc = readdirSync(join(root, 'agent/src/telemetry')).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(join(root, 'agent/src/telemetry', f), 'utf8')).join('\n');
  const agentMetrics = new Set([...telemetrySrc.matchAll(/'(istio_[a-z_]+)'/g)].map((m) => m[1]!));
  const WAYPOINT_METRICS = new Set(['istio_requests_total', 'istio_request_duration_milliseconds_bucket']);
  const HTTP_LABELS = new Set([...TCP_LABELS, 'response_code', 'le']);

  it('queries only metrics Weft exports, with Istio\'s standard names', () => {
    assert.ok(exprs.length >= 8);
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(istio_[a-z_]+)\b/g)].map((m) => m[1]!)));
    for (const m of ['istio_tcp_connections_opened_total', 'istio_tcp_sent_bytes_total', 'istio_tcp_received_bytes_total', 'istio_tcp_connections_closed_total']) assert.ok(used.has(m), `dashboard shows ${m}`);
    for (const m of used) assert.ok(agentMetrics.has(m) || WAYPOINT_METRICS.has(m), `${m} is neither exported by agent/src/telemetry nor a waypoint metric`);
  });

  it('groups and filters by labels the metrics carry (source/destination workload)', () => {
    for (const e of exprs) {
      const labels = [...e.matchAll(/by \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()))
        .concat([...e.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1]!.matchAll(/([a-z_]+)\s*(=~|!=|=)/g)].map((x) => x[1]!)));
      const allowed = /istio_request/.test(e) ? HTTP_LABELS : new Set<string>(TCP_LABELS);
      for (const l of labels) assert.ok(allowed.has(l), `label ${l} in ${e}`);
    }
    assert.ok(exprs.some((e) => /by \([^)]*source_workload[^)]*destination_workload/.test(e)));
    assert.ok(dash.templating.list.some((v) => v.name === 'namespace'));
  });

  it('panels do not overlap on the grid', () => {
    const cells = new Set<string>();
    for (const p of dash.panels) {
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          assert.ok(!cells.has(`${x},${y}`), `${p.title} overlaps at ${x},${y}`);
          cells.add(`${x},${y}`);
        }
      }
    }
  });
});
