// net.* sysctls of another network namespace (native/sysctl.cc): /proc/sys/net shows the netns
// of whoever opens it, so the native side enters the netns on a pool thread to read or write.
import { InvalidArgumentError } from '../common/errors.js';
import { addon } from './addon.js';
import { callNativeAsync } from './errors.js';
import { optional, requirePath, requireString } from './validate.js';

const NAME = /^net(\.[a-z0-9_-]+)+$/;

/**
 * Reads `name` (e.g. 'net.ipv4.ip_local_reserved_ports') in `netns`; writes `value` if given.
 * Resolves to the value before. `dir`: the procfs sys directory to go through (default
 * /proc/sys; in a container, where /proc/sys is read-only, the host's mounted writable).
 */
export async function sysctlInNetns(options: { netns?: string; name: string; value?: string; dir?: string }): Promise<string> {
  const netns = optional(options.netns, (v) => requirePath(v, 'options.netns'));
  const dir = optional(options.dir, (v) => requirePath(v, 'options.dir'));
  const name = requireString(options.name, 'options.name');
  if (!NAME.test(name)) throw new InvalidArgumentError('options.name', `'${name}' is not a net.* sysctl name (only those belong to a network namespace)`);
  const value = optional(options.value, (v) => requireString(v, 'options.value'));
  return callNativeAsync(() => addon().sysctlInNetns({ ...(netns ? { netns } : {}), ...(dir ? { dir } : {}), name, ...(value !== undefined ? { value } : {}) }));
}
