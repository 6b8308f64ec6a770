// Network namespaces, the fabric bridge, node and pod veth pairs and routes, made with
// iproute2 in batch mode (one `ip` process per namespace per step, not one per link).
// `ip -n` is used for configuration only; processes never start through `ip netns exec`,
// which would remount /sys and hide bpffs and the cgroup mount from them.
import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTool as run } from './run-tool.js';
import type { AddressPlan } from './address-plan.js';
import { FABRIC_BRIDGE, NETNS_DIR, NODE_IFACE, POD_IFACE, fabricPort, netnsPath } from './names.js';

/** Runs `ip [-n netns] -batch -`; the batch goes in through a file, so an early exit of ip cannot EPIPE us. */
async function ipBatch(netns: string | undefined, lines: string[], force = false): Promise<void> {
  if (lines.length === 0) return;
  const file = join(tmpdir(), `weft-lab-ip-${process.pid}-${randomBytes(4).toString('hex')}.batch`);
  writeFileSync(file, lines.join('\n') + '\n');
  try {
    const args = [...(netns ? ['-n', netns] : []), ...(force ? ['-force'] : []), '-batch', file];
    await run('ip', args, { allowFailure: force });
  } finally {
    rmSync(file, { force: true });
  }
}

export function listNetns(prefix: string): string[] {
  try {
    return readdirSync(NETNS_DIR).filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
}

export async function createNetnses(names: string[]): Promise<void> {
  await ipBatch(undefined, names.map((n) => `netns add ${n}`));
}

/** Deletes the named netns, ignoring ones already gone. */
export async function deleteNetnses(names: string[]): Promise<void> {
  await ipBatch(undefined, names.map((n) => `netns del ${n}`), true);
}

/** Sets a per-netns sysctl by writing /proc/sys from inside the netns (no dependency on procps). */
async function sysctl(netns: string, key: string, value: string): Promise<void> {
  const file = `/proc/sys/${key.replace(/\./g, '/')}`;
  await run('nsenter', [`--net=${netnsPath(netns)}`, '--', 'sh', '-c', 'echo "$1" > "$2"', 'weft-lab-sysctl', value, file]);
}

export interface NodeNet {
  index: number;
  name: string;
  netnsName: string;
}

/** The fabric bridge and each node's link to it; nodes forward and route to each other's pod CIDRs. */
export async function buildFabric(plan: AddressPlan, fabricNetns: string, nodes: NodeNet[]): Promise<void> {
  await ipBatch(fabricNetns, [
    'link set lo up',
    `link add ${FABRIC_BRIDGE} type bridge`,
    `link set ${FABRIC_BRIDGE} up`,
    `addr add ${plan.fabricIp}/24 dev ${FABRIC_BRIDGE}`,
    ...nodes.flatMap((n) => [
      `link add ${fabricPort(n.name)} type veth peer name ${NODE_IFACE} netns ${n.netnsName}`,
      `link set ${fabricPort(n.name)} master ${FABRIC_BRIDGE}`,
      `link set ${fabricPort(n.name)} up`,
    ]),
  ]);
  await Promise.all(
    nodes.map(async (n) => {
      await ipBatch(n.netnsName, [
        'link set lo up',
        `link set ${NODE_IFACE} up`,
        `addr add ${plan.nodeIp(n.index)}/24 dev ${NODE_IFACE}`,
        ...nodes.filter((o) => o !== n).map((o) => `route add ${plan.podCidr(o.index)} via ${plan.nodeIp(o.index)} dev ${NODE_IFACE}`),
      ]);
      await sysctl(n.netnsName, 'net.ipv4.ip_forward', '1');
    }),
  );
}

export interface PodNet {
  netnsName: string;
  hostVeth: string;
  ip: string;
}

/** Veth pairs from a node to its pods (pod side eth0, /32 address, default route via the node). */
export async function attachPods(plan: AddressPlan, nodeIndex: number, nodeNetns: string, pods: PodNet[]): Promise<void> {
  const gw = plan.podGateway(nodeIndex);
  await ipBatch(nodeNetns, pods.flatMap((p) => [
    `link add ${p.hostVeth} type veth peer name ${POD_IFACE} netns ${p.netnsName}`,
    `link set ${p.hostVeth} up`,
    `addr add ${gw}/32 dev ${p.hostVeth}`,
    `route add ${p.ip}/32 dev ${p.hostVeth}`,
  ]));
  await Promise.all(pods.map((p) => ipBatch(p.netnsName, [
    'link set lo up',
    `link set ${POD_IFACE} up`,
    `addr add ${p.ip}/32 dev ${POD_IFACE}`,
    `route add ${gw}/32 dev ${POD_IFACE} scope link`,
    `route add default via ${gw} dev ${POD_IFACE}`,
  ])));
}
