// Files other processes read live (the controller watches the state directory): always write
// a dot-named temp file and rename it over the target, so a reader sees the old or the new
// content, never half of it. Temp names start with '.' and do not end in .yaml, so readers
// that list *.yaml skip them.
import { linkSync, mkdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Writes a temp file next to `path`; the directory is (re)made, since a teardown may remove empty ones. */
function writeTemp(path: string, content: string): string {
  const tmp = tempPathFor(path);
  for (let attempt = 0; ; attempt++) {
    mkdirSync(dirname(path), { recursive: true });
    try {
      writeFileSync(tmp, content);
      return tmp;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw err;
    }
  }
}

export function writeFileAtomic(path: string, content: string): void {
  const tmp = writeTemp(path, content);
  try {
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      /* ignore */
    }
    throw err;
  }
}

/** Creates `path` with `content` only if it does not exist yet (atomic: link(2) of a full temp file). */
export function createFileExclusive(path: string, content: string): boolean {
  const tmp = writeTemp(path, content);
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}
