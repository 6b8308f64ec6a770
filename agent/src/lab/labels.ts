// Kubernetes label syntax and `kubectl label` changes (key=value sets, key- removes).
import { InvalidArgumentError } from '../common/errors.js';

const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why `key` is not a valid label key, or undefined when it is. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    return `label key '${key}': the prefix must be a DNS subdomain (lowercase letters, digits, '-', '.')`;
  }
  if (name.length === 0 || name.length > 63 || !NAME.test(name)) {
    return `label key '${key}': the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Why `value` is not a valid label value, or undefined when it is. */
export function labelValueProblem(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 63 || !NAME.test(value)) {
    return `label value '${value}': use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

export type LabelChange = { key: string; value: string } | { key: string; remove: true };

/** Parses `key=value` or `key-` as `kubectl label` does. */
export function parseLabelChange(text: string): LabelChange {
  if (text.endsWith('-') && !text.includes('=')) {
    const key = text.slice(0, -1);
    const p = labelKeyProblem(key);
    if (p) throw new InvalidArgumentError('label', p);
    return { key, remove: true };
  }
  const eq = text.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('label', `'${text}' is neither key=value nor key- (to remove)`);
  const key = text.slice(0, eq);
  const value = text.slice(eq + 1);
  const p = labelKeyProblem(key) ?? labelValueProblem(value);
  if (p) throw new InvalidArgumentError('label', p);
  return { key, value };
}

/**
 * Applies changes to a copy of `labels`. Like kubectl, changing the value of an existing key
 * needs `overwrite`; removing a missing key is not an error. Returns the new labels, or throws
 * with the offending key.
 */
export function applyLabelChanges(labels: Record<string, string>, changes: LabelChange[], overwrite: boolean): { labels: Record<string, string>; conflict?: string } {
  const out = { ...labels };
  for (const c of changes) {
    if ('remove' in c) {
      delete out[c.key];
    } else {
      if (c.key in out && out[c.key] !== c.value && !overwrite) return { labels, conflict: c.key };
      out[c.key] = c.value;
    }
  }
  return { labels: out };
}
