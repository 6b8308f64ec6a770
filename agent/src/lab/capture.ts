// A packet capture on the lab's fabric: what crosses between nodes, as the network sees it.
// The demo and the tests use it to show that mesh traffic never crosses in plaintext.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Lab } from './lab.js';
import { WeftError } from '../common/errors.js';

export class CaptureError extends WeftError {
  constructor(message: string) {
    super('WEFT_E_LAB_CAPTURE', message, { hint: 'tcpdump must be installed (Debian package tcpdump; `npm run setup` installs it)' });
  }
}

/**
 * Captures TCP on every port of the fabric bridge while `during` runs and returns the raw
 * pcap bytes. `-i any` in the fabric netns covers the bridge's ports: frames forwarded between
 * nodes are not delivered to br0 itself.
 */
export async function captureOnFabric(lab: Lab, during: () => Promise<void>): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-capture-'));
  const file = join(dir, 'fabric.pcap');
  try {
    const td = spawn('nsenter', [`--net=${lab.status().fabric.netns}`, '--', 'tcpdump', '-Z', 'root', '--immediate-mode', '-i', 'any', '-U', '-s', '0', '-w', file, 'tcp'], { stdio: ['ignore', 'ignore', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      let err = '';
      td.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        if (/listening on/.test(err)) resolve();
      });
      td.once('error', (e) => reject(new CaptureError(`tcpdump could not start: ${e.message}`)));
      td.once('exit', (code) => reject(new CaptureError(`tcpdump exited ${code}: ${err.trim()}`)));
    });
    try {
      await during();
      // Let the last frames reach the capture before stopping it.
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      const exited = new Promise((r) => td.once('exit', r));
      td.kill('SIGINT');
      await exited;
    }
    return readFileSync(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
