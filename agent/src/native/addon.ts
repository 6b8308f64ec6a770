// The only module that loads build/Release/weft_native.node. It is loaded lazily, on the first
// call that needs it, so argument checks and `weft --help` work without a built addon, and a
// missing addon becomes one clear NativeAddonMissingError.
import { createRequire } from 'node:module';
import { NativeAddonMissingError } from './errors.js';
import { addonPath } from './paths.js';

export interface RawProgramInfo {
  name: string;
  section: string;
  type: string;
  expectedAttachType: string | null;
  fd: number | null;
  autoload: boolean;
}

export interface RawMapInfo {
  name: string;
  type: string;
  fd: number | null;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  internal: boolean;
  pinPath: string | null;
}

export interface GlobalVariable {
  name: string;
  /** '.rodata' for const volatile, '.data' / '.bss' for the others. */
  section: string;
  offset: number;
  size: number;
}

export interface StructLayout {
  name: string;
  size: number;
  members: { name: string; offset: number; size: number; bitOffset?: number; bitSize?: number }[];
}

export interface RawBpfObject {
  programs(): RawProgramInfo[];
  maps(): RawMapInfo[];
  globals(): GlobalVariable[];
  setGlobal(name: string, value: Buffer): void;
  getGlobal(name: string): Buffer;
  setAutoload(program: string, autoload: boolean): void;
  setMaxEntries(map: string, maxEntries: number): void;
  setPinPath(map: string, path: string): void;
  reuseMapFd(map: string, fd: number): void;
  btfStruct(name: string): StructLayout;
  load(): Promise<void>;
  close(): void;
}

export interface ProgInfo {
  id: number;
  name: string;
  type: string;
  tag: string;
}

export interface MapInfo {
  id: number;
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

export interface LinkInfo {
  id: number;
  type: string;
  progId: number;
  /** For cgroup links: the cgroup's id (its directory's inode number on cgroup v2). */
  cgroupId?: bigint;
  attachType?: string;
}

export interface SocketAddress {
  family: 'IPv4' | 'IPv6' | 'unknown';
  address: string;
  port: number;
}

export interface TcResult {
  ifindex: number;
  handle: number;
  priority: number;
  progId: number;
}

export interface TestRunResult {
  retval: number;
  durationNs: number;
  dataOut: Buffer;
  ctxOut: Buffer;
}

export interface RawAddon {
  libbpfVersion: string;
  NativeBpfObject: new (path: string, options?: { pinRootPath?: string }) => RawBpfObject;
  mapLookup(fd: number, key: Buffer, valueSize: number, flags?: number): Buffer | null;
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags?: number): void;
  mapDelete(fd: number, key: Buffer): boolean;
  mapNextKey(fd: number, key: Buffer | null, keySize: number): Buffer | null;
  objPin(fd: number, path: string): void;
  objGet(path: string): number;
  unpin(path: string): boolean;
  closeFd(fd: number): void;
  progInfo(fd: number): ProgInfo;
  mapInfo(fd: number): MapInfo;
  linkInfo(fd: number): LinkInfo;
  cgroupId(path: string): bigint;
  cgroupAttach(progFd: number, cgroupPath: string, attachType: string): number;
  cgroupQuery(cgroupPath: string, attachType: string, effective?: boolean): (ProgInfo | { id: number })[];
  linkDetach(fd: number): void;
  linkUpdate(linkFd: number, progFd: number): void;
  progTestRun(fd: number, options: { data?: Buffer; ctx?: Buffer; repeat?: number; dataOutSize?: number; ctxOutSize?: number }): Promise<TestRunResult>;
  numPossibleCpus(): number;
  listenInNetns(options: Record<string, unknown>): Promise<number>;
  socketInNetns(options: Record<string, unknown>): Promise<number>;
  socketCookie(fd: number): bigint;
  netnsCookie(fd: number): bigint;
  netnsCookieOfPath(netns: string): Promise<bigint>;
  localAddress(fd: number): SocketAddress;
  peerAddress(fd: number): SocketAddress;
  setMark(fd: number, mark: number): void;
  getMark(fd: number): number;
  tcAttach(options: Record<string, unknown>): Promise<TcResult & { hookCreated: boolean }>;
  tcDetach(options: Record<string, unknown>): Promise<boolean>;
  tcQuery(options: Record<string, unknown>): Promise<TcResult | null>;
  tcHookDestroy(options: Record<string, unknown>): Promise<boolean>;
  ifindex(options: Record<string, unknown>): Promise<number>;
  probeProgType(progType: string, attachType?: string): boolean;
  probeHelper(progType: string, helper: string, attachType?: string): boolean;
  verifyClientChainInHandshake(sslCtx: unknown, trustDomain?: string): void;
  sysctlInNetns(options: Record<string, unknown>): Promise<string>;
}

let cached: RawAddon | undefined;

/** The loaded addon; throws NativeAddonMissingError (with the `npm run build` hint) if absent. */
export function addon(): RawAddon {
  if (cached) return cached;
  const path = addonPath();
  try {
    cached = createRequire(import.meta.url)(path) as RawAddon;
  } catch (err) {
    throw new NativeAddonMissingError(path, err);
  }
  return cached;
}

/** Whether the addon can be loaded, without throwing. */
export function addonAvailable(): boolean {
  try {
    addon();
    return true;
  } catch {
    return false;
  }
}
