// Processes inside a pod: the sample app (detached, outlives the command that started it) and
// `exec`. Each joins the pod's container cgroup first (the shell writes its own pid to
// cgroup.procs), then enters the pod's netns with nsenter and execs the command, so the pid
// the lab records is the command's own.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PodStartError } from './errors.js';
import { processAlive, processStartTime } from './process.js';

/** Joins cgroup "$1", enters netns "$2", then execs the rest. Arguments never go through the shell's parser. */
const ENTER = 'cg="$1"; ns="$2"; shift 2; echo $$ > "$cg/cgroup.procs" && exec nsenter --net="$ns" -- "$@"';

export function spawnInPod(cgroup: string, netnsFile: string, argv: string[], options: SpawnOptions = {}): ChildProcess {
  return spawn('sh', ['-c', ENTER, 'weft-lab-enter', cgroup, netnsFile, ...argv], options);
}

export function spawnInNetns(netnsFile: string, argv: string[], options: SpawnOptions = {}): ChildProcess {
  return spawn('nsenter', [`--net=${netnsFile}`, '--', ...argv], options);
}

export function sampleAppPath(): string {
  return fileURLToPath(new URL('./sample-app.js', import.meta.url));
}

export function probeClientPath(): string {
  return fileURLToPath(new URL('./probe-client.js', import.meta.url));
}

/** V8 limits that keep one app per pod small (a pod is one Node process; labs run 100 of them). */
const APP_NODE_FLAGS = ['--max-old-space-size=32', '--max-semi-space-size=1', '--v8-pool-size=1'];

export interface StartedApp {
  pid: number;
  pidStart: string;
}

export interface AppSpec {
  namespace: string;
  name: string;
  cgroup: string;
  netnsFile: string;
  logDir: string;
  uid: string;
}

export function appLogFile(logDir: string, uid: string): string {
  return join(logDir, `${uid}.log`);
}

/** Starts the sample app detached (own session) and returns once it listens on 9000 and 8080. */
export async function startSampleApp(spec: AppSpec, timeoutMs = 30_000): Promise<StartedApp> {
  const logFile = appLogFile(spec.logDir, spec.uid);
  const fd = openSync(logFile, 'w');
  let child: ChildProcess;
  try {
    child = spawnInPod(spec.cgroup, spec.netnsFile, [process.execPath, ...APP_NODE_FLAGS, sampleAppPath(), '--namespace', spec.namespace, '--pod', spec.name], {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  child.unref();
  const ref = `${spec.namespace}/${spec.name}`;
  if (pid === undefined) throw new PodStartError(ref, 'could not spawn sh');
  let exited = false;
  child.once('exit', () => (exited = true));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let log = '';
    try {
      log = readFileSync(logFile, 'utf8');
    } catch {
      /* not yet */
    }
    if (log.includes('"listening"')) {
      const pidStart = processStartTime(pid);
      if (pidStart !== undefined) return { pid, pidStart };
    }
    if (exited || !processAlive(pid)) {
      throw new PodStartError(ref, `the sample app exited: ${log.trim().split('\n').slice(-3).join(' | ') || 'no output'}`, { hint: `see ${logFile}` });
    }
    if (Date.now() > deadline) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      throw new PodStartError(ref, `the sample app did not listen within ${timeoutMs} ms`, { hint: `see ${logFile}` });
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}
