// Where an agent keeps its state in bpffs. Everything lives under one per-agent directory so
// several agents (one per lab node) on one machine never touch each other's pins:
//   <bpffs>/<agent-id>/maps/<map>              the shared maps (LIBBPF_PIN_BY_NAME root)
//   <bpffs>/<agent-id>/pods/<uid>/connect4     cgroup links of the pod
//   <bpffs>/<agent-id>/pods/<uid>/connect6
//   <bpffs>/<agent-id>/pods/<uid>/sockops
// tc filters are held by the qdisc in the pod netns and need no pin. Agent ids start with
// "weft"; a lab agent uses weft-<lab>-<node>, which the lab's sweep removes after a crash.
import { join } from 'node:path';
import { InvalidArgumentError } from '../common/errors.js';

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function checkAgentId(id: string): string {
  if (!ID.test(id) || !id.startsWith('weft')) {
    throw new InvalidArgumentError('agentId', `"${id}" must start with "weft" and be at most 63 characters of [A-Za-z0-9._-] (e.g. weft-<lab>-<node>)`);
  }
  return id;
}

export function checkUid(uid: string): string {
  if (!ID.test(uid)) throw new InvalidArgumentError('pod.uid', `"${uid}" must be 1-63 characters of [A-Za-z0-9._-] (a Kubernetes pod UID)`);
  return uid;
}

export const CGROUP_LINKS = ['connect4', 'connect6', 'sockops'] as const;
export type CgroupLinkName = (typeof CGROUP_LINKS)[number];

export class PinLayout {
  readonly agentDir: string;
  readonly mapsDir: string;
  readonly podsDir: string;

  constructor(bpffs: string, agentId: string) {
    this.agentDir = join(bpffs, checkAgentId(agentId));
    this.mapsDir = join(this.agentDir, 'maps');
    this.podsDir = join(this.agentDir, 'pods');
  }

  podDir(uid: string): string {
    return join(this.podsDir, checkUid(uid));
  }

  link(uid: string, name: CgroupLinkName): string {
    return join(this.podDir(uid), name);
  }
}
