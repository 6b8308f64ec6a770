// What the numbers were measured on: CPU, cores, kernel, sysctls and tool versions.
import { cpus, release, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import { run } from '../../agent/src/common/exec.js';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  congestionControl: string;
  /** /proc/loadavg when the run started: other work on the machine skews every mode */
  loadAvg: string;
  versions: Record<string, string>;
}

async function firstLine(cmd: string, args: string[], pick: RegExp = /.*/): Promise<string> {
  const r = await run(cmd, args, { allowFailure: true }).catch(() => undefined);
  const text = `${r?.stdout ?? ''}\n${r?.stderr ?? ''}`;
  const m = pick.exec(text);
  return m ? (m[1] ?? m[0]).trim() : 'unknown';
}

export async function machineInfo(weftVersion: string): Promise<MachineInfo> {
  const read = (p: string) => { try { return readFileSync(p, 'utf8').trim(); } catch { return 'unknown'; } };
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    congestionControl: read('/proc/sys/net/ipv4/tcp_congestion_control'),
    loadAvg: read('/proc/loadavg'),
    versions: {
      node: process.versions.node,
      openssl: process.versions.openssl,
      opensslCli: await firstLine('openssl', ['version'], /OpenSSL \S+/),
      haproxy: await firstLine('haproxy', ['-v'], /HAProxy version (\S+)/),
      iperf3: await firstLine('iperf3', ['--version'], /iperf (\S+)/),
      nft: await firstLine('nft', ['--version'], /nftables (\S+)/),
      weft: weftVersion,
    },
  };
}
