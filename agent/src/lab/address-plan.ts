// The lab's address plan. Every address is inside 198.18.0.0/15 (RFC 2544 benchmarking
// range). Each running lab gets a slot 0..15 so that several labs on one machine never share
// an address:
//   fabric bridge   198.19.<slot>.1/24       (in weft-<lab>-fabric)
//   node n          198.19.<slot>.<10+n>/24  (eth0 of weft-<lab>-node<n>), n = 1..15
//   pods of node n  198.18.<slot*16+n>.0/24; the node is .1 on every pod veth, pods get .10-.254
//   service IPs     198.19.<128+slot>.10-254
import { LabCapacityError } from './errors.js';

export const MAX_SLOTS = 16;
export const MAX_NODES = 15;
export const FIRST_HOST = 10;
export const LAST_HOST = 254;

export interface AddressPlan {
  slot: number;
  fabricCidr: string;
  fabricIp: string;
  serviceCidr: string;
  nodeIp(index: number): string;
  podCidr(index: number): string;
  /** The node's address on every pod veth: the pods' default gateway. */
  podGateway(index: number): string;
  /** The `host`-th pod address of node `index` (host 10..254). */
  podIp(index: number, host: number): string;
  serviceIp(host: number): string;
}

export function addressPlan(slot: number): AddressPlan {
  if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_SLOTS) throw new LabCapacityError(`address slot ${slot} is out of range 0-${MAX_SLOTS - 1}`);
  const nodeCheck = (index: number) => {
    if (!Number.isInteger(index) || index < 1 || index > MAX_NODES) throw new LabCapacityError(`node index ${index} is out of range 1-${MAX_NODES}`);
  };
  const podOctet = (index: number) => {
    nodeCheck(index);
    return slot * 16 + index;
  };
  return {
    slot,
    fabricCidr: `198.19.${slot}.0/24`,
    fabricIp: `198.19.${slot}.1`,
    serviceCidr: `198.19.${128 + slot}.0/24`,
    nodeIp: (index) => {
      nodeCheck(index);
      return `198.19.${slot}.${FIRST_HOST + index}`;
    },
    podCidr: (index) => `198.18.${podOctet(index)}.0/24`,
    podGateway: (index) => `198.18.${podOctet(index)}.1`,
    podIp: (index, host) => {
      if (host < FIRST_HOST || host > LAST_HOST) throw new LabCapacityError(`pod host number ${host} is out of range ${FIRST_HOST}-${LAST_HOST}`);
      return `198.18.${podOctet(index)}.${host}`;
    },
    serviceIp: (host) => {
      if (host < FIRST_HOST || host > LAST_HOST) throw new LabCapacityError(`service host number ${host} is out of range ${FIRST_HOST}-${LAST_HOST}`);
      return `198.19.${128 + slot}.${host}`;
    },
  };
}

/** The lowest host number in FIRST_HOST..LAST_HOST whose address is not in `used`. */
export function freeHost(used: Set<string>, addressOf: (host: number) => string, what: string): number {
  for (let h = FIRST_HOST; h <= LAST_HOST; h++) if (!used.has(addressOf(h))) return h;
  throw new LabCapacityError(`no free address left for ${what}`, { hint: 'remove some pods or services first' });
}

/** True when `ip` is a dotted IPv4 address inside 198.18.0.0/15. */
export function inBenchmarkRange(ip: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return false;
  const o = m.slice(1).map(Number);
  if (o.some((x) => x > 255)) return false;
  return o[0] === 198 && (o[1] === 18 || o[1] === 19);
}
