// The controller's current xDS resources, per type URL, each with a content-derived version.
// Versions are a hash of the encoded resource, so they stay equal across controller restarts
// and a reconnecting agent's initial_resource_versions can be compared directly.
import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import type { Any } from '@bufbuild/protobuf/wkt';

export interface StoredResource {
  name: string;
  version: string;
  resource: Any;
  /** other names a client may ask for, e.g. "network/IP" for an Address */
  aliases: string[];
}

/** Computes a resource's aliases when it is stored (e.g. network/IP keys of an Address). */
export type AliasFn = (name: string, resource: Any) => string[];

export interface ChangeSet {
  typeUrl: string;
  /** added or modified */
  changed: string[];
  removed: string[];
}

/** Same type URL and same bytes: unchanged, without hashing (the common case on a resync). */
function sameBody(a: Any | undefined, b: Any): boolean {
  return a !== undefined && a.typeUrl === b.typeUrl && Buffer.compare(a.value, b.value) === 0;
}

export function resourceVersion(any: Any): string {
  return createHash('sha256').update(any.typeUrl).update(any.value).digest('base64url').slice(0, 16);
}

export class ResourceStore extends EventEmitter<{ change: [ChangeSet] }> {
  private readonly types = new Map<string, Map<string, StoredResource>>();
  private readonly aliasIndex = new Map<string, Map<string, string>>();
  private readonly aliasFns = new Map<string, AliasFn>();
  private generation = 0;

  /** Registers how aliases are computed for one type URL (before storing resources of it). */
  setAliases(typeUrl: string, fn: AliasFn): void {
    this.aliasFns.set(typeUrl, fn);
  }

  /** The primary name behind an alias (or the name itself when it is one). */
  resolve(typeUrl: string, nameOrAlias: string): string | undefined {
    if (this.get(typeUrl).has(nameOrAlias)) return nameOrAlias;
    return this.aliasIndex.get(typeUrl)?.get(nameOrAlias);
  }

  private store(typeUrl: string, t: Map<string, StoredResource>, name: string, any: Any, version: string, given?: ReadonlyMap<string, string[]>): void {
    const old = t.get(name);
    const aliases = given?.get(name) ?? this.aliasFns.get(typeUrl)?.(name, any) ?? [];
    let idx = this.aliasIndex.get(typeUrl);
    if (!idx) this.aliasIndex.set(typeUrl, (idx = new Map()));
    for (const a of old?.aliases ?? []) if (idx.get(a) === name) idx.delete(a);
    for (const a of aliases) idx.set(a, name);
    t.set(name, { name, version, resource: any, aliases });
  }

  private drop(typeUrl: string, t: Map<string, StoredResource>, name: string): boolean {
    const old = t.get(name);
    if (!old) return false;
    const idx = this.aliasIndex.get(typeUrl);
    for (const a of old.aliases) if (idx?.get(a) === name) idx.delete(a);
    return t.delete(name);
  }

  get systemVersion(): string {
    return String(this.generation);
  }

  get(typeUrl: string): ReadonlyMap<string, StoredResource> {
    return this.types.get(typeUrl) ?? new Map();
  }

  private table(typeUrl: string): Map<string, StoredResource> {
    let t = this.types.get(typeUrl);
    if (!t) this.types.set(typeUrl, (t = new Map()));
    return t;
  }

  /**
   * Makes `desired` the complete set for this type; emits one change event if anything
   * differs. `aliases` (name → alias keys) spares decoding resources to compute them.
   */
  replace(typeUrl: string, desired: ReadonlyMap<string, Any>, aliases?: ReadonlyMap<string, string[]>): ChangeSet {
    const t = this.table(typeUrl);
    const changed: string[] = [];
    const removed: string[] = [];
    for (const [name, any] of desired) {
      const old = t.get(name);
      if (sameBody(old?.resource, any)) continue;
      this.store(typeUrl, t, name, any, resourceVersion(any), aliases);
      changed.push(name);
    }
    // every desired name is in t now, so t holds extras exactly when it is larger
    if (t.size > desired.size) for (const name of [...t.keys()]) {
      if (!desired.has(name)) {
        this.drop(typeUrl, t, name);
        removed.push(name);
      }
    }
    return this.emitChange({ typeUrl, changed, removed });
  }

  /** Adds or updates individual resources, leaving the others. */
  upsert(typeUrl: string, resources: ReadonlyMap<string, Any>): ChangeSet {
    const t = this.table(typeUrl);
    const changed: string[] = [];
    for (const [name, any] of resources) {
      if (sameBody(t.get(name)?.resource, any)) continue;
      this.store(typeUrl, t, name, any, resourceVersion(any));
      changed.push(name);
    }
    return this.emitChange({ typeUrl, changed, removed: [] });
  }

  remove(typeUrl: string, names: Iterable<string>): ChangeSet {
    const t = this.table(typeUrl);
    const removed = [...names].filter((n) => this.drop(typeUrl, t, n));
    return this.emitChange({ typeUrl, changed: [], removed });
  }

  private emitChange(c: ChangeSet): ChangeSet {
    if (c.changed.length || c.removed.length) {
      this.generation++;
      this.emit('change', c);
    }
    return c;
  }
}
