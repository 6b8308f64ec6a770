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

async function listYaml(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out; // vanished while scanning
  }
  for (const e of entries) {
    if (e.name.startsWith('.')) continue; // editor swap files, atomic-write temporaries
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listYaml(p)));
    else if (e.isFile() && /\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out.sort();
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

export class DirectorySource implements ClusterSource {
  private readonly log = logger('source-dir');
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private last = '';
  private scanning: Promise<void> | undefined;
  private again = false;
  private onSnapshot: ((s: ClusterSnapshot) => void) | undefined;
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
    this.watcher = watch(this.dir, { recursive: true }, () => this.schedule());
    this.watcher.on('error', (err) => {
      this.log.warn({ err: err.message }, 'watch failed; relying on periodic rescans');
    });
    this.rescanTimer = setInterval(() => this.schedule(), this.rescanMs);
    this.rescanTimer.unref();
  }

  async stop(): Promise<void> {
    this.watcher?.close();
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

  async read(): Promise<ClusterSnapshot> {
    const objects: Sourced[] = [];
    const problems: ObjectProblem[] = [];
    for (const file of await listYaml(this.dir)) {
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
