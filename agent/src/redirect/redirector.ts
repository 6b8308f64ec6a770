// Enrol and release pods: attach the outbound cgroup programs (pinned links), the inbound tc
// filter in the pod netns, and the pod's entries in the shared maps — and undo exactly that.
// A registry map (weft_enrolments, pinned) records each enrolment *before* anything is
// attached, so an agent restarted after SIGKILL can find and finish or undo every step.
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isIPv4 } from 'node:net';
import { InvalidArgumentError, WeftError } from '../common/errors.js';
import { logger } from '../common/log.js';
import {
  decodeEnrolment, decodeOrigKey, decodeUid, encodeEnrolment, encodeNetnsKey, encodePodConfig, encodeU64, encodeUid, encodeIpKey,
  ENROL_DONE, ENROL_PENDING, type Enrolment, type OrigDst, decodePodConfig, type PodConfig,
} from './codec.js';
import { PodGoneError, PodNotEnrolledError, RedirectAttachError, RedirectSetupError } from './errors.js';
import type { Kernel, LoadedPrograms } from './kernel.js';
import { KeyedMutex } from './keyed-mutex.js';
import { takeOriginalDestination } from './orig-dst.js';
import { CGROUP_LINKS, PinLayout, checkUid, type CgroupLinkName } from './pins.js';

const log = logger('redirect');

export interface PodSpec {
  uid: string;
  /** e.g. /run/netns/weft-lab-n1-p1 or /proc/<pid>/ns/net */
  netnsPath: string;
  /** The pod's cgroup directory (absolute, under the cgroup v2 mount). */
  cgroupPath: string;
  /** Pod IPv4. */
  ip: string;
  /** The node's address on the pod link: health probes from it reach the app unsteered. */
  nodeGatewayIp?: string | undefined;
  /** Outbound destination ports never captured (at most 16). */
  excludePorts?: number[] | undefined;
  /** The pod's interface inside its netns; default eth0. */
  ifname?: string | undefined;
}

export interface EnrolOptions {
  /**
   * The proxy's :15006 listening socket in the pod netns. Given here it is in place before
   * the pod is switched on; otherwise new inbound plaintext is dropped (fail closed) until
   * setInboundListener() is called.
   */
  inboundListenerFd?: number;
}

export interface EnrolledPod {
  uid: string;
  netnsPath: string;
  cgroupPath: string;
  netnsCookie: bigint;
  cgroupId: bigint;
  ifindex: number;
  ip: string | undefined;
  nodeGatewayIp: string | undefined;
  /** false when an earlier enrolment was interrupted (crash) and not yet finished or undone. */
  complete: boolean;
}

export interface PodInspection {
  pod: EnrolledPod;
  config: PodConfig | undefined;
  inboundListener: boolean;
  /** Names of the programs attached directly at the pod cgroup, per attach point. */
  cgroupPrograms: Record<CgroupLinkName, string[]>;
  /** Program id of the tc filter in Weft's slot on the pod's interface. */
  tcProgId: number | undefined;
  pinnedLinks: string[];
}

export interface ReconcileResult {
  enrolled: string[];
  released: string[];
  failed: { uid: string; error: WeftError }[];
}

export interface RedirectorOptions {
  /** Names this agent's pin directory; e.g. the lab name + node name. */
  agentId: string;
  /** bpffs mount; default /sys/fs/bpf. */
  bpffs?: string;
  /** Directory with connect4/connect6/sockops/tc_ingress .bpf.o; default $WEFT_BPF_OBJECT_DIR or build/bpf of this package. */
  objectDir?: string;
  /** SO_MARK of the agent's own sockets, never captured; default 0x5746. */
  bypassMark?: number;
  /** Kernel operations; default the native facade. */
  kernel?: Kernel;
}

export const DEFAULT_BYPASS_MARK = 0x5746;

function defaultObjectDir(): string {
  if (process.env.WEFT_BPF_OBJECT_DIR) return process.env.WEFT_BPF_OBJECT_DIR;
  // dist/agent/src/redirect → <root>/build/bpf
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'build', 'bpf');
}

function toEnrolled(uid: string, e: Enrolment): EnrolledPod {
  return {
    uid, netnsPath: e.netnsPath, cgroupPath: e.cgroupPath, netnsCookie: e.netnsCookie, cgroupId: e.cgroupId, ifindex: e.ifindex,
    ip: e.ip4, nodeGatewayIp: e.nodeIp4, complete: e.state === ENROL_DONE,
  };
}

function checkSpec(pod: PodSpec): void {
  if (!pod || typeof pod !== 'object') throw new InvalidArgumentError('pod', 'expected an object {uid, netnsPath, cgroupPath, ip}');
  checkUid(pod.uid);
  for (const k of ['netnsPath', 'cgroupPath'] as const) {
    if (typeof pod[k] !== 'string' || !pod[k].startsWith('/')) throw new InvalidArgumentError(`pod.${k}`, `expected an absolute path, got ${JSON.stringify(pod[k])}`);
  }
  if (!isIPv4(pod.ip)) throw new InvalidArgumentError('pod.ip', `"${pod.ip}" is not an IPv4 address (IPv6 capture is not shipped yet)`);
  if (pod.nodeGatewayIp !== undefined && !isIPv4(pod.nodeGatewayIp)) throw new InvalidArgumentError('pod.nodeGatewayIp', `"${pod.nodeGatewayIp}" is not an IPv4 address`);
  if (pod.ifname !== undefined && !/^[A-Za-z0-9._-]{1,15}$/.test(pod.ifname)) throw new InvalidArgumentError('pod.ifname', `"${pod.ifname}" is not an interface name`);
}

export class Redirector {
  readonly agentId: string;
  readonly pins: PinLayout;
  private readonly kernel: Kernel;
  private readonly progs: LoadedPrograms;
  private readonly mutex = new KeyedMutex();
  private closed = false;

  private constructor(agentId: string, pins: PinLayout, kernel: Kernel, progs: LoadedPrograms) {
    this.agentId = agentId;
    this.pins = pins;
    this.kernel = kernel;
    this.progs = progs;
  }

  /**
   * Load the programs for this agent, reusing its pinned maps when they exist (after a
   * restart). Pods already enrolled stay enrolled; call reconcile() with the desired set.
   */
  static async open(opts: RedirectorOptions): Promise<Redirector> {
    const pins = new PinLayout(opts.bpffs ?? '/sys/fs/bpf', opts.agentId);
    const kernel = opts.kernel ?? (await import('./native-kernel.js')).nativeKernel;
    const objectDir = opts.objectDir ?? defaultObjectDir();
    for (const o of ['connect4', 'connect6', 'sockops', 'tc_ingress']) {
      if (!existsSync(join(objectDir, `${o}.bpf.o`))) throw new RedirectSetupError(`BPF object ${join(objectDir, `${o}.bpf.o`)} is missing`);
    }
    try {
      mkdirSync(pins.mapsDir, { recursive: true });
      mkdirSync(pins.podsDir, { recursive: true });
    } catch (err) {
      throw new RedirectSetupError(`cannot create ${pins.agentDir} in bpffs: ${(err as Error).message}`, { cause: err });
    }
    let progs: LoadedPrograms;
    try {
      progs = await kernel.load({ objectDir, mapsPinDir: pins.mapsDir, bypassMark: opts.bypassMark ?? DEFAULT_BYPASS_MARK });
    } catch (err) {
      const pinned = readdirSync(pins.mapsDir);
      // libbpf refuses to reuse a pinned map whose type or sizes differ (an older agent's layout).
      const hint = pinned.length
        ? `maps of an earlier agent are pinned in ${pins.mapsDir}; if their layout changed, release its pods with that version or remove ${pins.agentDir} (this detaches everything it holds)`
        : undefined;
      throw new RedirectSetupError(`loading Weft's BPF programs for agent ${opts.agentId} failed: ${(err as Error).message}`, { cause: err, ...(hint ? { hint } : {}) });
    }
    return new Redirector(opts.agentId, pins, kernel, progs);
  }

  /** The pods this agent's pinned registry holds (including interrupted enrolments). */
  async list(): Promise<EnrolledPod[]> {
    const out: EnrolledPod[] = [];
    for (const k of await this.progs.maps.enrolments.keys()) {
      const v = await this.progs.maps.enrolments.lookup(k);
      if (v) out.push(toEnrolled(decodeUid(k), decodeEnrolment(v)));
    }
    return out.sort((a, b) => a.uid.localeCompare(b.uid));
  }

  async get(uid: string): Promise<EnrolledPod | undefined> {
    const v = await this.progs.maps.enrolments.lookup(encodeUid(checkUid(uid)));
    return v ? toEnrolled(uid, decodeEnrolment(v)) : undefined;
  }

  /**
   * Capture the pod's traffic. Idempotent: enrolling an enrolled pod repairs whatever is
   * missing (a lost tc filter, a defunct link) and applies changed settings, never attaching
   * twice. If the pod's netns or cgroup is gone (also mid-way), throws PodGoneError and leaves
   * nothing attached.
   */
  async enrol(pod: PodSpec, options: EnrolOptions = {}): Promise<EnrolledPod> {
    this.ensureOpen();
    checkSpec(pod);
    const fd = options.inboundListenerFd;
    if (fd !== undefined && (!Number.isInteger(fd) || fd < 0)) throw new InvalidArgumentError('inboundListenerFd', `${fd} is not a file descriptor`);
    return this.mutex.run(pod.uid, () => this.enrolLocked(pod, fd));
  }

  /** Undo enrol() exactly. Returns false when the pod was not enrolled. Idempotent. */
  async release(uid: string): Promise<boolean> {
    this.ensureOpen();
    checkUid(uid);
    return this.mutex.run(uid, () => this.releaseLocked(uid));
  }

  /**
   * Make the pinned state match `desired`: enrol (or repair) every desired pod, release every
   * other pod this agent has enrolled, and remove pins that belong to no registered pod.
   */
  async reconcile(desired: PodSpec[]): Promise<ReconcileResult> {
    this.ensureOpen();
    const want = new Map(desired.map((p) => [p.uid, p]));
    const result: ReconcileResult = { enrolled: [], released: [], failed: [] };
    const registered = new Set((await this.list()).map((p) => p.uid));
    // Pins without a registry entry: a crash can leave none today (the entry is written
    // first and deleted last), but an older or foreign layout might.
    for (const uid of existsSync(this.pins.podsDir) ? readdirSync(this.pins.podsDir) : []) {
      if (!registered.has(uid) && !want.has(uid)) await this.mutex.run(uid, () => this.removePodPins(uid));
    }
    await Promise.all([...registered].filter((uid) => !want.has(uid)).map(async (uid) => {
      try {
        await this.release(uid);
        result.released.push(uid);
      } catch (err) {
        result.failed.push({ uid, error: asWeftError(uid, 'release', err) });
      }
    }));
    await Promise.all([...want.values()].map(async (pod) => {
      try {
        await this.enrol(pod);
        result.enrolled.push(pod.uid);
      } catch (err) {
        result.failed.push({ uid: pod.uid, error: asWeftError(pod.uid, 'enrol', err) });
      }
    }));
    result.enrolled.sort();
    result.released.sort();
    return result;
  }

  /**
   * Hand the proxy's :15006 listening socket (fd) for this pod to tc ingress. Until it is
   * set (and whenever its socket is closed), new inbound plaintext to the pod is dropped.
   */
  async setInboundListener(uid: string, listenerFd: number): Promise<void> {
    this.ensureOpen();
    const pod = await this.get(uid);
    if (!pod || !pod.complete) throw new PodNotEnrolledError(uid);
    if (!Number.isInteger(listenerFd) || listenerFd < 0) throw new InvalidArgumentError('listenerFd', `${listenerFd} is not a file descriptor`);
    await this.progs.maps.inListen.update(encodeNetnsKey(pod.netnsCookie), encodeU64(BigInt(listenerFd)));
  }

  /**
   * The original destination of a connection the proxy accepted on :15001, from the
   * accepted socket's SO_NETNS_COOKIE and peer port. The entry is deleted on read.
   */
  async takeOriginalDestination(netnsCookie: bigint, peerPort: number): Promise<OrigDst | undefined> {
    return takeOriginalDestination(this.progs.maps.origDst, netnsCookie, peerPort);
  }

  /**
   * What the kernel holds for an enrolled pod right now: programs attached at its cgroup, the
   * tc filter in our slot, its settings and whether a :15006 listener is registered. For
   * `weft check`, debugging and tests; undefined when the pod is not registered.
   */
  async inspect(uid: string): Promise<PodInspection | undefined> {
    const pod = await this.get(uid);
    if (!pod) return undefined;
    const nsKey = encodeNetnsKey(pod.netnsCookie);
    const cfgRaw = await this.progs.maps.pods.lookup(nsKey);
    const cgroupPrograms: Record<string, string[]> = {};
    for (const name of CGROUP_LINKS) {
      cgroupPrograms[name] = existsSync(pod.cgroupPath) ? (await this.kernel.cgroupPrograms(pod.cgroupPath, name)).map((p) => p.name) : [];
    }
    let tcProgId: number | undefined;
    if (existsSync(pod.netnsPath)) {
      const raw = await this.progs.maps.enrolments.lookup(encodeUid(uid));
      tcProgId = raw ? await this.kernel.tcQuery(pod.netnsPath, decodeEnrolment(raw).ifname).catch(() => undefined) : undefined;
    }
    return {
      pod,
      config: cfgRaw ? decodePodConfig(cfgRaw) : undefined,
      inboundListener: (await this.progs.maps.inListen.lookup(nsKey)) !== undefined,
      cgroupPrograms: cgroupPrograms as PodInspection['cgroupPrograms'],
      tcProgId,
      pinnedLinks: existsSync(this.pins.podDir(uid)) ? readdirSync(this.pins.podDir(uid)).sort() : [],
    };
  }

  /** Counts of entries in the shared maps (tests and `weft check` use it to spot leaks). */
  async mapCounts(): Promise<{ pods: number; podIps: number; origDst: number; inListen: number; enrolments: number }> {
    const m = this.progs.maps;
    return {
      pods: (await m.pods.keys()).length,
      podIps: (await m.podIps.keys()).length,
      origDst: (await m.origDst.keys()).length,
      inListen: (await m.inListen.keys()).length,
      enrolments: (await m.enrolments.keys()).length,
    };
  }

  /** Release every pod and remove this agent's whole pin directory (maps included). */
  async purge(): Promise<void> {
    this.ensureOpen();
    for (const p of await this.list()) await this.release(p.uid);
    for (const uid of existsSync(this.pins.podsDir) ? readdirSync(this.pins.podsDir) : []) await this.removePodPins(uid);
    this.close();
    const { rmSync } = await import('node:fs');
    // Unpinning the maps frees them once no program references them any more.
    rmSync(this.pins.agentDir, { recursive: true, force: true });
  }

  /** Close the loaded objects. Pins (and so every enrolled pod) stay in place. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.progs.close();
  }

  private ensureOpen(): void {
    if (this.closed) throw new WeftError('WEFT_E_REDIRECT_CLOSED', `the redirector of agent ${this.agentId} is closed`, { hint: 'open a new one with Redirector.open()' });
  }

  private async checkPresent(pod: PodSpec): Promise<void> {
    if (!existsSync(pod.netnsPath)) throw new PodGoneError(pod.uid, 'netns', pod.netnsPath);
    if (!existsSync(pod.cgroupPath) || !statSync(pod.cgroupPath).isDirectory()) throw new PodGoneError(pod.uid, 'cgroup', pod.cgroupPath);
  }

  private async enrolLocked(pod: PodSpec, inboundListenerFd: number | undefined): Promise<EnrolledPod> {
    const uidKey = encodeUid(pod.uid);
    const reg = this.progs.maps.enrolments;
    const ifname = pod.ifname ?? 'eth0';
    await this.checkPresent(pod);
    let netnsCookie: bigint;
    let cgroupId: bigint;
    let ifindex: number;
    try {
      netnsCookie = await this.kernel.netnsCookie(pod.netnsPath);
      cgroupId = await this.kernel.cgroupId(pod.cgroupPath);
      ifindex = await this.kernel.ifindex(pod.netnsPath, ifname);
    } catch (err) {
      throw await this.classify(pod, 'reading the pod netns/cgroup', err);
    }
    // The config is checked (encoded) before anything is written: bad input changes nothing.
    const config = encodePodConfig({ enrolled: true, ip4: pod.ip, nodeIp4: pod.nodeGatewayIp, excludedPorts: pod.excludePorts ?? [] });

    const prevRaw = await reg.lookup(uidKey);
    let prev = prevRaw ? decodeEnrolment(prevRaw) : undefined;
    if (prev && (prev.netnsCookie !== netnsCookie || prev.cgroupId !== cgroupId || prev.ifindex !== ifindex || prev.ifname !== ifname || prev.netnsPath !== pod.netnsPath || prev.cgroupPath !== pod.cgroupPath)) {
      // Same uid, different sandbox (pod restarted its netns, or a stale record): start over.
      await this.releaseLocked(pod.uid);
      prev = undefined;
    }
    const record: Enrolment = {
      netnsCookie, cgroupId, state: ENROL_PENDING, createdClsact: prev?.createdClsact ?? false, ifindex, ip4: pod.ip, nodeIp4: pod.nodeGatewayIp, ifname,
      netnsPath: pod.netnsPath, cgroupPath: pod.cgroupPath,
    };
    const fresh = !prev || prev.state !== ENROL_DONE;
    try {
      // 1. Intent first, so a crash at any later step leaves a record to finish or undo.
      if (fresh) await reg.update(uidKey, encodeEnrolment(record));
      // 2. Cgroup links: keep a live one, replace a defunct one, never add a second.
      mkdirSync(this.pins.podDir(pod.uid), { recursive: true });
      for (const name of CGROUP_LINKS) {
        const pin = this.pins.link(pod.uid, name);
        if (await this.kernel.refreshPinnedLink(this.progs, name, pin, cgroupId)) continue;
        if (existsSync(pin)) await this.kernel.removePinnedLink(pin);
        await this.kernel.attachCgroupPinned(this.progs, name, pod.cgroupPath, pin);
      }
      // 3. tc ingress in the pod netns. Our fixed handle/priority slot means attach replaces,
      //    never doubles; a restarted agent so also moves the pod to its current program.
      const { createdClsact } = await this.kernel.tcAttach(this.progs, pod.netnsPath, ifname);
      if (createdClsact && !record.createdClsact) {
        record.createdClsact = true;
        await reg.update(uidKey, encodeEnrolment(record));
      }
      // 4. Settings last: they switch the already attached programs on for this pod.
      if (prev?.ip4 && prev.ip4 !== pod.ip) await this.progs.maps.podIps.delete(encodeIpKey(prev.ip4));
      await this.progs.maps.podIps.update(encodeIpKey(pod.ip), encodeU64(netnsCookie));
      // The listener before the switch: with it, inbound never sees a fail-closed window.
      if (inboundListenerFd !== undefined) await this.progs.maps.inListen.update(encodeNetnsKey(netnsCookie), encodeU64(BigInt(inboundListenerFd)));
      await this.progs.maps.pods.update(encodeNetnsKey(netnsCookie), config);
      record.state = ENROL_DONE;
      await reg.update(uidKey, encodeEnrolment(record));
      // The pod may have vanished while we attached; do not report success on a ghost.
      await this.checkPresent(pod);
    } catch (err) {
      const error = await this.classify(pod, 'enrolment', err);
      try {
        await this.releaseLocked(pod.uid);
      } catch (cleanupErr) {
        log.error({ uid: pod.uid, err: (cleanupErr as Error).message }, 'rollback after failed enrolment did not finish; reconcile will retry');
      }
      throw error;
    }
    if (fresh) log.info({ uid: pod.uid, netns: pod.netnsPath, ip: pod.ip }, 'pod enrolled');
    return toEnrolled(pod.uid, record);
  }

  private async releaseLocked(uid: string): Promise<boolean> {
    const uidKey = encodeUid(uid);
    const reg = this.progs.maps.enrolments;
    const raw = await reg.lookup(uidKey);
    const hadPins = existsSync(this.pins.podDir(uid));
    if (!raw && !hadPins) return false;
    if (raw) {
      const e = decodeEnrolment(raw);
      const nsKey = encodeNetnsKey(e.netnsCookie);
      // Switch the programs off for this pod first, then take them away.
      await this.progs.maps.pods.delete(nsKey);
      if (e.ip4) {
        const ipKey = encodeIpKey(e.ip4);
        const owner = await this.progs.maps.podIps.lookup(ipKey);
        if (owner && owner.readBigUInt64LE(0) === e.netnsCookie) await this.progs.maps.podIps.delete(ipKey);
      }
      await this.progs.maps.inListen.delete(nsKey);
      for (const k of await this.progs.maps.origDst.keys()) {
        if (decodeOrigKey(k).netnsCookie === e.netnsCookie) await this.progs.maps.origDst.delete(k);
      }
      // tc filters die with the netns; only touch a netns that is still the pod's.
      if (existsSync(e.netnsPath) && (await this.netnsStillSame(e))) {
        try {
          await this.kernel.tcDetach(e.netnsPath, e.ifname, e.createdClsact);
        } catch (err) {
          if (errnoOf(err) !== 'ENODEV') throw err; // interface gone: nothing attached
        }
      }
    }
    await this.removePodPins(uid);
    if (raw) await reg.delete(uidKey);
    log.info({ uid }, 'pod released');
    return true;
  }

  /** A netns path can be reused by a new namespace; only touch it if it is still the pod's. */
  private async netnsStillSame(e: Enrolment): Promise<boolean> {
    try {
      return (await this.kernel.netnsCookie(e.netnsPath)) === e.netnsCookie;
    } catch {
      return false;
    }
  }

  private async removePodPins(uid: string): Promise<void> {
    const dir = this.pins.podDir(uid);
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) await this.kernel.removePinnedLink(join(dir, name));
    rmdirSync(dir);
  }

  private async classify(pod: PodSpec, step: string, err: unknown): Promise<WeftError> {
    if (err instanceof WeftError && !(err as { errno?: number }).errno) return err;
    if (!existsSync(pod.netnsPath)) return new PodGoneError(pod.uid, 'netns', pod.netnsPath, { cause: err });
    if (!existsSync(pod.cgroupPath)) return new PodGoneError(pod.uid, 'cgroup', pod.cgroupPath, { cause: err });
    const code = errnoOf(err);
    if (code === 'ENODEV' || /ifindex|interface/i.test((err as Error)?.message ?? '')) {
      return new PodGoneError(pod.uid, 'interface', `${pod.ifname ?? 'eth0'} in ${pod.netnsPath}`, { cause: err });
    }
    return new RedirectAttachError(pod.uid, step, { cause: err });
  }
}

/** The errno name of a native failure ('ENODEV', …), whichever error shape carries it. */
function errnoOf(err: unknown): string | undefined {
  const e = err as { syscallCode?: string; code?: string } | undefined;
  return e?.syscallCode ?? e?.code;
}

function asWeftError(uid: string, step: string, err: unknown): WeftError {
  return err instanceof WeftError ? err : new RedirectAttachError(uid, step, { cause: err });
}
