// Running the host's tools (ip, nsenter, …). Arguments are passed as an array, never through a
// shell, so names from manifests cannot inject commands.
import { spawn, type SpawnOptions } from 'node:child_process';
import { CommandFailedError } from './errors.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

export interface RunOptions {
  /** Resolve instead of throwing when the command exits non-zero. */
  allowFailure?: boolean;
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const spawnOptions: SpawnOptions = { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env };
    if (options.timeoutMs !== undefined) spawnOptions.timeout = options.timeoutMs;
    const child = spawn(cmd, args, spawnOptions);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => reject(new CommandFailedError([cmd, ...args].join(' '), null, err.message, { cause: err })));
    child.on('close', (code) => {
      if (code !== 0 && !options.allowFailure) {
        reject(new CommandFailedError([cmd, ...args].join(' '), code, stderr));
      } else {
        resolve({ stdout, stderr, code });
      }
    });
    // A command that exits without reading its stdin makes this write fail with EPIPE; that
    // is not an error of the command (its exit code says how it went).
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(options.input ?? '');
  });
}

/** Returns true when `cmd` can be found on PATH. */
export async function hasCommand(cmd: string): Promise<boolean> {
  const r = await run('sh', ['-c', 'command -v "$1"', 'sh', cmd], { allowFailure: true });
  return r.code === 0;
}
