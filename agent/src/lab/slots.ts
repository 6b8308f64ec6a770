// Address slots: each lab claims one of MAX_SLOTS by creating <root>/.slots/<n> exclusively.
// A claim whose lab has no state directory (and no live lock holder) is stale and is taken over.
import { existsSync, readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_SLOTS } from './address-plan.js';
import { createFileExclusive } from './atomic-file.js';
import { LabCapacityError } from './errors.js';
import { lockHolder } from './lock.js';
import { slotsDir, stateDirOf } from './names.js';

function owner(slot: number): string | undefined {
  try {
    return readFileSync(join(slotsDir(), String(slot)), 'utf8').trim();
  } catch {
    return undefined;
  }
}

function stale(lab: string): boolean {
  return !existsSync(stateDirOf(lab)) && lockHolder(lab) === undefined;
}

/** Claims a free slot for `lab` (called with the lab's lock held). */
export function claimSlot(lab: string): number {
  const mine = slotsOf(lab);
  if (mine.length > 0) return mine[0]!;
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    const path = join(slotsDir(), String(slot));
    if (createFileExclusive(path, lab)) return slot;
    const o = owner(slot);
    if (o !== undefined && o !== lab && stale(o)) {
      try {
        unlinkSync(path);
      } catch {
        /* raced */
      }
      if (createFileExclusive(path, lab)) return slot;
    }
  }
  throw new LabCapacityError(`all ${MAX_SLOTS} lab address slots are in use`, { hint: 'tear down a lab (`weft lab down --name …`) or run `weft lab sweep`' });
}

export function slotsOf(lab: string): number[] {
  let entries: string[] = [];
  try {
    entries = readdirSync(slotsDir());
  } catch {
    return [];
  }
  return entries.filter((e) => /^\d+$/.test(e) && owner(Number(e)) === lab).map(Number);
}

export function releaseSlots(lab: string): void {
  for (const slot of slotsOf(lab)) {
    try {
      unlinkSync(join(slotsDir(), String(slot)));
    } catch {
      /* gone */
    }
  }
}
