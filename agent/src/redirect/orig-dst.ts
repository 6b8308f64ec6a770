// Original destinations of connections the proxy accepted on :15001, read (and deleted) from
// the pinned weft_orig_dst map by (SO_NETNS_COOKIE, peer port). The Redirector reads through
// its loaded maps; a data-plane worker thread opens the pin itself and reads the same way.
import { join } from 'node:path';
import { BpfMap } from '../native/bpf-map.js';
import { AF_INET, decodeOrigDst, encodeOrigKey, type OrigDst } from './codec.js';

export const ORIG_DST_MAP = 'weft_orig_dst';

export interface OrigDstMap {
  lookup(key: Buffer): Promise<Buffer | undefined> | Buffer | undefined;
  delete(key: Buffer): Promise<boolean> | boolean;
}

/** The entry of (netnsCookie, peerPort), deleted on read; undefined when there is none. */
export async function takeOriginalDestination(map: OrigDstMap, netnsCookie: bigint, peerPort: number): Promise<OrigDst | undefined> {
  const key = encodeOrigKey({ netnsCookie, port: peerPort, family: AF_INET });
  const v = await map.lookup(key);
  if (!v) return undefined;
  await map.delete(key);
  return decodeOrigDst(v);
}

export interface OriginalDestinations {
  take: (netnsCookie: bigint, peerPort: number) => Promise<OrigDst | undefined>;
  /** the map's fd (a worker thread borrows it: fds opened by a thread that dies would leak) */
  fd: number;
  close: () => void;
}

/** Uses the map fd another thread of this process opened and keeps open. */
export function borrowOriginalDestinations(fd: number): OriginalDestinations {
  const map = BpfMap.borrow(fd, 'the agent\'s original-destination map');
  return { take: (cookie, port) => takeOriginalDestination(map, cookie, port), fd, close: () => undefined };
}

/** Opens the agent's pinned map (`mapsDir` as PinLayout has it); close() when done. */
export function openOriginalDestinations(mapsDir: string): OriginalDestinations {
  const map = BpfMap.openPinned(join(mapsDir, ORIG_DST_MAP));
  return { take: (cookie, port) => takeOriginalDestination(map, cookie, port), fd: map.fd, close: () => map.close() };
}
