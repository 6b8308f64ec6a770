// A BPF object file (.bpf.o) through its life: open, configure (globals, autoload, sizes, pins),
// load, use its programs and maps, close. Closing releases every fd the object holds; links
// made from its programs stay attached only if they were pinned.
import os from 'node:os';
import { InvalidArgumentError } from '../common/errors.js';
import { addon, type GlobalVariable, type RawBpfObject, type StructLayout } from './addon.js';
import { BpfMap, type FdOwner } from './bpf-map.js';
import { BpfProgram } from './bpf-program.js';
import { callNative, callNativeAsync, NativeStateError } from './errors.js';
import { optional, requireBool, requireFd, requireInt, requirePath, requireString } from './validate.js';

export interface BpfObjectOpenOptions {
  /** Directory for maps declared with LIBBPF_PIN_BY_NAME (default /sys/fs/bpf). */
  pinRootPath?: string;
}

export class BpfObject implements FdOwner {
  readonly path: string;
  #raw: RawBpfObject;
  #closed = false;
  #loaded = false;
  #loading = false;
  #programs = new Map<string, BpfProgram>();
  #maps = new Map<string, BpfMap>();
  /** fds of programs and maps, fixed from load() until close(); read on every map operation. */
  #progFds = new Map<string, number>();
  #mapFds = new Map<string, number>();

  private constructor(path: string, raw: RawBpfObject) {
    this.path = path;
    this.#raw = raw;
  }

  /** bpf_object__open_file: parses the ELF; nothing reaches the kernel until load(). */
  static open(path: string, options: BpfObjectOpenOptions = {}): BpfObject {
    requirePath(path, 'path');
    const pinRootPath = optional(options.pinRootPath, (v) => requirePath(v, 'options.pinRootPath'));
    const a = addon();
    const raw = callNative(() => new a.NativeBpfObject(path, pinRootPath ? { pinRootPath } : {}));
    return new BpfObject(path, raw);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get loaded(): boolean {
    return this.#loaded;
  }

  get description(): string {
    return `BPF object ${this.path}`;
  }

  #live(): RawBpfObject {
    if (this.#closed) throw new NativeStateError(`${this.description} is closed`);
    if (this.#loading) throw new NativeStateError(`${this.description} is loading; wait for load() to settle`);
    return this.#raw;
  }

  #beforeLoad(what: string): RawBpfObject {
    const raw = this.#live();
    if (this.#loaded) throw new NativeStateError(`${what} must happen before load() (${this.description} is loaded)`);
    return raw;
  }

  programs(): BpfProgram[] {
    const raw = this.#live();
    return callNative(() => raw.programs()).map((p) => this.program(p.name));
  }

  program(name: string): BpfProgram {
    requireString(name, 'name');
    const cached = this.#programs.get(name);
    if (cached) return cached;
    const raw = this.#live();
    const info = callNative(() => raw.programs()).find((p) => p.name === name);
    if (!info) throw new InvalidArgumentError('name', `no program '${name}' in ${this.path} (has: ${callNative(() => raw.programs()).map((p) => p.name).join(', ')})`);
    const prog = new BpfProgram({
      name: info.name, section: info.section, type: info.type, expectedAttachType: info.expectedAttachType,
      fd: () => this.#progFds.get(name) ?? null,
      autoload: () => callNative(() => this.#live().programs()).find((p) => p.name === name)?.autoload ?? false,
      owner: this,
    });
    this.#programs.set(name, prog);
    return prog;
  }

  maps(): BpfMap[] {
    const raw = this.#live();
    return callNative(() => raw.maps()).map((m) => this.map(m.name));
  }

  /** A map by name; internal maps are named '<object prefix>.rodata' and so on. */
  map(name: string): BpfMap {
    requireString(name, 'name');
    const cached = this.#maps.get(name);
    if (cached) return cached;
    const raw = this.#live();
    const info = callNative(() => raw.maps()).find((m) => m.name === name);
    if (!info) throw new InvalidArgumentError('name', `no map '${name}' in ${this.path} (has: ${callNative(() => raw.maps()).map((m) => m.name).join(', ')})`);
    const map = new BpfMap({
      name: info.name, type: info.type, keySize: info.keySize, valueSize: info.valueSize, maxEntries: info.maxEntries,
      fd: () => this.#mapFds.get(name) ?? null,
      owner: this,
    });
    this.#maps.set(name, map);
    return map;
  }

  /** Global variables with their section, offset and size (from the object's BTF). */
  globals(): GlobalVariable[] {
    const raw = this.#live();
    return callNative(() => raw.globals());
  }

  /**
   * Sets a global's initial value before load; `const volatile` ones are then frozen, which is
   * how BPF programs take configuration. A number or bigint is written in host byte order at
   * the variable's size (1, 2, 4 or 8 bytes); a Buffer must match the size exactly.
   */
  setGlobal(name: string, value: Buffer | number | bigint): void {
    requireString(name, 'name');
    const raw = this.#beforeLoad('setGlobal');
    const g = callNative(() => raw.globals()).find((v) => v.name === name);
    if (!g) throw new InvalidArgumentError('name', `no global variable '${name}' in ${this.path}`);
    const bytes = Buffer.isBuffer(value) ? value : encodeScalar(value, g.size, 'value');
    if (bytes.length !== g.size) throw new InvalidArgumentError('value', `global '${name}' is ${g.size} bytes, got ${bytes.length}`);
    callNative(() => raw.setGlobal(name, bytes));
  }

  getGlobal(name: string): Buffer {
    requireString(name, 'name');
    const raw = this.#live();
    return callNative(() => raw.getGlobal(name));
  }

  setAutoload(program: string, autoload: boolean): void {
    requireString(program, 'program');
    requireBool(autoload, 'autoload');
    const raw = this.#beforeLoad('setAutoload');
    callNative(() => raw.setAutoload(program, autoload));
  }

  setMaxEntries(map: string, maxEntries: number): void {
    requireString(map, 'map');
    requireInt(maxEntries, 'maxEntries', 1, 0xffffffff);
    const raw = this.#beforeLoad('setMaxEntries');
    callNative(() => raw.setMaxEntries(map, maxEntries));
  }

  /** Pin this map at `path` on load, or reuse the map already pinned there. */
  setPinPath(map: string, path: string): void {
    requireString(map, 'map');
    requirePath(path, 'path');
    const raw = this.#beforeLoad('setPinPath');
    callNative(() => raw.setPinPath(map, path));
  }

  /** Use an existing map (e.g. opened from a pin, or another object's) for `map`. */
  reuseMap(map: string, existing: BpfMap | number): void {
    requireString(map, 'map');
    const fd = requireFd(typeof existing === 'number' ? existing : existing.fd, 'existing');
    const raw = this.#beforeLoad('reuseMap');
    callNative(() => raw.reuseMapFd(map, fd));
  }

  /** The C layout of a struct in the object's BTF (to check TypeScript codecs against it). */
  btfStruct(name: string): StructLayout {
    requireString(name, 'name');
    const raw = this.#live();
    return callNative(() => raw.btfStruct(name));
  }

  /** Loads every autoload program and creates the maps; the verifier log is in the error. */
  async load(): Promise<void> {
    const raw = this.#beforeLoad('load');
    this.#loading = true;
    try {
      await callNativeAsync(() => raw.load());
      this.#loaded = true;
      for (const p of raw.programs()) if (p.fd !== null) this.#progFds.set(p.name, p.fd);
      for (const m of raw.maps()) if (m.fd !== null) this.#mapFds.set(m.name, m.fd);
    } finally {
      this.#loading = false;
    }
  }

  close(): void {
    if (this.#closed) return;
    const raw = this.#live();
    callNative(() => raw.close());
    this.#closed = true;
    this.#progFds.clear();
    this.#mapFds.clear();
  }
}

const LE = os.endianness() === 'LE';

/** Encodes an integer in host byte order at `size` bytes (signed values as two's complement). */
export function encodeScalar(value: number | bigint, size: number, param: string): Buffer {
  if (![1, 2, 4, 8].includes(size)) throw new InvalidArgumentError(param, `a ${size}-byte variable takes a Buffer, not a number`);
  const bits = BigInt(size * 8);
  let v: bigint;
  if (typeof value === 'bigint') v = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) v = BigInt(value);
  else throw new InvalidArgumentError(param, `expected an integer, Buffer or bigint, got ${String(value)}`);
  if (v < -(1n << (bits - 1n)) || v >= 1n << bits) throw new InvalidArgumentError(param, `${v} does not fit in ${size} bytes`);
  if (v < 0n) v += 1n << bits;
  const b = Buffer.alloc(size);
  return writeUnsigned(b, v, size);
}

function writeUnsigned(b: Buffer, v: bigint, size: number): Buffer {
  for (let i = 0; i < size; i++) {
    const byte = Number((v >> BigInt(8 * i)) & 0xffn);
    b[LE ? i : size - 1 - i] = byte;
  }
  return b;
}
