// Unit tests of bpf/tc_ingress.bpf.c with BPF_PROG_TEST_RUN: crafted Ethernet/IPv4/TCP frames
// run through the real program, with its maps filled through the agent's codec. The program's
// sockets lookups (bpf_skc_lookup_tcp) run in this test's own netns. The hand-off itself
// (bpf_sk_assign) refuses test-run packets, which are not at tc ingress; redirect.test.ts covers
// it with real traffic.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { privilegedSkip } from '../helpers/privilege.js';
import { BpfObject } from '../../agent/src/native/index.js';
import { encodeIpKey, encodeNetnsKey, encodePodConfig, encodeU64 } from '../../agent/src/redirect/codec.js';
import { rand } from './redirect-support.js';

const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const objectDir = process.env.WEFT_BPF_OBJECT_DIR ?? resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'build', 'bpf');

interface Frame { src: string; dst: string; sport: number; dport: number; proto?: number; ethertype?: number; syn?: boolean; optionWords?: number }

function frame(f: Frame): Buffer {
  const opt = 4 * (f.optionWords ?? 0); // IP options, as NOPs
  const ipLen = 20 + opt;
  const b = Buffer.alloc(14 + ipLen + 20);
  b.writeUInt16BE(f.ethertype ?? 0x0800, 12);
  b.writeUInt8(0x40 | (ipLen / 4), 14);
  b.writeUInt16BE(ipLen + 20, 16);
  b.writeUInt8(64, 22);
  b.writeUInt8(f.proto ?? 6, 23);
  f.src.split('.').forEach((o, i) => b.writeUInt8(Number(o), 26 + i));
  f.dst.split('.').forEach((o, i) => b.writeUInt8(Number(o), 30 + i));
  b.fill(1, 34, 34 + opt);
  const t = 14 + ipLen;
  b.writeUInt16BE(f.sport, t);
  b.writeUInt16BE(f.dport, t + 2);
  b.writeUInt8(0x50, t + 12); // data offset 5
  b.writeUInt8(f.syn === false ? 0x10 : 0x02, t + 13); // ACK or SYN
  return b;
}

describe('bpf: tc_ingress under BPF_PROG_TEST_RUN', { skip: privilegedSkip() }, () => {
  const pinDir = `/sys/fs/bpf/weft-rbpf-${rand()}`;
  let obj: BpfObject;
  const POD = '198.19.251.10';
  const NODE = '198.19.251.1';
  const CLIENT = '198.19.251.20';
  const NETNS = 4242n; // any value: tc finds the pod by IP, then uses this as the key

  const run = async (f: Frame) => (await obj.program('weft_tc_ingress').testRun({ data: frame(f) })).retval;
  const setPod = (ip: string, cookie: bigint, enrolled = true) => {
    obj.map('weft_pod_ips').update(encodeIpKey(ip), encodeU64(cookie));
    obj.map('weft_pods').update(encodeNetnsKey(cookie), encodePodConfig({ enrolled, ip4: ip, nodeIp4: NODE, excludedPorts: [] }));
  };

  before(async () => {
    mkdirSync(join(pinDir, 'maps'), { recursive: true });
    obj = BpfObject.open(join(objectDir, 'tc_ingress.bpf.o'), { pinRootPath: join(pinDir, 'maps') });
    await obj.load();
    setPod(POD, NETNS);
  });

  after(() => {
    obj?.close();
    rmSync(pinDir, { recursive: true, force: true });
  });

  it('passes what is not new TCP to an enrolled pod: other addresses, UDP, IPv6, HBONE, node probes', async () => {
    assert.equal(await run({ src: CLIENT, dst: '198.19.251.99', sport: 40000, dport: 8080 }), TC_ACT_OK);
    assert.equal(await run({ src: CLIENT, dst: POD, sport: 40000, dport: 8080, proto: 17 }), TC_ACT_OK);
    assert.equal(await run({ src: CLIENT, dst: POD, sport: 40000, dport: 8080, ethertype: 0x86dd }), TC_ACT_OK);
    assert.equal(await run({ src: CLIENT, dst: POD, sport: 40000, dport: 15008 }), TC_ACT_OK);
    assert.equal(await run({ src: NODE, dst: POD, sport: 40000, dport: 8080 }), TC_ACT_OK);
  });

  it('drops new plaintext flows to an enrolled pod whose :15006 listener is missing (fail closed)', async () => {
    assert.equal(await run({ src: CLIENT, dst: POD, sport: 40000, dport: 8080 }), TC_ACT_SHOT);
    assert.equal(await run({ src: CLIENT, dst: POD, sport: 40001, dport: 15006 }), TC_ACT_SHOT);
    // IP options move the TCP header; they must not be a way around the proxy.
    assert.equal(await run({ src: CLIENT, dst: POD, sport: 40002, dport: 8080, optionWords: 2 }), TC_ACT_SHOT);
    assert.equal(await run({ src: NODE, dst: POD, sport: 40002, dport: 8080, optionWords: 2 }), TC_ACT_OK);
  });

  it('passes everything for a pod that is recorded but not enrolled', async () => {
    setPod('198.19.251.11', 4343n, false);
    assert.equal(await run({ src: CLIENT, dst: '198.19.251.11', sport: 40000, dport: 8080 }), TC_ACT_OK);
  });

  it('lets packets of an established flow pass and steers packets that would reach a listener', async () => {
    // A real loopback connection in this netns; 127.0.0.1 plays the pod address.
    setPod('127.0.0.1', 4444n);
    let accepted: Socket | undefined;
    const server: Server = createServer((s) => (accepted = s));
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as { port: number }).port;
    const client = connect(port, '127.0.0.1');
    await new Promise<void>((res) => client.once('connect', res));
    try {
      // server → client: matches the client's established socket.
      assert.equal(await run({ src: '127.0.0.1', dst: '127.0.0.1', sport: port, dport: client.localPort!, syn: false }), TC_ACT_OK);
      // a new SYN to the listening port: the lookup finds only the listener → steer → no proxy listener → drop.
      assert.equal(await run({ src: '127.0.0.1', dst: '127.0.0.1', sport: 1, dport: port }), TC_ACT_SHOT);
    } finally {
      client.destroy();
      accepted?.destroy();
      server.close();
    }
  });

  it('steers a SYN that meets a TIME_WAIT socket (a new connection), passes other TIME_WAIT packets', async () => {
    setPod('127.0.0.1', 4444n);
    let accepted: Socket | undefined;
    const server: Server = createServer((s) => (accepted = s));
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as { port: number }).port;
    const client = connect(port, '127.0.0.1');
    await new Promise<void>((res) => client.once('connect', res));
    const cport = client.localPort!;
    while (!accepted) await new Promise((r) => setTimeout(r, 5));
    // The server side closes first, so its socket (127.0.0.1:port ↔ :cport) goes to TIME_WAIT.
    const closed = new Promise((r) => client.once('close', r));
    accepted.end();
    client.on('end', () => client.end());
    await closed;
    await new Promise((r) => setTimeout(r, 50));
    server.close();
    const tw = spawnSync('ss', ['-Htan', 'state', 'time-wait', `sport = :${port}`], { encoding: 'utf8' }).stdout;
    assert.match(tw, new RegExp(`:${cport}\\b`), 'the server side is in TIME_WAIT');
    assert.equal(await run({ src: '127.0.0.1', dst: '127.0.0.1', sport: cport, dport: port }), TC_ACT_SHOT, 'SYN over TIME_WAIT is a new flow');
    assert.equal(await run({ src: '127.0.0.1', dst: '127.0.0.1', sport: cport, dport: port, syn: false }), TC_ACT_OK, 'ACK to TIME_WAIT is left to the stack');
  });
});
