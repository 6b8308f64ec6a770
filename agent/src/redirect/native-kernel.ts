// The redirector's kernel operations over the native facade (agent/src/native).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpfLink, attachCgroupFd, cgroupId, cgroupPrograms } from '../native/bpf-link.js';
import { BpfObject } from '../native/bpf-object.js';
import { unpin, type BpfMap } from '../native/bpf-map.js';
import { NativeError } from '../native/errors.js';
import { netnsCookieOfPath } from '../native/sockets.js';
import { ifindexInNetns, tcAttach, tcDetach, tcHookDestroy, tcQuery } from '../native/tc.js';
import { TC_HANDLE, TC_PRIORITY, type Kernel, type KernelMap, type LoadedPrograms, type ProgramName } from './kernel.js';

const ATTACH_TYPE = { connect4: 'cgroup_inet4_connect', connect6: 'cgroup_inet6_connect', sockops: 'cgroup_sock_ops' } as const;

function wrapMap(m: BpfMap): KernelMap {
  return {
    lookup: async (k) => m.lookup(k),
    update: async (k, v) => m.update(k, v),
    delete: async (k) => m.delete(k),
    keys: async () => m.keys(),
  };
}

interface NativePrograms extends LoadedPrograms {
  objects: { connect4: BpfObject; connect6: BpfObject; sockops: BpfObject; tc: BpfObject };
}

const PROGRAM = { connect4: 'weft_connect4', connect6: 'weft_connect6', sockops: 'weft_sockops', tc: 'weft_tc_ingress' } as const;

const progFd = (progs: LoadedPrograms, name: ProgramName): number => (progs as NativePrograms).objects[name].program(PROGRAM[name]).fd;

function errnoCode(err: unknown): string | undefined {
  return err instanceof NativeError ? err.syscallCode : (err as { code?: string })?.code;
}

export const nativeKernel: Kernel = {
  async load({ objectDir, mapsPinDir, bypassMark }) {
    const opened: BpfObject[] = [];
    try {
      const open = (file: string) => {
        const o = BpfObject.open(join(objectDir, file), { pinRootPath: mapsPinDir });
        opened.push(o);
        return o;
      };
      const connect4 = open('connect4.bpf.o');
      connect4.setGlobal('bypass_mark', bypassMark);
      const connect6 = open('connect6.bpf.o');
      connect6.setGlobal('bypass_mark', bypassMark);
      const sockops = open('sockops.bpf.o');
      const tc = open('tc_ingress.bpf.o');
      // Sequential: the first load creates and pins the maps, the next ones reuse the pins.
      for (const o of opened) await o.load();
      const maps = {
        pods: wrapMap(tc.map('weft_pods')),
        podIps: wrapMap(tc.map('weft_pod_ips')),
        origDst: wrapMap(tc.map('weft_orig_dst')),
        inListen: wrapMap(tc.map('weft_in_listen')),
        enrolments: wrapMap(tc.map('weft_enrolments')),
      };
      const progIds = {
        connect4: connect4.program('weft_connect4').info().id,
        connect6: connect6.program('weft_connect6').info().id,
        sockops: sockops.program('weft_sockops').info().id,
        tc: tc.program('weft_tc_ingress').info().id,
      };
      const loaded: NativePrograms = {
        maps,
        progIds,
        objects: { connect4, connect6, sockops, tc },
        close: () => { for (const o of opened) o.close(); },
      };
      return loaded;
    } catch (err) {
      for (const o of opened) o.close();
      throw err;
    }
  },

  netnsCookie: (netnsPath) => netnsCookieOfPath(netnsPath),
  ifindex: (netnsPath, ifname) => ifindexInNetns(netnsPath, ifname),
  cgroupId: async (cgroupPath) => cgroupId(cgroupPath),

  async attachCgroupPinned(progs, prog, cgroupPath, pinPath) {
    const l = attachCgroupFd(progFd(progs, prog), cgroupPath, ATTACH_TYPE[prog]);
    try {
      l.pin(pinPath);
    } catch (err) {
      l.close(); // unpinned: closing detaches, so nothing is left attached
      throw err;
    }
    l.close();
  },

  async refreshPinnedLink(progs, prog, pinPath, wantCgroup) {
    if (!existsSync(pinPath)) return false;
    let l: BpfLink;
    try {
      l = BpfLink.openPinned(pinPath);
    } catch {
      return false;
    }
    try {
      const info = l.info();
      if (info.cgroupId !== wantCgroup) return false;
      l.update({ fd: progFd(progs, prog) });
      return true;
    } catch (err) {
      if (errnoCode(err) === 'ENOLINK') return false; // defunct: its cgroup went away
      throw err;
    } finally {
      l.close();
    }
  },

  async removePinnedLink(pinPath) {
    if (!existsSync(pinPath)) return;
    try {
      const l = BpfLink.openPinned(pinPath);
      try {
        l.detach();
      } catch (err) {
        if (errnoCode(err) !== 'ENOLINK') throw err;
      } finally {
        l.close();
      }
    } catch (err) {
      if (!(err instanceof NativeError) || err.syscallCode !== 'ENOENT') throw err;
    }
    unpin(pinPath);
  },

  cgroupPrograms: async (cgroupPath, type) => cgroupPrograms(cgroupPath, ATTACH_TYPE[type]).map((p) => ({ id: p.id, name: p.name ?? '' })),

  async tcQuery(netnsPath, ifname) {
    const r = await tcQuery({ netns: netnsPath, ifname, priority: TC_PRIORITY, handle: TC_HANDLE });
    return r ? r.progId : undefined;
  },

  async tcAttach(progs, netnsPath, ifname) {
    const r = await tcAttach(progFd(progs, 'tc'), { netns: netnsPath, ifname, priority: TC_PRIORITY, handle: TC_HANDLE, replace: true });
    return { createdClsact: r.hookCreated };
  },

  async tcDetach(netnsPath, ifname, destroyClsact) {
    if (destroyClsact) await tcHookDestroy({ netns: netnsPath, ifname });
    else await tcDetach({ netns: netnsPath, ifname, priority: TC_PRIORITY, handle: TC_HANDLE });
  },
};
