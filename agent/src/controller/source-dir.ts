// Cluster state from a directory of manifests (the lab's state directory, or any folder of
// YAML): every *.yaml/*.yml below it, multi-document, read on start and again whenever
// something changes (fs.watch, debounced), with a slow periodic rescan as a safety net for
// missed events. Unparseable files are reported by name and skipped.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { WeftError } from '../common/errors.js';
import { logger } from '../common/log.js';
import { isWatchedKind, type ClusterSnapshot, type ClusterSource, type KubeObject, type ObjectProblem, type Sourced } from './objects.js';

export class SourceError extends WeftError {
  constructor(message: string, hint: string) {
    super('WEFT_E_SOURCE', message, { hint });
  }
}

export interface DirectorySourceOptions {
  debounceMs?: number;
  rescanMs?: number;
}

/** YAML files below `dir` (sorted), and the directories visited (for watching). */
async function listYaml(dir: string, dirs: string[] = []): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return { files, dirs }; // vanished while scanning
  }
  dirs.push(dir);
  for (const e of entries) {
    if (e.name.startsWith('.')) continue; // editor swap files, atomic-write temporaries
    const p = join(dir, e.name);
    if (e.isDirectory()) files.push(...(await listYaml(p, dirs)).files);
    else if (e.isFile() && /\.ya?ml$/.test(e.name)) files.push(p);
  }
  return { files: files.sort(), dirs };
}

/** Parses one file's documents; kinds the controller does not watch are ignored. */
export function parseManifestText(text: string, origin: string): { objects: Sourced[]; problems: ObjectProblem[] } {
  const objects: Sourced[] = [];
  const problems: ObjectProblem[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    const where = `${origin}#${i + 1}`;
    if (doc.errors.length) {
      problems.push({ object: origin, field: `document ${i + 1}`, reason: `YAML error: ${doc.errors[0]!.message.split('\n')[0]}`, origin: where });
      return;
    }
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) return;
    if (typeof value !== 'object' || Array.isArray(value)) {
      problems.push({ object: origin, field: `document ${i + 1}`, reason: 'is not a mapping (a Kubernetes object)', origin: where });
      return;
    }
    const o = value as KubeObject & { items?: unknown };
    const items = o.kind === 'List' && Array.isArray(o.items) ? (o.items as KubeObject[]) : [o];
    for (const item of items) {
      if (!item || typeof item !== 'object') continue;
      if (typeof item.kind !== 'string') {
        problems.push({ object: origin, field: 'kind', reason: 'is missing', origin: where });
        continue;
      }
      if (isWatchedKind(item.kind)) objects.push({ object: item, origin: where });
    }
  });
  return { objects, problems };
}

/**
 * Whether a watch event can change the snapshot: a YAML file, or something without an
 * extension (a directory appearing or vanishing). Logs, runtime files and dot-named temp
 * files written next to the manifests (the lab keeps app logs there) are ignored.
 */
export function relevantChange(filename: string | Buffer | null | undefined): boolean {
  if (filename === null || filename === undefined) return true; // the platform did not say: rescan
  const name = filename.toString().split('/').pop() ?? '';
  if (name.startsWith('.')) return false;
  return /\.ya?ml$/.test(name) || !name.includes('.');
}

export class DirectorySource implements ClusterSource {
  private readonly log = logger('source-dir');
  /** one non-recursive watch per directory: directory watches see files replaced by rename
   * (Node 20's recursive watch on Linux loses a file once it is renamed over) */
  private readonly watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private last = '';
  private scanning: Promise<void> | undefined;
  private again = false;
  private onSnapshot: ((s: ClusterSnapshot) => void) | undefined;
  private stopped = false;
  private readonly debounceMs: number;
  private readonly rescanMs: number;

  constructor(readonly dir: string, opts: DirectorySourceOptions = {}) {
    this.debounceMs = opts.debounceMs ?? 50;
    this.rescanMs = opts.rescanMs ?? 10_000;
  }

  async start(onSnapshot: (s: ClusterSnapshot) => void): Promise<void> {
    const st = await stat(this.dir).catch(() => undefined);
    if (!st?.isDirectory()) {
      throw new SourceError(`manifest directory ${this.dir} does not exist or is not a directory`, 'create it, or point --source dir:PATH at the lab state directory (weft lab status shows it)');
    }
    this.onSnapshot = onSnapshot;
    await this.scan();
    this.rescanTimer = setInterval(() => this.schedule(), this.rescanMs);
    this.rescanTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    clearTimeout(this.timer);
    clearInterval(this.rescanTimer);
    this.onSnapshot = undefined;
    await this.scanning;
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.scan(), this.debounceMs);
  }

  /** Rescans; serialised, and re-run once if a change arrived meanwhile. */
  private async scan(): Promise<void> {
    if (this.scanning) {
      this.again = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      do {
        this.again = false;
        const snap = await this.read();
        const sig = JSON.stringify(snap);
        if (sig !== this.last) {
          this.last = sig;
          this.onSnapshot?.(snap);
        }
      } while (this.again);
    })().finally(() => (this.scanning = undefined));
    return this.scanning;
  }

  /** Watches exactly the directories that exist now. */
  private syncWatchers(dirs: string[]): void {
    if (this.stopped) return;
    const want = new Set(dirs);
    for (const [d, w] of this.watchers) {
      if (!want.has(d)) {
        w.close();
        this.watchers.delete(d);
      }
    }
    for (const d of want) {
      if (this.watchers.has(d)) continue;
      try {
        const w = watch(d, (_event, filename) => {
          if (relevantChange(filename)) this.schedule();
        });
        w.on('error', () => {
          w.close();
          this.watchers.delete(d);
          this.schedule(); // the directory went away: rescan and re-watch what is left
        });
        this.watchers.set(d, w);
      } catch (err) {
        this.log.warn({ dir: d, err: (err as Error).message }, 'cannot watch directory; relying on periodic rescans');
      }
    }
  }

  async read(): Promise<ClusterSnapshot> {
    const objects: Sourced[] = [];
    const problems: ObjectProblem[] = [];
    const { files, dirs } = await listYaml(this.dir);
    this.syncWatchers(dirs);
    for (const file of files) {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch {
        continue; // removed between listing and reading
      }
      const r = parseManifestText(text, relative(this.dir, file));
      objects.push(...r.objects);
      problems.push(...r.problems);
    }
    return { objects, problems };
  }
}
