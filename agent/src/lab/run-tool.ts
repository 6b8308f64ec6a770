// Runs one of the host's tools (ip, nsenter) without a shell and without stdin: a tool that
// exits before reading its input would otherwise make Node raise EPIPE on the stdin pipe.
import { spawn } from 'node:child_process';
import { CommandFailedError } from '../common/errors.js';

export function runTool(cmd: string, args: readonly string[], options: { allowFailure?: boolean } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => reject(new CommandFailedError([cmd, ...args].join(' '), null, err.message, { cause: err })));
    child.on('close', (code) => {
      if (code !== 0 && !options.allowFailure) reject(new CommandFailedError([cmd, ...args].join(' '), code, stderr));
      else resolve({ code, stdout, stderr });
    });
  });
}
