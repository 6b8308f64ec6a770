// bpf/tc_ingress.bpf.c on IPv6 frames, with BPF_PROG_TEST_RUN: until IPv6 is steered to the
// proxy, a new TCP flow (SYN without ACK) is dropped, whatever extension headers it hides behind;
// ICMPv6 (neighbour discovery), UDP and segments of existing flows pass. The program is attached
// only to enrolled pods, so it needs no map entry to decide (see weft_ipv6_new_tcp).
// redirect-ipv6.test.ts covers the same with real traffic.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { privilegedSkip } from '../helpers/privilege.js';
import { BpfObject, ipv6Bytes } from '../../agent/src/native/index.js';
import { rand } from './redirect-support.js';

const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const objectDir = process.env.WEFT_BPF_OBJECT_DIR ?? resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'build', 'bpf');

const POD = '2001:2::a';
const PEER = '2001:2:0:1::b';
const TCP = 6;
const UDP = 17;
const ICMPV6 = 58;

/** An extension header: its type (the next-header value naming it) and its whole bytes. */
interface Ext { type: number; bytes: Buffer }

/** Hop-by-hop / destination options / routing style header of 8*(len+1) bytes (PadN filled). */
function optsExt(type: number, units = 1): Ext {
  const b = Buffer.alloc(8 * units);
  b.writeUInt8(units - 1, 1);
  b.writeUInt8(1, 2); // PadN
  b.writeUInt8(8 * units - 4, 3);
  return { type, bytes: b };
}

function fragExt(offset: number, more: boolean): Ext {
  const b = Buffer.alloc(8);
  b.writeUInt16BE((offset << 3) | (more ? 1 : 0), 2);
  b.writeUInt32BE(0x5746, 4);
  return { type: 44, bytes: b };
}

interface Frame6 { proto?: number; flags?: number; exts?: Ext[]; version?: number; cut?: number }

/** Ethernet + IPv6 (+ extension headers) + a 20-byte TCP/UDP/ICMPv6 header. */
function frame6(f: Frame6): Buffer {
  const proto = f.proto ?? TCP;
  const exts = f.exts ?? [];
  const upper = Buffer.alloc(20);
  if (proto === TCP) {
    upper.writeUInt16BE(40000, 0);
    upper.writeUInt16BE(8080, 2);
    upper.writeUInt8(0x50, 12);
    upper.writeUInt8(f.flags ?? 0x02, 13);
  } else if (proto === ICMPV6) {
    upper.writeUInt8(135, 0); // neighbour solicitation
  }
  // Chain the next-header fields: IPv6 → exts[0] → … → upper.
  const types = [...exts.map((e) => e.type), proto];
  exts.forEach((e, i) => e.bytes.writeUInt8(types[i + 1]!, 0));
  const payload = Buffer.concat([...exts.map((e) => e.bytes), upper]);
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(((f.version ?? 6) << 28) >>> 0, 0);
  ip.writeUInt16BE(payload.length, 4);
  ip.writeUInt8(types[0]!, 6);
  ip.writeUInt8(64, 7);
  ipv6Bytes(PEER).copy(ip, 8);
  ipv6Bytes(POD).copy(ip, 24);
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(0x86dd, 12);
  const all = Buffer.concat([eth, ip, payload]);
  return f.cut === undefined ? all : all.subarray(0, all.length - f.cut);
}

describe('bpf: tc_ingress on IPv6 frames (BPF_PROG_TEST_RUN)', { skip: privilegedSkip() }, () => {
  const pinDir = `/sys/fs/bpf/weft-rbpf-v6${rand()}`; // weft-rbpf-: the prefix bpf-tc-ingress.test.ts uses
  let obj: BpfObject;
  const run = async (f: Frame6) => (await obj.program('weft_tc_ingress').testRun({ data: frame6(f) })).retval;
  const dropped = (): bigint => {
    const bss = obj.maps().find((m) => m.name.endsWith('.bss'))!;
    return bss.lookup(Buffer.alloc(4))!.readBigUInt64LE(0);
  };

  before(async () => {
    mkdirSync(join(pinDir, 'maps'), { recursive: true });
    obj = BpfObject.open(join(objectDir, 'tc_ingress.bpf.o'), { pinRootPath: join(pinDir, 'maps') });
    await obj.load();
  });

  after(() => {
    obj?.close();
    rmSync(pinDir, { recursive: true, force: true });
  });

  it('drops a TCP SYN (a new flow) and counts it', async () => {
    const before = dropped();
    assert.equal(await run({ flags: 0x02 }), TC_ACT_SHOT);
    assert.equal(await run({ flags: 0x02 | 0x08 }), TC_ACT_SHOT, 'SYN with PSH is still a SYN');
    assert.equal(dropped() - before, 2n);
  });

  it('passes TCP segments of existing flows (SYN+ACK, ACK, FIN, RST), ICMPv6 and UDP', async () => {
    for (const flags of [0x12, 0x10, 0x11, 0x04, 0x14]) assert.equal(await run({ flags }), TC_ACT_OK, `flags 0x${flags.toString(16)}`);
    assert.equal(await run({ proto: ICMPV6 }), TC_ACT_OK);
    assert.equal(await run({ proto: UDP }), TC_ACT_OK);
    assert.equal(await run({ proto: 59 }), TC_ACT_OK, 'no next header');
  });

  it('looks through extension headers: a SYN behind them is dropped, other traffic behind them passes', async () => {
    const hop = () => optsExt(0);
    const dst = () => optsExt(60, 2);
    const rt = () => optsExt(43);
    assert.equal(await run({ exts: [hop()] }), TC_ACT_SHOT);
    assert.equal(await run({ exts: [hop(), rt(), dst()] }), TC_ACT_SHOT);
    assert.equal(await run({ exts: [hop(), rt(), dst()], flags: 0x10 }), TC_ACT_OK);
    assert.equal(await run({ exts: [hop()], proto: ICMPV6 }), TC_ACT_OK, 'MLD and the like come behind hop-by-hop');
    assert.equal(await run({ exts: [dst()], proto: UDP }), TC_ACT_OK);
  });

  it('judges the first fragment and passes later ones (they carry no TCP header)', async () => {
    assert.equal(await run({ exts: [fragExt(0, true)] }), TC_ACT_SHOT, 'first fragment of a SYN');
    assert.equal(await run({ exts: [fragExt(0, true)], flags: 0x10 }), TC_ACT_OK);
    assert.equal(await run({ exts: [fragExt(0, false)] }), TC_ACT_SHOT, 'atomic fragment of a SYN');
    assert.equal(await run({ exts: [fragExt(8, false)] }), TC_ACT_OK, 'a later fragment');
  });

  it('drops what it cannot see to the end of: too many extension headers, a cut TCP header', async () => {
    const many = Array.from({ length: 9 }, () => optsExt(60));
    assert.equal(await run({ exts: many, proto: UDP }), TC_ACT_SHOT, 'a chain longer than the walk');
    assert.equal(await run({ exts: many.slice(0, 7), proto: UDP }), TC_ACT_OK, 'a long chain the walk sees through');
    assert.equal(await run({ cut: 8 }), TC_ACT_SHOT, 'TCP flags beyond the end of the frame');
  });

  it('leaves frames that are not IPv6 to the stack (it drops them)', async () => {
    assert.equal(await run({ version: 4 }), TC_ACT_OK);
  });
});
