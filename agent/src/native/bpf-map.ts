// A BPF map, whether it came from a loaded BpfObject or from a pin: both are an fd plus the
// map's key/value sizes, so both behave the same. Keys and values are Buffers; struct.ts lays
// them out to match the C header.
import { addon, type MapInfo } from './addon.js';
import { callNative, NativeStateError } from './errors.js';
import { requireBuffer, requireOneOf, requirePath } from './validate.js';

export type UpdateFlag = 'any' | 'noexist' | 'exist';
const UPDATE_FLAGS: Record<UpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };

/** Who closes the fd: the BpfObject it came from, or the handle itself. */
export interface FdOwner {
  readonly closed: boolean;
  readonly description: string;
}

export interface BpfMapInit {
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  fd: () => number | null;
  owner: FdOwner | null;
}

let possibleCpus: number | undefined;

export class BpfMap {
  readonly name: string;
  readonly type: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  #fd: () => number | null;
  #owner: FdOwner | null;
  #ownFd: number | undefined;

  /** @internal use BpfObject.map() or BpfMap.openPinned(). */
  constructor(init: BpfMapInit) {
    this.name = init.name;
    this.type = init.type;
    this.keySize = init.keySize;
    this.valueSize = init.valueSize;
    this.maxEntries = init.maxEntries;
    this.#fd = init.fd;
    this.#owner = init.owner;
    if (!init.owner) this.#ownFd = init.fd() ?? undefined;
  }

  /** Opens a map pinned in bpffs (bpf_obj_get). Close it when done. */
  static openPinned(path: string): BpfMap {
    requirePath(path, 'path');
    return callNative(() => {
      const a = addon();
      const fd = a.objGet(path);
      try {
        const info = a.mapInfo(fd);
        if (info.keySize === 0 && info.valueSize === 0) throw new NativeStateError(`${path} is not a BPF map`);
        return new BpfMap({ name: info.name, type: info.type, keySize: info.keySize, valueSize: info.valueSize, maxEntries: info.maxEntries, fd: () => fd, owner: null });
      } catch (err) {
        a.closeFd(fd);
        throw err;
      }
    });
  }

  /**
   * A handle on a map fd someone else owns and keeps open (another thread of this process);
   * close() leaves the fd alone.
   */
  static borrow(fd: number, owner: string): BpfMap {
    return callNative(() => {
      const info = addon().mapInfo(fd);
      if (info.keySize === 0 && info.valueSize === 0) throw new NativeStateError(`fd ${fd} is not a BPF map`);
      return new BpfMap({ name: info.name, type: info.type, keySize: info.keySize, valueSize: info.valueSize, maxEntries: info.maxEntries, fd: () => fd, owner: { closed: false, description: owner } });
    });
  }

  get fd(): number {
    if (this.#owner?.closed) throw new NativeStateError(`map ${this.name}: ${this.#owner.description} is closed`);
    const fd = this.#owner ? this.#fd() : this.#ownFd;
    if (fd === null || fd === undefined) throw new NativeStateError(`map ${this.name} has no fd: ${this.#owner ? 'load() the object first' : 'it was closed'}`);
    return fd;
  }

  /** Per-CPU maps hold one value per possible CPU, each rounded up to 8 bytes. */
  get perCpu(): boolean {
    return this.type.startsWith('percpu') || this.type.startsWith('lru_percpu');
  }

  /** Bytes a lookup returns: valueSize, or per-CPU the values of every possible CPU. */
  get valueBufferSize(): number {
    if (!this.perCpu) return this.valueSize;
    possibleCpus ??= callNative(() => addon().numPossibleCpus());
    return Math.ceil(this.valueSize / 8) * 8 * possibleCpus;
  }

  lookup(key: Buffer): Buffer | undefined {
    requireBuffer(key, 'key', this.keySize);
    const fd = this.fd;
    return callNative(() => addon().mapLookup(fd, key, this.valueBufferSize)) ?? undefined;
  }

  update(key: Buffer, value: Buffer, flag: UpdateFlag = 'any'): void {
    requireBuffer(key, 'key', this.keySize);
    requireBuffer(value, 'value', this.valueBufferSize);
    const f = UPDATE_FLAGS[requireOneOf(flag, 'flag', Object.keys(UPDATE_FLAGS) as UpdateFlag[])];
    const fd = this.fd;
    callNative(() => addon().mapUpdate(fd, key, value, f));
  }

  /** false when the key was not there. */
  delete(key: Buffer): boolean {
    requireBuffer(key, 'key', this.keySize);
    const fd = this.fd;
    return callNative(() => addon().mapDelete(fd, key));
  }

  /** Every key, walked with BPF_MAP_GET_NEXT_KEY (bounded, so concurrent churn cannot loop it). */
  keys(): Buffer[] {
    const fd = this.fd;
    const a = addon();
    const out: Buffer[] = [];
    let key: Buffer | null = null;
    const limit = Math.max(1, this.maxEntries) * 2 + 16;
    for (let i = 0; i < limit; i++) {
      const k: Buffer | null = callNative(() => a.mapNextKey(fd, key, this.keySize));
      if (!k) break;
      out.push(k);
      key = k;
    }
    return out;
  }

  /** Every [key, value] pair present when read (entries deleted meanwhile are skipped). */
  entries(): [Buffer, Buffer][] {
    const out: [Buffer, Buffer][] = [];
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v) out.push([k, v]);
    }
    return out;
  }

  /** Pins the map at `path` in bpffs; it then outlives this process. */
  pin(path: string): void {
    requirePath(path, 'path');
    const fd = this.fd;
    callNative(() => addon().objPin(fd, path));
  }

  info(): MapInfo {
    const fd = this.fd;
    return callNative(() => addon().mapInfo(fd));
  }

  /** Closes a map opened from a pin. Maps of a BpfObject are closed with the object. */
  close(): void {
    if (this.#ownFd === undefined) return;
    const fd = this.#ownFd;
    this.#ownFd = undefined;
    callNative(() => addon().closeFd(fd));
  }
}

/** Removes a pin (any BPF object type); false when it did not exist. */
export function unpin(path: string): boolean {
  requirePath(path, 'path');
  return callNative(() => addon().unpin(path));
}

