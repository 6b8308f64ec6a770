// A BPF program: from a loaded BpfObject, or opened from a pin. Attach it to a cgroup (as a
// bpf_link) or to an interface's tc hook, or run it on test input (BPF_PROG_TEST_RUN).
import { InvalidArgumentError } from '../common/errors.js';
import { addon, type ProgInfo, type TestRunResult } from './addon.js';
import { BpfLink, attachCgroupFd } from './bpf-link.js';
import type { FdOwner } from './bpf-map.js';
import { callNative, callNativeAsync, NativeStateError } from './errors.js';
import { tcAttach, type TcAttachment, type TcAttachOptions } from './tc.js';
import { optional, requireBuffer, requireInt, requirePath, requireString } from './validate.js';

export interface TestRunOptions {
  /** Packet bytes (for sched_cls: starting at the Ethernet header). */
  data?: Buffer;
  /** The program's context (e.g. a struct __sk_buff), where the type allows it. */
  ctx?: Buffer;
  repeat?: number;
  /** Room for the output packet; default data.length + 256. */
  dataOutSize?: number;
}

export interface BpfProgramInit {
  name: string;
  section: string;
  type: string;
  expectedAttachType: string | null;
  fd: () => number | null;
  /** Whether load() loads it (programs from a pin: always true, they are loaded). */
  autoload?: () => boolean;
  owner: FdOwner | null;
}

export class BpfProgram {
  readonly name: string;
  readonly section: string;
  readonly type: string;
  /** libbpf's name of the attach type the section implies, e.g. 'cgroup_inet4_connect'. */
  readonly expectedAttachType: string | null;
  #fd: () => number | null;
  #autoload: () => boolean;
  #owner: FdOwner | null;
  #ownFd: number | undefined;

  /** @internal use BpfObject.program() or BpfProgram.openPinned(). */
  constructor(init: BpfProgramInit) {
    this.name = init.name;
    this.section = init.section;
    this.type = init.type;
    this.expectedAttachType = init.expectedAttachType;
    this.#fd = init.fd;
    this.#autoload = init.autoload ?? (() => true);
    this.#owner = init.owner;
    if (!init.owner) this.#ownFd = init.fd() ?? undefined;
  }

  /** Opens a pinned program. Its attach type is unknown: pass one to attachCgroup(). */
  static openPinned(path: string): BpfProgram {
    requirePath(path, 'path');
    return callNative(() => {
      const a = addon();
      const fd = a.objGet(path);
      try {
        const info = a.progInfo(fd);
        return new BpfProgram({ name: info.name, section: '', type: info.type, expectedAttachType: null, fd: () => fd, owner: null });
      } catch (err) {
        a.closeFd(fd);
        throw err;
      }
    });
  }

  get autoload(): boolean {
    return this.#autoload();
  }

  get fd(): number {
    if (this.#owner?.closed) throw new NativeStateError(`program ${this.name}: ${this.#owner.description} is closed`);
    const fd = this.#owner ? this.#fd() : this.#ownFd;
    if (fd === null || fd === undefined) throw new NativeStateError(`program ${this.name} has no fd: ${this.#owner ? 'load() the object first' : 'it was closed'}`);
    return fd;
  }

  info(): ProgInfo {
    const fd = this.fd;
    return callNative(() => addon().progInfo(fd));
  }

  /** Attaches to a cgroup v2 directory as a bpf_link (default attach type: the section's). */
  attachCgroup(cgroupPath: string, attachType?: string): BpfLink {
    requirePath(cgroupPath, 'cgroupPath');
    const at = attachType === undefined ? this.expectedAttachType : requireString(attachType, 'attachType');
    if (!at) throw new NativeStateError(`program ${this.name} (${this.type}) has no cgroup attach type; pass attachType`);
    return attachCgroupFd(this.fd, cgroupPath, at);
  }

  /** Attaches this sched_cls program to an interface's clsact hook inside a netns. */
  async attachTc(options: TcAttachOptions): Promise<TcAttachment> {
    return tcAttach(this, options);
  }

  /** BPF_PROG_TEST_RUN: runs the program once (or `repeat` times) on the given input. */
  async testRun(options: TestRunOptions): Promise<TestRunResult> {
    const o: { data?: Buffer; ctx?: Buffer; repeat?: number; dataOutSize?: number; ctxOutSize?: number } = {};
    const data = optional(options.data, (v) => requireBuffer(v, 'options.data'));
    const ctx = optional(options.ctx, (v) => requireBuffer(v, 'options.ctx'));
    if (!data && !ctx) throw new InvalidArgumentError('options.data', 'give data, ctx or both');
    if (data) o.data = data;
    if (ctx) {
      o.ctx = ctx;
      o.ctxOutSize = ctx.length;
    }
    const repeat = optional(options.repeat, (v) => requireInt(v, 'options.repeat', 1, 100_000_000));
    if (repeat !== undefined) o.repeat = repeat;
    const dataOutSize = optional(options.dataOutSize, (v) => requireInt(v, 'options.dataOutSize', 0, 1 << 24));
    if (dataOutSize !== undefined) o.dataOutSize = dataOutSize;
    const fd = this.fd;
    return callNativeAsync(() => addon().progTestRun(fd, o));
  }

  pin(path: string): void {
    requirePath(path, 'path');
    const fd = this.fd;
    callNative(() => addon().objPin(fd, path));
  }

  /** Closes a program opened from a pin. Programs of a BpfObject are closed with the object. */
  close(): void {
    if (this.#ownFd === undefined) return;
    const fd = this.#ownFd;
    this.#ownFd = undefined;
    callNative(() => addon().closeFd(fd));
  }
}
