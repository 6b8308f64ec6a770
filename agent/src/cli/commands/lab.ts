// `weft lab`: the local multi-node cluster in network namespaces (see agent/src/lab/README.md).
import { UsageError } from '../../common/errors.js';
import { outputFormat, outputOption, table, type Command, type Io, type OptionSpec, type Parsed } from '../command.js';
import { DEFAULT_LAB_NAME, destroyLab, knownLabs, Lab, labExists, labHealth, sweep, type ChangeResult, type LabStatus } from '../../lab/index.js';
import { renderSummary, walkThrough } from '../../lab/demo.js';

const nameOption: OptionSpec = { name: { type: 'string' } };

function labName(args: Parsed): string {
  const n = args.values.name;
  return typeof n === 'string' ? n : (process.env.WEFT_LAB_NAME ?? DEFAULT_LAB_NAME);
}

function intFlag(args: Parsed, flag: string, fallback: number): number {
  const v = args.values[flag];
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || !/^\d+$/.test(v)) throw new UsageError(`--${flag} must be a whole number, not '${String(v)}'`);
  return Number(v);
}

const NAME_HELP = '  --name NAME        the lab (default: $WEFT_LAB_NAME or "lab"); several labs can run at once';

export function renderStatus(s: LabStatus): string {
  const parts = [`lab '${s.name}' (address slot ${s.slot}), state directory ${s.stateDir}\n`];
  parts.push('\n' + table(['NODE', 'IP', 'POD CIDR', 'NETNS'], s.nodes.map((n) => [n.name, n.ip, n.podCIDR, n.netns])));
  if (s.pods.length) {
    parts.push('\n' + table(['NAMESPACE', 'POD', 'NODE', 'IP', 'PID', 'NETNS'], s.pods.map((p) => [p.namespace, p.name, p.node, p.ip, String(p.pid), p.netns])));
  }
  if (s.services.length) {
    parts.push('\n' + table(['NAMESPACE', 'SERVICE', 'CLUSTER-IP', 'PORTS'], s.services.map((v) => [v.namespace, v.name, v.clusterIP, v.ports.map((p) => `${p.port}/${p.protocol ?? 'TCP'}`).join(',')])));
  }
  return parts.join('');
}

function renderChanges(results: ChangeResult[]): string {
  return results.map((r) => `${r.kind.toLowerCase()}/${r.name}${r.namespace ? ` (namespace ${r.namespace})` : ''} ${r.action}\n`).join('');
}

function files(args: Parsed): string[] {
  const f = args.values.filename;
  const list = Array.isArray(f) ? (f as string[]) : typeof f === 'string' ? [f] : [];
  if (list.length === 0) throw new UsageError('-f FILE|DIR is required');
  return list;
}

const up: Command = {
  name: 'up',
  summary: 'Build a lab: fabric bridge, nodes, pods with the sample app',
  usage: ['weft lab up [--name NAME] [--nodes N] [--pods-per-node M] [-o json]'],
  help: `Builds a cluster in network namespaces: a fabric netns with a bridge, one netns per node,
one netns per pod attached to its node by a veth pair, routes so every pod reaches every pod
and node (all addresses in 198.18.0.0/15). Each pod runs the sample app (TCP echo :9000, HTTP
:8080) in a kubelet-style cgroup. The cluster state is written as Kubernetes manifests to the
state directory. Leftovers of a crashed lab of the same name are swept first.

Options:
${NAME_HELP}
  --nodes N          number of nodes, 1-15 (default 2)
  --pods-per-node M  pods per node in the default layout (default 2)
  --no-mesh          do not start the controller and the per-node agents
  -o, --output FMT   table (default) or json: the status once the lab is up`,
  options: { ...nameOption, nodes: { type: 'string' }, 'pods-per-node': { type: 'string' }, 'no-mesh': { type: 'boolean' }, ...outputOption },
  async run(args, io) {
    const format = outputFormat(args);
    const name = labName(args);
    // Ctrl-C during the build stops it between steps and removes everything made.
    const abort = new AbortController();
    const onSignal = () => {
      if (!abort.signal.aborted) io.err('interrupted: removing what was made\n');
      abort.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const lab = await Lab.up({
        name,
        nodes: intFlag(args, 'nodes', 2),
        podsPerNode: intFlag(args, 'pods-per-node', 2),
        onProgress: (m) => io.err(`${m}\n`),
        signal: abort.signal,
        mesh: args.values['no-mesh'] !== true,
      });
      if (abort.signal.aborted) {
        await lab.down();
        return 130;
      }
      const s = lab.status();
      io.out(format === 'json' ? JSON.stringify(s) + '\n' : renderStatus(s));
      return 0;
    } catch (err) {
      if (!abort.signal.aborted) throw err;
      io.err(`lab '${name}' removed\n`);
      return 130;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};

const down: Command = {
  name: 'down',
  summary: 'Tear a lab down, leaving nothing behind',
  usage: ['weft lab down [--name NAME]', 'weft lab down --all'],
  help: `Kills every process in the lab's cgroups and removes its network namespaces (with their
links), cgroups, BPF pins under /sys/fs/bpf/weft-<lab>*, and its state directory.
Works on a broken or half-built lab too.

Options:
${NAME_HELP}
  --all              tear down every lab on this machine, healthy or not`,
  options: { ...nameOption, all: { type: 'boolean' } },
  async run(args, io) {
    if (args.values.all) {
      if (args.values.name !== undefined) throw new UsageError('--all and --name exclude each other');
      const names = knownLabs();
      for (const n of names) {
        await destroyLab(n);
        io.err(`lab '${n}' is down\n`);
      }
      if (names.length === 0) io.err('no labs\n');
      return 0;
    }
    const name = labName(args);
    if (!labExists(name) && labHealth(name).state === 'absent') await Lab.open(name); // throws: not found
    await destroyLab(name);
    io.err(`lab '${name}' is down\n`);
    return 0;
  },
};

const status: Command = {
  name: 'status',
  summary: 'Nodes, pods, services and the state directory',
  usage: ['weft lab status [--name NAME] [-o json]'],
  help: `Prints the lab's nodes, pods and services. With -o json:
{"stateDir", "nodes": [{"name","netns","ip",…}], "pods": [{"namespace","name","uid","node","ip",
"netns","cgroup","pid",…}], "services": [{"namespace","name","clusterIP","ports",…}], …}

Options:
${NAME_HELP}
  -o, --output FMT   table (default) or json`,
  options: { ...nameOption, ...outputOption },
  async run(args, io) {
    const format = outputFormat(args);
    const lab = await Lab.open(labName(args));
    const s = lab.status();
    io.out(format === 'json' ? JSON.stringify(s, null, 2) + '\n' : renderStatus(s));
    const h = lab.health();
    if (h.state === 'broken') io.err(`warning: the lab is broken: ${h.reason}; run \`weft lab down\` (or \`weft lab up\`, which sweeps it)\n`);
    return 0;
  },
};

const exec: Command = {
  name: 'exec',
  summary: "Run a command in a pod's netns and cgroup",
  usage: ['weft lab exec [--name NAME] <namespace>/<pod> -- CMD [ARG…]'],
  help: `Runs CMD inside the pod's network namespace and its container cgroup (as kubectl exec
would), with the terminal passed through. Exits with CMD's exit code.

Example:
  weft lab exec demo/client-1 -- curl -s http://198.18.2.10:8080/hello

Options:
${NAME_HELP}`,
  options: nameOption,
  positionals: { min: 2, max: Number.MAX_SAFE_INTEGER },
  async run(args) {
    const [ref, ...argv] = args.positionals;
    const lab = await Lab.open(labName(args));
    const r = await lab.exec(ref!, argv, { stdio: 'inherit' });
    return r.code;
  },
};

const apply: Command = {
  name: 'apply',
  summary: 'Add or update manifests (namespaces, services, pods, policies)',
  usage: ['weft lab apply [--name NAME] -f FILE|DIR [-f …]'],
  help: `Adds or updates Kubernetes objects from YAML files (several documents per file allowed) or
every *.yaml/*.yml/*.json file of a directory. Accepted kinds: Namespace, ServiceAccount,
Service, Pod (v1); AuthorizationPolicy, PeerAuthentication (security.weft.io/v1); Gateway,
HTTPRoute (gateway.networking.k8s.io/v1). A Pod is started for real (netns, veth, cgroup,
sample app). Everything is checked first; invalid YAML, an unknown kind or a failed check is
reported with its file and line, and then nothing is written.

Options:
${NAME_HELP}
  -f, --filename P   file or directory (repeatable)`,
  options: { ...nameOption, filename: { type: 'string', short: 'f', multiple: true } },
  async run(args, io) {
    const paths = files(args);
    const lab = await Lab.open(labName(args));
    io.out(renderChanges(await lab.apply(paths)));
    return 0;
  },
};

const del: Command = {
  name: 'delete',
  summary: 'Remove the objects named in manifests',
  usage: ['weft lab delete [--name NAME] -f FILE|DIR [-f …] [--ignore-not-found]'],
  help: `Removes the objects the files name (kind, namespace, name). Deleting a Namespace removes
everything in it; deleting a Pod stops it and removes its netns and cgroup. If a file is
invalid or an object does not exist, nothing is removed.

Options:
${NAME_HELP}
  -f, --filename P      file or directory (repeatable)
  --ignore-not-found    skip objects that do not exist instead of refusing`,
  options: { ...nameOption, filename: { type: 'string', short: 'f', multiple: true }, 'ignore-not-found': { type: 'boolean' } },
  async run(args, io) {
    const paths = files(args);
    const lab = await Lab.open(labName(args));
    io.out(renderChanges(await lab.delete(paths, { ignoreNotFound: args.values['ignore-not-found'] === true })));
    return 0;
  },
};

const label: Command = {
  name: 'label',
  summary: 'Set or remove labels on a namespace or pod (kubectl semantics)',
  usage: ['weft lab label [--name NAME] namespace NAME key=value|key- …', 'weft lab label [--name NAME] pod NAMESPACE/POD key=value|key- … [--overwrite]'],
  help: `key=value sets a label, key- removes it. As with kubectl, changing the value of an existing
label needs --overwrite.

Examples:
  weft lab label namespace demo weft.io/mesh=enabled
  weft lab label pod demo/client-1 weft.io/mesh=disabled
  weft lab label namespace demo weft.io/mesh-

Options:
${NAME_HELP}
  --overwrite        allow changing the value of an existing label`,
  options: { ...nameOption, overwrite: { type: 'boolean' } },
  positionals: { min: 3, max: 100 },
  async run(args, io) {
    const [kind, target, ...changes] = args.positionals;
    if (kind !== 'namespace' && kind !== 'pod' && kind !== 'ns' && kind !== 'pods' && kind !== 'namespaces') {
      throw new UsageError(`can label a namespace or a pod, not '${kind}'`);
    }
    const k = kind.startsWith('n') ? 'namespace' : 'pod';
    const lab = await Lab.open(labName(args));
    const changed = await lab.label(k, target!, changes, { overwrite: args.values.overwrite === true });
    io.out(`${k}/${target} ${changed ? 'labeled' : 'not changed'}\n`);
    return 0;
  },
};

const sweepCmd: Command = {
  name: 'sweep',
  summary: 'Remove what crashed labs left behind',
  usage: ['weft lab sweep [--name NAME]'],
  help: `Removes every lab that is broken (its build was interrupted, or its apps or namespaces are
gone), with all its namespaces, links, cgroups, processes, BPF pins and files. Healthy labs
and labs being changed by a live process are left alone. With --name, only that lab.

Options:
  --name NAME        only this lab`,
  options: nameOption,
  async run(args, io) {
    const r = await sweep(typeof args.values.name === 'string' ? { name: args.values.name } : {});
    io.out(`swept: ${r.swept.join(', ') || '(nothing)'}\nkept (healthy or busy): ${r.kept.join(', ') || '(none)'}\n`);
    return 0;
  },
};

const demo: Command = {
  name: 'demo',
  summary: 'The guided demo: plaintext, live enrolment, mTLS, policies, release (npm start)',
  usage: ['weft lab demo [--name NAME] [--exit]'],
  help: `Brings up a two-node lab with the controller and an agent per node, then walks through,
explaining and checking each step: plaintext traffic before the mesh (seen on the fabric);
the label weft.io/mesh=enabled on namespace demo capturing its running pods (same PIDs);
encrypted traffic with SPIFFE identities; a DENY policy refusing one caller; STRICT refusing
plaintext from outside the mesh; the label removed and the pods released. Prints a summary
and keeps the lab up for exploring until Ctrl-C (SIGINT) or SIGTERM, then tears it down.
\`npm start\` runs this.

Exit code: 0 when every step held, 1 otherwise.

Options:
${NAME_HELP}
  --exit             tear down after the summary instead of waiting for Ctrl-C`,
  options: { ...nameOption, exit: { type: 'boolean' } },
  async run(args, io) {
    return runDemo(labName(args), args.values.exit === true, io);
  },
};

async function runDemo(name: string, exitAtOnce: boolean, io: Io): Promise<number> {
  let stop: () => void = () => undefined;
  const abort = new AbortController();
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const onSignal = () => {
    abort.abort();
    stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    let lab: Lab;
    try {
      lab = await Lab.up({ name, nodes: 2, podsPerNode: 2, mesh: true, onProgress: (m) => io.err(`${m}\n`), signal: abort.signal });
    } catch (err) {
      if (!abort.signal.aborted) throw err;
      io.err(`interrupted; lab '${name}' removed\n`);
      return 130;
    }
    let allHeld = false;
    try {
      io.out(renderStatus(lab.status()));
      const steps = await walkThrough(lab, { say: (t) => io.out(t), progress: (t) => io.err(`${t}\n`) }, abort.signal);
      io.out(renderSummary(steps));
      allHeld = !abort.signal.aborted && steps.every((s) => s.ok);
      if (!exitAtOnce && !abort.signal.aborted) {
        const [a, b] = lab.status().pods;
        io.out(`\nThe lab stays up for exploring until Ctrl-C. Try, in another terminal:\n` +
          `  npx weft lab exec --name ${name} ${a?.namespace}/${a?.name} -- node -e "fetch('http://${b?.ip}:8080/hi').then(r=>r.text()).then(console.log)"\n` +
          `  npx weft lab label --name ${name} namespace demo weft.io/mesh=enabled\n` +
          `  npx weft workloads --lab ${name} --node node1\n`);
        // Signal handlers do not keep Node's event loop alive; a timer does.
        const keepAlive = setInterval(() => undefined, 1 << 30);
        await stopped.finally(() => clearInterval(keepAlive));
      }
    } finally {
      io.err('tearing the lab down\n');
      await lab.down();
      io.err(`lab '${name}' is down\n`);
    }
    return allHeld ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

const restartAgent: Command = {
  name: 'restart-agent',
  summary: "Restart a node's agent without dropping connections (new beside old, then SIGTERM the old)",
  usage: ['weft lab restart-agent [--name NAME] [--drain-deadline 5s] NODE'],
  options: { ...nameOption, 'drain-deadline': { type: 'string' } },
  positionals: { min: 1, max: 1 },
  async run(args, io) {
    const lab = await Lab.open(labName(args));
    const node = args.positionals[0]!;
    const dd = args.values['drain-deadline'];
    const r = await lab.restartAgent(node, typeof dd === 'string' ? { drainDeadline: dd } : {});
    io.err(`agent on ${node}: pid ${r.pid} ready; old agent(s) ${r.oldPids.join(', ') || 'none'} drained and stopped\n`);
    return 0;
  },
};

export const labCommand: Command = {
  name: 'lab',
  summary: 'A multi-node cluster in network namespaces, for tests, demos and benchmarks',
  usage: ['weft lab <command> [flags]'],
  help: `The lab is a small cluster on this machine: nodes and pods are network namespaces, each pod
runs a sample app in a kubelet-style cgroup, and the cluster state is kept as Kubernetes
manifests in /var/run/weft/lab/<name>/. Needs root. See agent/src/lab/README.md.`,
  subcommands: [up, status, exec, apply, del, label, down, sweepCmd, demo, restartAgent],
};
