// Fixed-width C structs as Buffers, laid out as clang lays out the shared BPF header (natural
// alignment, tail padding to the largest member's alignment; padding bytes are zero, which
// hash-map keys need). Field types:
//   u8 u16 u32 u64 i8 i16 i32 i64   host byte order (u64/i64 as bigint)
//   be16 be32                        network byte order (__be16 ports, __be32 values), as numbers
//   ipv4                             4 bytes in network order, as a dotted string ('198.18.0.1')
//   ipv6                             16 bytes in network order, as a string ('fd00::1')
//   { bytes: n }                     n raw bytes, as a Buffer
//   { pad: n }                       n zero bytes, not in the decoded value
//   { array: 'u16', length: n }      n elements of a scalar type, as an array
import { isIPv4, isIPv6 } from 'node:net';
import os from 'node:os';
import { InvalidArgumentError } from '../common/errors.js';

type Scalar = 'u8' | 'u16' | 'u32' | 'u64' | 'i8' | 'i16' | 'i32' | 'i64' | 'be16' | 'be32' | 'ipv4' | 'ipv6';
export type FieldType = Scalar | { bytes: number } | { pad: number } | { array: Scalar; length: number };

type ScalarValue<T extends Scalar> = T extends 'u64' | 'i64' ? bigint : T extends 'ipv4' | 'ipv6' ? string : number;
type FieldValue<F> = F extends Scalar ? ScalarValue<F> : F extends { bytes: number } ? Buffer : F extends { array: infer E extends Scalar } ? ScalarValue<E>[] : never;

export type StructSpec = Record<string, FieldType>;
export type StructValue<S extends StructSpec> = { [K in keyof S as S[K] extends { pad: number } ? never : K]: FieldValue<S[K]> };

export interface FieldLayout {
  name: string;
  type: FieldType;
  offset: number;
  size: number;
}

export interface StructCodec<S extends StructSpec> {
  readonly name: string;
  readonly size: number;
  readonly align: number;
  readonly fields: readonly FieldLayout[];
  encode(value: StructValue<S>): Buffer;
  /** Decodes the first `size` bytes (a longer buffer, e.g. a per-CPU value, is fine). */
  decode(buf: Buffer, offset?: number): StructValue<S>;
}

const SCALAR: Record<Scalar, { size: number; align: number }> = {
  u8: { size: 1, align: 1 }, i8: { size: 1, align: 1 },
  u16: { size: 2, align: 2 }, i16: { size: 2, align: 2 }, be16: { size: 2, align: 2 },
  u32: { size: 4, align: 4 }, i32: { size: 4, align: 4 }, be32: { size: 4, align: 4 }, ipv4: { size: 4, align: 4 },
  u64: { size: 8, align: 8 }, i64: { size: 8, align: 8 },
  ipv6: { size: 16, align: 4 },
};

const LE = os.endianness() === 'LE';

function sizeAlign(t: FieldType, where: string): { size: number; align: number } {
  if (typeof t === 'string') {
    const s = SCALAR[t];
    if (!s) throw new InvalidArgumentError(where, `unknown field type '${String(t)}'`);
    return s;
  }
  if ('bytes' in t) return { size: checkCount(t.bytes, where), align: 1 };
  if ('pad' in t) return { size: checkCount(t.pad, where), align: 1 };
  if ('array' in t) {
    const e = sizeAlign(t.array, where);
    return { size: e.size * checkCount(t.length, where), align: e.align };
  }
  throw new InvalidArgumentError(where, 'unknown field type');
}

function checkCount(n: unknown, where: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1 << 20) throw new InvalidArgumentError(where, `expected a positive length, got ${String(n)}`);
  return n;
}

/** Defines a struct codec; `name` is used in error messages and should match the C struct. */
export function defineStruct<const S extends StructSpec>(name: string, spec: S, options: { packed?: boolean } = {}): StructCodec<S> {
  const fields: FieldLayout[] = [];
  let offset = 0;
  let maxAlign = 1;
  for (const [field, type] of Object.entries(spec)) {
    const { size, align } = sizeAlign(type, `${name}.${field}`);
    const a = options.packed ? 1 : align;
    offset = Math.ceil(offset / a) * a;
    fields.push({ name: field, type, offset, size });
    offset += size;
    maxAlign = Math.max(maxAlign, a);
  }
  const total = Math.ceil(offset / maxAlign) * maxAlign;
  return {
    name,
    size: total,
    align: maxAlign,
    fields,
    encode(value) {
      if (typeof value !== 'object' || value === null) throw new InvalidArgumentError(name, 'expected an object');
      const buf = Buffer.alloc(total);
      const v = value as Record<string, unknown>;
      for (const f of fields) {
        if (typeof f.type === 'object' && 'pad' in f.type) continue;
        writeField(buf, f, v[f.name], `${name}.${f.name}`);
      }
      return buf;
    },
    decode(buf, at = 0) {
      if (!Buffer.isBuffer(buf)) throw new InvalidArgumentError(name, 'expected a Buffer to decode');
      if (buf.length - at < total) throw new InvalidArgumentError(name, `needs ${total} bytes, got ${buf.length - at}`);
      const out: Record<string, unknown> = {};
      for (const f of fields) {
        if (typeof f.type === 'object' && 'pad' in f.type) continue;
        out[f.name] = readField(buf, at + f.offset, f.type);
      }
      return out as StructValue<S>;
    },
  };
}

function writeField(buf: Buffer, f: FieldLayout, value: unknown, where: string): void {
  const t = f.type;
  if (typeof t === 'string') return writeScalar(buf, f.offset, t, value, where);
  if ('bytes' in t) {
    if (!Buffer.isBuffer(value)) throw new InvalidArgumentError(where, `expected a Buffer of up to ${t.bytes} bytes`);
    if (value.length > t.bytes) throw new InvalidArgumentError(where, `${value.length} bytes do not fit in ${t.bytes}`);
    value.copy(buf, f.offset);
    return;
  }
  if ('array' in t) {
    if (!Array.isArray(value) || value.length > t.length) throw new InvalidArgumentError(where, `expected an array of up to ${t.length} ${t.array}`);
    const es = SCALAR[t.array].size;
    value.forEach((e, i) => writeScalar(buf, f.offset + i * es, t.array, e, `${where}[${i}]`));
  }
}

function writeScalar(buf: Buffer, at: number, t: Scalar, value: unknown, where: string): void {
  switch (t) {
    case 'ipv4': {
      if (typeof value !== 'string' || !isIPv4(value)) throw new InvalidArgumentError(where, `expected an IPv4 address, got ${String(value)}`);
      value.split('.').forEach((o, i) => (buf[at + i] = Number(o)));
      return;
    }
    case 'ipv6': {
      if (typeof value !== 'string' || !isIPv6(value)) throw new InvalidArgumentError(where, `expected an IPv6 address, got ${String(value)}`);
      ipv6Bytes(value).copy(buf, at);
      return;
    }
    case 'u64':
    case 'i64': {
      const v = typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : value;
      if (typeof v !== 'bigint') throw new InvalidArgumentError(where, `expected a bigint, got ${String(value)}`);
      const [lo, hi] = t === 'u64' ? [0n, (1n << 64n) - 1n] : [-(1n << 63n), (1n << 63n) - 1n];
      if (v < lo || v > hi) throw new InvalidArgumentError(where, `${v} is out of range for ${t}`);
      if (t === 'u64') LE ? buf.writeBigUInt64LE(v, at) : buf.writeBigUInt64BE(v, at);
      else LE ? buf.writeBigInt64LE(v, at) : buf.writeBigInt64BE(v, at);
      return;
    }
    default: {
      if (typeof value !== 'number' || !Number.isInteger(value)) throw new InvalidArgumentError(where, `expected an integer, got ${String(value)}`);
      const size = SCALAR[t].size;
      const signed = t.startsWith('i');
      const bits = size * 8;
      const lo = signed ? -(2 ** (bits - 1)) : 0;
      const hi = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
      if (value < lo || value > hi) throw new InvalidArgumentError(where, `${value} is out of range for ${t} [${lo}, ${hi}]`);
      const be = t === 'be16' || t === 'be32' || !LE;
      if (signed) be ? buf.writeIntBE(value, at, size) : buf.writeIntLE(value, at, size);
      else be ? buf.writeUIntBE(value, at, size) : buf.writeUIntLE(value, at, size);
    }
  }
}

function readField(buf: Buffer, at: number, t: FieldType): unknown {
  if (typeof t === 'string') return readScalar(buf, at, t);
  if ('bytes' in t) return Buffer.from(buf.subarray(at, at + t.bytes));
  if ('array' in t) {
    const es = SCALAR[t.array].size;
    return Array.from({ length: t.length }, (_, i) => readScalar(buf, at + i * es, t.array));
  }
  return undefined;
}

function readScalar(buf: Buffer, at: number, t: Scalar): unknown {
  switch (t) {
    case 'ipv4':
      return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
    case 'ipv6':
      return ipv6String(buf.subarray(at, at + 16));
    case 'u64':
      return LE ? buf.readBigUInt64LE(at) : buf.readBigUInt64BE(at);
    case 'i64':
      return LE ? buf.readBigInt64LE(at) : buf.readBigInt64BE(at);
    case 'be16':
      return buf.readUInt16BE(at);
    case 'be32':
      return buf.readUInt32BE(at);
    default: {
      const size = SCALAR[t].size;
      if (t.startsWith('i')) return LE ? buf.readIntLE(at, size) : buf.readIntBE(at, size);
      return LE ? buf.readUIntLE(at, size) : buf.readUIntBE(at, size);
    }
  }
}

/** 16 network-order bytes of an IPv6 address (also accepts an embedded IPv4 tail). */
export function ipv6Bytes(addr: string): Buffer {
  let s = addr;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    s = `${s.slice(0, v4.index)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') as [string, string] : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** RFC 5952 text of 16 network-order bytes. */
export function ipv6String(b: Buffer): string {
  const g = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}
