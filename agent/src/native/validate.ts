// Argument checks at the facade's boundary: every bad value becomes an InvalidArgumentError that
// names the parameter, before anything reaches the kernel.
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../common/errors.js';

export function requireString(value: unknown, param: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new InvalidArgumentError(param, `expected a non-empty string, got ${describe(value)}`);
  if (value.includes('\0')) throw new InvalidArgumentError(param, 'must not contain NUL');
  return value;
}

export function requirePath(value: unknown, param: string): string {
  const s = requireString(value, param);
  if (!s.startsWith('/')) throw new InvalidArgumentError(param, `expected an absolute path, got '${s}'`);
  return s;
}

export function requireInt(value: unknown, param: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new InvalidArgumentError(param, `expected an integer, got ${describe(value)}`);
  if (value < min || value > max) throw new InvalidArgumentError(param, `${value} is out of range [${min}, ${max}]`);
  return value;
}

export function requireFd(value: unknown, param: string): number {
  return requireInt(value, param, 0, 0x7fffffff);
}

export function requirePort(value: unknown, param: string): number {
  return requireInt(value, param, 0, 65535);
}

export function requireBool(value: unknown, param: string): boolean {
  if (typeof value !== 'boolean') throw new InvalidArgumentError(param, `expected a boolean, got ${describe(value)}`);
  return value;
}

export function requireBuffer(value: unknown, param: string, length?: number): Buffer {
  if (!Buffer.isBuffer(value)) throw new InvalidArgumentError(param, `expected a Buffer, got ${describe(value)}`);
  if (length !== undefined && value.length !== length) throw new InvalidArgumentError(param, `expected ${length} bytes, got ${value.length}`);
  return value;
}

export function requireIp(value: unknown, param: string): string {
  const s = requireString(value, param);
  if (isIP(s) === 0) throw new InvalidArgumentError(param, `'${s}' is not an IPv4 or IPv6 address`);
  return s;
}

export function requireObject(value: unknown, param: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidArgumentError(param, `expected an options object, got ${describe(value)}`);
  return value as Record<string, unknown>;
}

export function requireOneOf<T extends string>(value: unknown, param: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(param, `expected one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describe(value)}`);
  }
  return value as T;
}

/** Runs `check` only when the value is present (not undefined/null). */
export function optional<T>(value: unknown, check: (v: unknown) => T): T | undefined {
  return value === undefined || value === null ? undefined : check(value);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Buffer.isBuffer(v)) return `a Buffer of ${v.length} bytes`;
  if (typeof v === 'string') return `'${v.length > 40 ? `${v.slice(0, 40)}…` : v}'`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return typeof v;
}
