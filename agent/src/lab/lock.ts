// One lab is changed by one process at a time: every mutation holds <root>/<lab>.lock, a file
// naming the holder (pid + start time). A holder that died leaves a stale lock that the next
// caller breaks. Inside one process, operations on the same lab queue up.
import { existsSync, readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { createFileExclusive } from './atomic-file.js';
import { LabBusyError } from './errors.js';
import { labRoot, lockFileOf, slotsDir, stateDirOf } from './names.js';
import { processAlive, processStartTime } from './process.js';

interface LockOwner {
  pid: number;
  start: string;
}

const queues = new Map<string, Promise<unknown>>();

function readOwner(path: string): LockOwner | undefined {
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as LockOwner;
    return typeof o.pid === 'number' ? o : undefined;
  } catch {
    return undefined;
  }
}

/** The live process holding the lab's lock, if any. */
export function lockHolder(name: string): number | undefined {
  const owner = readOwner(lockFileOf(name));
  return owner && processAlive(owner.pid, owner.start) ? owner.pid : undefined;
}

async function acquire(name: string, timeoutMs: number): Promise<void> {
  const path = lockFileOf(name);
  const me: LockOwner = { pid: process.pid, start: processStartTime(process.pid) ?? '' };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (createFileExclusive(path, JSON.stringify(me))) return;
    const owner = readOwner(path);
    if (!owner || !processAlive(owner.pid, owner.start)) {
      // Stale (or unreadable, which a complete link(2) never leaves): break it and retry.
      try {
        unlinkSync(path);
      } catch {
        /* someone else broke it */
      }
      continue;
    }
    if (Date.now() > deadline) throw new LabBusyError(name, owner.pid);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function release(name: string): void {
  const path = lockFileOf(name);
  const owner = readOwner(path);
  if (owner?.pid === process.pid) {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  }
  if (!existsSync(stateDirOf(name))) removeEmptyLabDirs();
}

/** Leave the machine as it was: the state root and its .slots go once no lab is left in them. */
export function removeEmptyLabDirs(): void {
  const dirs = [slotsDir(), labRoot()];
  if (process.env.WEFT_LAB_ROOT === undefined) dirs.push(dirname(labRoot()));
  for (const d of dirs) {
    try {
      rmdirSync(d);
    } catch {
      return; // not empty (another lab, or other Weft state), or gone
    }
  }
}

/** Runs `fn` holding the lab's lock. */
export function withLabLock<T>(name: string, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const prev = queues.get(name) ?? Promise.resolve();
  const next = prev.catch(() => undefined).then(async () => {
    await acquire(name, timeoutMs);
    try {
      return await fn();
    } finally {
      release(name);
    }
  });
  queues.set(name, next);
  void next.finally(() => {
    if (queues.get(name) === next) queues.delete(name);
  }).catch(() => undefined);
  return next;
}
