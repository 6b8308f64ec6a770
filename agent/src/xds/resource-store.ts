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
}

export interface ChangeSet {
  typeUrl: string;
  /** added or modified */
  changed: string[];
  removed: string[];
}

export function resourceVersion(any: Any): string {
  return createHash('sha256').update(any.typeUrl).update(any.value).digest('base64url').slice(0, 16);
}

export class ResourceStore extends EventEmitter<{ change: [ChangeSet] }> {
  private readonly types = new Map<string, Map<string, StoredResource>>();
  private generation = 0;

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

  /** Makes `desired` the complete set for this type; emits one change event if anything differs. */
  replace(typeUrl: string, desired: ReadonlyMap<string, Any>): ChangeSet {
    const t = this.table(typeUrl);
    const changed: string[] = [];
    const removed: string[] = [];
    for (const [name, any] of desired) {
      const version = resourceVersion(any);
      if (t.get(name)?.version !== version) {
        t.set(name, { name, version, resource: any });
        changed.push(name);
      }
    }
    for (const name of [...t.keys()]) {
      if (!desired.has(name)) {
        t.delete(name);
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
      const version = resourceVersion(any);
      if (t.get(name)?.version !== version) {
        t.set(name, { name, version, resource: any });
        changed.push(name);
      }
    }
    return this.emitChange({ typeUrl, changed, removed: [] });
  }

  remove(typeUrl: string, names: Iterable<string>): ChangeSet {
    const t = this.table(typeUrl);
    const removed = [...names].filter((n) => t.delete(n));
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
