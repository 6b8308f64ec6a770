// Shared pieces of the redirect tests: stand-in listeners opened inside a pod netns (as the
// proxy will), running the in-pod client, and reading back what the kernel has attached.
import { createServer, type Server, type Socket } from 'node:net';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { listenInNetns, netnsCookie } from '../../agent/src/native/index.js';
import type { Lab } from '../../agent/src/lab/index.js';
import { addressPlan } from '../../agent/src/lab/index.js';
import type { Redirector } from '../../agent/src/redirect/index.js';

export const CLIENT = fileURLToPath(new URL('./redirect-client.js', import.meta.url));

/** A listener inside `netns` that answers each connection with one line and closes. */
export async function lineServer(netns: string, host: string, port: number, line: (s: Socket) => Promise<string> | string): Promise<Server> {
  const fd = await listenInNetns({ netns, host, port, backlog: 4096 });
  const server = createServer((s) => {
    s.on('error', () => undefined);
    Promise.resolve(line(s)).then((l) => s.end(`${l}\n`), (e) => s.end(`error ${(e as Error).message}\n`));
  });
  await new Promise<void>((res) => server.listen({ fd }, res));
  return server;
}

/** Stand-in for the proxy's :15001: answers with the original destination the maps hold. */
export function outboundStandIn(r: Redirector, netns: string): Promise<Server> {
  return lineServer(netns, '127.0.0.1', 15001, async (s) => {
    const d = await r.takeOriginalDestination(netnsCookie(s), s.remotePort!);
    return d ? `orig ${d.address}:${d.port}` : 'orig none';
  });
}

/** Stand-in for the proxy's :15006: answers with the accepted socket's local address. */
export async function inboundStandIn(netns: string): Promise<Server> {
  return lineServer(netns, '0.0.0.0', 15006, (s) => `inbound ${s.localAddress}:${s.localPort}`);
}

export function closeServer(s: Server | undefined): Promise<void> {
  return new Promise((res) => (s ? s.close(() => res()) : res()));
}

export interface ClientResult { host: string; port: number; reply?: string; error?: string }

/** Connects from inside a pod (its cgroup and netns) to every target at once. */
export async function clientInPod(lab: Lab, ref: string, targets: { host: string; port: number }[], timeoutMs = 20_000, mark?: number): Promise<ClientResult[]> {
  const r = await lab.exec(ref, [process.execPath, CLIENT, JSON.stringify({ targets, timeoutMs, mark })], { timeoutMs: timeoutMs + 30_000 });
  if (r.code !== 0) throw new Error(`client in ${ref} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ClientResult[];
}

/** Same client, run in a node's netns (not in any pod cgroup): a kubelet probe. */
export async function clientInNode(lab: Lab, node: string, targets: { host: string; port: number }[], timeoutMs = 10_000): Promise<ClientResult[]> {
  const r = await lab.execInNode(node, [process.execPath, CLIENT, JSON.stringify({ targets, timeoutMs })], { timeoutMs: timeoutMs + 30_000 });
  if (r.code !== 0) throw new Error(`client in ${node} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ClientResult[];
}

/** The node's address on its pod links (the pods' gateway; kubelet probes come from it). */
export function podGateway(lab: Lab, node: string): string {
  const st = lab.status();
  const index = st.nodes.findIndex((n) => n.name === node) + 1;
  return addressPlan(st.slot).podGateway(index);
}

/** Names of the programs attached directly at a cgroup for an attach type, via bpftool. */
export function bpftoolCgroup(cgroup: string): { attach_type: string; name: string }[] {
  const r = spawnSync('bpftool', ['-j', 'cgroup', 'show', cgroup], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bpftool cgroup show ${cgroup}: ${r.stderr}`);
  return r.stdout.trim() ? (JSON.parse(r.stdout) as { attach_type: string; name: string }[]) : [];
}

/** tc filters on ingress of `dev` inside a netns (text of `tc filter show`). */
export function tcFilters(netns: string, dev = 'eth0'): string {
  const r = spawnSync('nsenter', [`--net=${netns}`, 'tc', 'filter', 'show', 'dev', dev, 'ingress'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : `error: ${r.stderr}`;
}

export function tcQdiscs(netns: string, dev = 'eth0'): string {
  const r = spawnSync('nsenter', [`--net=${netns}`, 'tc', 'qdisc', 'show', 'dev', dev], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : `error: ${r.stderr}`;
}

export const rand = (): string => Math.random().toString(36).slice(2, 7);
