// Encode/decode of every map key and value the BPF programs share with the agent. This is the
// ONLY module that knows the byte layouts of bpf/weft_types.h; `LAYOUTS` lists each struct's
// size and field offsets so a unit test can compare them with the BTF clang emitted.
import { isIPv4 } from 'node:net';
import { InvalidArgumentError } from '../common/errors.js';

export const AF_INET = 2;
export const AF_INET6 = 10;
export const PORT_OUTBOUND = 15001;
export const PORT_INBOUND = 15006;
export const PORT_HBONE = 15008;
export const MAX_EXCLUDED_PORTS = 16;
export const UID_LEN = 64;
export const PATH_LEN = 256;
export const IFNAME_LEN = 16;

export const POD_ENROLLED = 1 << 0;
export const ENROL_PENDING = 1;
export const ENROL_DONE = 2;
export const ENROL_CREATED_CLSACT = 1 << 0;

/** Size and field offsets (bytes) of each shared struct, as in bpf/weft_types.h. */
export const LAYOUTS = {
  weft_pod_config: { size: 64, fields: { flags: 0, ip4: 4, node_ip4: 8, nexcluded: 12, _pad0: 14, excluded_ports: 16, _reserved: 48 } },
  weft_orig_dst: { size: 24, fields: { addr: 0, port: 16, family: 18, _pad0: 19, _pad1: 20 } },
  weft_orig_key: { size: 16, fields: { netns_cookie: 0, port: 8, family: 10, _pad0: 11, _pad1: 12 } },
  weft_uid: { size: 64, fields: { uid: 0 } },
  weft_ip_key: { size: 20, fields: { addr: 0, family: 16, _pad0: 17 } },
  weft_enrolment: {
    size: 568,
    fields: { netns_cookie: 0, cgroup_id: 8, state: 16, flags: 20, ifindex: 24, ip4: 28, node_ip4: 32, _pad0: 36, ifname: 40, netns_path: 56, cgroup_path: 312 },
  },
} as const;

const F = {
  pod: LAYOUTS.weft_pod_config.fields,
  orig: LAYOUTS.weft_orig_dst.fields,
  okey: LAYOUTS.weft_orig_key.fields,
  enr: LAYOUTS.weft_enrolment.fields,
};

/** IPv4 dotted quad → the 4 bytes in network order written at `off`. Empty/undefined → zeros. */
function writeIp4(buf: Buffer, off: number, ip: string | undefined, what: string): void {
  if (ip === undefined || ip === '') return;
  if (!isIPv4(ip)) throw new InvalidArgumentError(what, `"${ip}" is not an IPv4 address (IPv6 capture is not shipped yet)`);
  ip.split('.').forEach((o, i) => buf.writeUInt8(Number(o), off + i));
}

function readIp4(buf: Buffer, off: number): string | undefined {
  const b = buf.subarray(off, off + 4);
  if (b.every((x) => x === 0)) return undefined;
  return Array.from(b).join('.');
}

function writeCString(buf: Buffer, off: number, len: number, s: string, what: string): void {
  const bytes = Buffer.from(s, 'utf8');
  if (bytes.length >= len) throw new InvalidArgumentError(what, `longer than ${len - 1} bytes`);
  if (bytes.includes(0)) throw new InvalidArgumentError(what, 'contains a NUL byte');
  bytes.copy(buf, off);
}

function readCString(buf: Buffer, off: number, len: number): string {
  const b = buf.subarray(off, off + len);
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? len : end).toString('utf8');
}

function expectSize(buf: Buffer, struct: keyof typeof LAYOUTS): void {
  const size = LAYOUTS[struct].size;
  if (buf.length !== size) throw new InvalidArgumentError(struct, `expected ${size} bytes, got ${buf.length}`);
}

export function encodeU64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}

export function decodeU64(b: Buffer): bigint {
  return b.readBigUInt64LE(0);
}

/** Key of weft_pods and weft_in_listen: the netns cookie. */
export const encodeNetnsKey = encodeU64;

export interface PodConfig {
  enrolled: boolean;
  ip4?: string | undefined;
  nodeIp4?: string | undefined;
  excludedPorts: number[];
}

export function encodePodConfig(c: PodConfig): Buffer {
  const b = Buffer.alloc(LAYOUTS.weft_pod_config.size);
  b.writeUInt32LE(c.enrolled ? POD_ENROLLED : 0, F.pod.flags);
  writeIp4(b, F.pod.ip4, c.ip4, 'pod.ip');
  writeIp4(b, F.pod.node_ip4, c.nodeIp4, 'pod.nodeGatewayIp');
  const ports = [...new Set(c.excludedPorts)];
  if (ports.length > MAX_EXCLUDED_PORTS) {
    throw new InvalidArgumentError('pod.excludePorts', `at most ${MAX_EXCLUDED_PORTS} ports can be excluded, got ${ports.length}`);
  }
  for (const p of ports) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new InvalidArgumentError('pod.excludePorts', `${p} is not a TCP port (1-65535)`);
  }
  b.writeUInt16LE(ports.length, F.pod.nexcluded);
  ports.forEach((p, i) => b.writeUInt16LE(p, F.pod.excluded_ports + 2 * i));
  return b;
}

export function decodePodConfig(b: Buffer): PodConfig {
  expectSize(b, 'weft_pod_config');
  const n = Math.min(b.readUInt16LE(F.pod.nexcluded), MAX_EXCLUDED_PORTS);
  const excludedPorts: number[] = [];
  for (let i = 0; i < n; i++) excludedPorts.push(b.readUInt16LE(F.pod.excluded_ports + 2 * i));
  return {
    enrolled: (b.readUInt32LE(F.pod.flags) & POD_ENROLLED) !== 0,
    ip4: readIp4(b, F.pod.ip4),
    nodeIp4: readIp4(b, F.pod.node_ip4),
    excludedPorts,
  };
}

export interface OrigKey {
  netnsCookie: bigint;
  /** The client socket's local port = the peer port of the socket the proxy accepted. */
  port: number;
  family?: typeof AF_INET | typeof AF_INET6;
}

export function encodeOrigKey(k: OrigKey): Buffer {
  const b = Buffer.alloc(LAYOUTS.weft_orig_key.size);
  b.writeBigUInt64LE(k.netnsCookie, F.okey.netns_cookie);
  b.writeUInt16LE(k.port, F.okey.port);
  b.writeUInt8(k.family ?? AF_INET, F.okey.family);
  return b;
}

export function decodeOrigKey(b: Buffer): Required<OrigKey> {
  expectSize(b, 'weft_orig_key');
  return {
    netnsCookie: b.readBigUInt64LE(F.okey.netns_cookie),
    port: b.readUInt16LE(F.okey.port),
    family: b.readUInt8(F.okey.family) === AF_INET6 ? AF_INET6 : AF_INET,
  };
}

export interface OrigDst {
  address: string;
  port: number;
  family: typeof AF_INET | typeof AF_INET6;
}

export function encodeOrigDst(d: OrigDst): Buffer {
  const b = Buffer.alloc(LAYOUTS.weft_orig_dst.size);
  if (d.family !== AF_INET) throw new InvalidArgumentError('origDst.family', 'only AF_INET is shipped');
  writeIp4(b, F.orig.addr, d.address, 'origDst.address');
  b.writeUInt16LE(d.port, F.orig.port);
  b.writeUInt8(d.family, F.orig.family);
  return b;
}

export function decodeOrigDst(b: Buffer): OrigDst {
  expectSize(b, 'weft_orig_dst');
  const family = b.readUInt8(F.orig.family);
  const port = b.readUInt16LE(F.orig.port);
  if (family === AF_INET6) {
    const parts: string[] = [];
    for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(F.orig.addr + i).toString(16));
    return { address: parts.join(':'), port, family: AF_INET6 };
  }
  return { address: readIp4(b, F.orig.addr) ?? '0.0.0.0', port, family: AF_INET };
}

/** Key of weft_pod_ips: a pod address (IPv4 shipped; the key has room for IPv6). */
export function encodeIpKey(ip: string): Buffer {
  const b = Buffer.alloc(LAYOUTS.weft_ip_key.size);
  writeIp4(b, LAYOUTS.weft_ip_key.fields.addr, ip, 'pod.ip');
  b.writeUInt8(AF_INET, LAYOUTS.weft_ip_key.fields.family);
  return b;
}

export function decodeIpKey(b: Buffer): string {
  expectSize(b, 'weft_ip_key');
  return readIp4(b, LAYOUTS.weft_ip_key.fields.addr) ?? '0.0.0.0';
}

export function encodeUid(uid: string): Buffer {
  const b = Buffer.alloc(LAYOUTS.weft_uid.size);
  writeCString(b, 0, UID_LEN, uid, 'pod.uid');
  return b;
}

export function decodeUid(b: Buffer): string {
  expectSize(b, 'weft_uid');
  return readCString(b, 0, UID_LEN);
}

export interface Enrolment {
  netnsCookie: bigint;
  cgroupId: bigint;
  state: typeof ENROL_PENDING | typeof ENROL_DONE;
  createdClsact: boolean;
  ifindex: number;
  ip4?: string | undefined;
  nodeIp4?: string | undefined;
  ifname: string;
  netnsPath: string;
  cgroupPath: string;
}

export function encodeEnrolment(e: Enrolment): Buffer {
  const b = Buffer.alloc(LAYOUTS.weft_enrolment.size);
  b.writeBigUInt64LE(e.netnsCookie, F.enr.netns_cookie);
  b.writeBigUInt64LE(e.cgroupId, F.enr.cgroup_id);
  b.writeUInt32LE(e.state, F.enr.state);
  b.writeUInt32LE(e.createdClsact ? ENROL_CREATED_CLSACT : 0, F.enr.flags);
  b.writeUInt32LE(e.ifindex, F.enr.ifindex);
  writeIp4(b, F.enr.ip4, e.ip4, 'pod.ip');
  writeIp4(b, F.enr.node_ip4, e.nodeIp4, 'pod.nodeGatewayIp');
  writeCString(b, F.enr.ifname, IFNAME_LEN, e.ifname, 'pod.ifname');
  writeCString(b, F.enr.netns_path, PATH_LEN, e.netnsPath, 'pod.netnsPath');
  writeCString(b, F.enr.cgroup_path, PATH_LEN, e.cgroupPath, 'pod.cgroupPath');
  return b;
}

export function decodeEnrolment(b: Buffer): Enrolment {
  expectSize(b, 'weft_enrolment');
  return {
    netnsCookie: b.readBigUInt64LE(F.enr.netns_cookie),
    cgroupId: b.readBigUInt64LE(F.enr.cgroup_id),
    state: b.readUInt32LE(F.enr.state) === ENROL_DONE ? ENROL_DONE : ENROL_PENDING,
    createdClsact: (b.readUInt32LE(F.enr.flags) & ENROL_CREATED_CLSACT) !== 0,
    ifindex: b.readUInt32LE(F.enr.ifindex),
    ip4: readIp4(b, F.enr.ip4),
    nodeIp4: readIp4(b, F.enr.node_ip4),
    ifname: readCString(b, F.enr.ifname, IFNAME_LEN),
    netnsPath: readCString(b, F.enr.netns_path, PATH_LEN),
    cgroupPath: readCString(b, F.enr.cgroup_path, PATH_LEN),
  };
}
