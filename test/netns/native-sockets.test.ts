// Sockets made natively inside a network namespace and used by Node through their fds:
// a listener served by net.Server.listen({fd}), an outbound socket connected by
// new net.Socket({fd}).connect(), a transparent socket keeping a foreign source IP, cookies.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { Socket, createServer, type Server } from 'node:net';
import { privilegedSkip } from '../helpers/privilege.js';
import { makeNetns, removeNetns, sh as run, sweepStale, testName } from './native-fixtures.js';
import {
  BpfObject, NativeError, bpfObjectPath, closeFd, getMark, listenInNetns, localAddress, netnsCookie, netnsCookieOfPath, peerAddress, socketCookie, socketInNetns,
} from '../../agent/src/native/index.js';

const skip = privilegedSkip();

const POD_IP = '198.18.250.1';
const FOREIGN_IP = '198.18.250.77'; // not configured anywhere: only IP_TRANSPARENT can bind it
const MARK = 0x77;

function serve(fd: number, onConn: (s: Socket) => void): Promise<Server> {
  const server = createServer(onConn);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => resolve(server));
  });
}

const held: Server[] = [];

/** A listener in this process's own netns (for its netns cookie); closed with the suite. */
async function listenAndHold(): Promise<Server> {
  const s = createServer();
  held.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return s;
}

function firstConnection(server: Server): Promise<Socket> {
  return new Promise((resolve) => server.once('connection', resolve));
}

function connectFd(fd: number, port: number, host: string): Promise<Socket> {
  const s = new Socket({ fd });
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.connect(port, host, () => resolve(s));
  });
}

describe('native: sockets in a network namespace', { skip }, () => {
  const name = testName('weft-nt');
  const path = `/run/netns/${name}`;
  const servers: Server[] = [];
  const sockets: Socket[] = [];

  before(async () => {
    sweepStale();
    run('ip', ['netns', 'add', name]);
    run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    run('ip', ['-n', name, 'addr', 'add', `${POD_IP}/32`, 'dev', 'lo']);
    // What the inbound proxy relies on to keep a client's source IP (see reference: TPROXY-less
    // source preservation): replies to marked connections route back locally.
    run('nsenter', [`--net=${path}`, 'sysctl', '-qw', 'net.ipv4.tcp_fwmark_accept=1']);
    run('ip', ['-n', name, 'rule', 'add', 'fwmark', String(MARK), 'lookup', '177']);
    run('ip', ['-n', name, 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '177']);
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    for (const s of [...servers, ...held]) s.close();
    removeNetns(name);
  });

  test('a listener made in the netns serves connections from inside it; cookies identify the netns', async () => {
    const server = await serve(await listenInNetns({ netns: path, host: POD_IP, port: 0 }), (s) => s.end('hello'));
    servers.push(server);
    const port = (server.address() as { port: number }).port;
    assert.deepEqual(server.address(), { address: POD_IP, family: 'IPv4', port });

    // A client in the netns (a separate process entered with nsenter) reaches it.
    const accepted = firstConnection(server);
    const client = spawn('nsenter', [`--net=${path}`, process.execPath, '-e',
      `const s=require('net').connect(${port},'${POD_IP}');let d='';s.on('data',x=>d+=x).on('end',()=>{process.stdout.write(d)})`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    client.stdout.on('data', (d) => (out += d));
    const conn = await accepted;
    await new Promise((r) => client.on('exit', r));
    assert.equal(out, 'hello');

    const nsCookie = await netnsCookieOfPath(path);
    const hostSock = createServer();
    await new Promise<void>((r) => hostSock.listen(0, '127.0.0.1', r));
    try {
      assert.equal(netnsCookie(server), nsCookie, 'the listener lives in the netns');
      assert.notEqual(netnsCookie(hostSock), nsCookie, 'the host netns has another cookie');
      assert.equal(typeof socketCookie(server), 'bigint');
    } finally {
      hostSock.close();
    }
    void conn;
  });

  test('an outbound socket made in the netns is connected by Node; SO_REUSEPORT shares a port', async () => {
    const fd1 = await listenInNetns({ netns: path, host: POD_IP, port: 0, reusePort: true });
    const server = await serve(fd1, (s) => sockets.push(s));
    servers.push(server);
    const port = (server.address() as { port: number }).port;
    // A second listener on the same port works only with SO_REUSEPORT on both.
    const fd2 = await listenInNetns({ netns: path, host: POD_IP, port, reusePort: true });
    closeFd(fd2);
    await assert.rejects(listenInNetns({ netns: path, host: POD_IP, port }), (e: unknown) => {
      assert.ok(e instanceof NativeError);
      assert.equal(e.syscallCode, 'EADDRINUSE');
      assert.equal(e.operation, 'bind');
      return true;
    });

    const accepted = firstConnection(server);
    const client = await connectFd(await socketInNetns({ netns: path }), port, POD_IP);
    sockets.push(client);
    const conn = await accepted;
    assert.equal(netnsCookie(client), await netnsCookieOfPath(path));
    assert.deepEqual(peerAddress(client), { family: 'IPv4', address: POD_IP, port });
    assert.equal(peerAddress(conn).port, localAddress(client).port, 'the server sees our socket');
    assert.equal(conn.remotePort, client.localPort);
  });

  test('IP_TRANSPARENT + SO_MARK: an outbound socket keeps a foreign source IP', async () => {
    const server = await serve(await listenInNetns({ netns: path, host: POD_IP, port: 0 }), (s) => sockets.push(s));
    servers.push(server);
    const port = (server.address() as { port: number }).port;

    // Without IP_TRANSPARENT the kernel refuses to bind an address that is not local.
    await assert.rejects(socketInNetns({ netns: path, bind: { host: FOREIGN_IP } }), (e: unknown) => {
      assert.ok(e instanceof NativeError);
      assert.equal(e.syscallCode, 'EADDRNOTAVAIL');
      assert.equal(e.operation, 'bind');
      return true;
    });

    const accepted = firstConnection(server);
    const client = await connectFd(await socketInNetns({ netns: path, transparent: true, mark: MARK, bind: { host: FOREIGN_IP } }), port, POD_IP);
    sockets.push(client);
    const conn = await accepted;
    assert.equal(conn.remoteAddress, FOREIGN_IP, 'the server sees the foreign source address');
    assert.equal(localAddress(client).address, FOREIGN_IP);
    assert.equal(getMark(client), MARK);
    const echoed = new Promise<string>((r) => client.once('data', (d) => r(String(d))));
    conn.write('reply');
    assert.equal(await echoed, 'reply', 'replies route back to the transparent socket');
  });

  test('failed calls and closed objects leave no file descriptors behind', async () => {
    const fds = () => readdirSync('/proc/self/fd').length;
    const held = await listenInNetns({ netns: path, host: POD_IP, port: 0 });
    const port = localAddress(held).port;
    const before = fds();
    for (let i = 0; i < 20; i++) {
      await assert.rejects(listenInNetns({ netns: path, host: POD_IP, port }), NativeError);
      await assert.rejects(socketInNetns({ netns: path, bind: { host: FOREIGN_IP } }), NativeError);
    }
    for (let i = 0; i < 3; i++) {
      const obj = BpfObject.open(bpfObjectPath('selftest'));
      await obj.load();
      obj.close();
    }
    assert.equal(fds(), before);
    closeFd(held);
  });

  test('concurrent calls for different netns each land in their own netns; threads always return (setns is per thread)', async () => {
    const other = testName('weft-nt');
    run('ip', ['netns', 'add', other]);
    try {
      const paths = [path, `/run/netns/${other}`];
      const cookies = await Promise.all(paths.map((p) => netnsCookieOfPath(p)));
      assert.notEqual(cookies[0], cookies[1]);
      const hostCookie = netnsCookie(await listenAndHold());
      const jobs = Array.from({ length: 40 }, (_, i) => (i % 3 === 2 ? undefined : paths[i % 3]));
      // Failing work inside a netns is mixed in: its thread must come back to the host netns too.
      const failing = Promise.allSettled(Array.from({ length: 20 }, () => socketInNetns({ netns: path, bind: { host: FOREIGN_IP } })));
      const fds = await Promise.all(jobs.map((p) => listenInNetns({ ...(p ? { netns: p } : {}), host: '127.0.0.1', port: 0 })));
      assert.ok((await failing).every((r) => r.status === 'rejected'));
      const later = await Promise.all(Array.from({ length: 8 }, () => socketInNetns({})));
      for (const fd of later) {
        assert.equal(netnsCookie(fd), hostCookie, 'pool threads are back in the host netns');
        closeFd(fd);
      }
      try {
        fds.forEach((fd, i) => {
          const p = jobs[i];
          assert.equal(netnsCookie(fd), p ? cookies[paths.indexOf(p)] : hostCookie, `socket ${i} (${p ?? 'host'})`);
        });
      } finally {
        fds.forEach((fd) => closeFd(fd));
      }
    } finally {
      removeNetns(other);
    }
  });

  test('a transparent socket with a destination never takes the 4-tuple of a connection the netns already has', async () => {
    // The proxy's dial to an app from a client's IP must not reuse the 4-tuple of a connection
    // that client already has to that app (accepted on :15006): the app's SYN would meet it.
    // Client netns A (198.18.251.1) holds 9 connections from ports 40000-40008 to the pod B
    // (198.18.251.2:9000); B's ephemeral range is 40000-40009, so 40009 is the only safe port.
    const a = makeNetns();
    const b = makeNetns();
    const A_IP = '198.18.251.1';
    const B_IP = '198.18.251.2';
    const conns: Socket[] = [];
    try {
      // Made directly inside the two netns: the names never touch the host's.
      run('ip', ['link', 'add', 'eth0', 'netns', a.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b.name]);
      run('ip', ['-n', a.name, 'addr', 'add', `${A_IP}/30`, 'dev', 'eth0']);
      run('ip', ['-n', b.name, 'addr', 'add', `${B_IP}/30`, 'dev', 'eth0']);
      run('ip', ['-n', a.name, 'link', 'set', 'eth0', 'up']);
      run('ip', ['-n', b.name, 'link', 'set', 'eth0', 'up']);
      run('nsenter', [`--net=${b.path}`, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=40000 40009']);
      const app = await serve(await listenInNetns({ netns: b.path, host: B_IP, port: 9000 }), (c) => conns.push(c));
      servers.push(app);
      for (let port = 40000; port <= 40008; port++) {
        conns.push(await connectFd(await socketInNetns({ netns: a.path, bind: { host: A_IP, port } }), 9000, B_IP));
      }
      await new Promise((r) => setTimeout(r, 100)); // the app has accepted them all
      // Without a destination bind() is free to take a colliding port: holding five sockets
      // covers every odd port, four of which collide (so this setup does exercise the check).
      const plain: number[] = [];
      for (let i = 0; i < 5; i++) plain.push(await socketInNetns({ netns: b.path, transparent: true, bind: { host: A_IP } }));
      const plainPorts = plain.map((fd) => localAddress(fd).port);
      for (const fd of plain) closeFd(fd);
      assert.ok(plainPorts.some((p) => p <= 40008), `some plain binds collide: ${plainPorts.join(', ')}`);
      const fdsBefore = readdirSync('/proc/self/fd').length;
      const fd = await socketInNetns({ netns: b.path, transparent: true, bind: { host: A_IP }, destination: { host: B_IP, port: 9000 } });
      try {
        assert.equal(localAddress(fd).port, 40009, 'the only port whose 4-tuple (198.18.251.1:port → 198.18.251.2:9000) is unused');
        assert.equal(readdirSync('/proc/self/fd').length, fdsBefore + 1, 'the colliding sockets held while it searched are closed again');
      } finally {
        closeFd(fd);
      }
    } finally {
      for (const c of conns) c.destroy();
      removeNetns(a.name);
      removeNetns(b.name);
    }
  });

  test('IPv6 listeners and sockets', async () => {
    const server = await serve(await listenInNetns({ netns: path, host: '::1', port: 0 }), (s) => sockets.push(s));
    servers.push(server);
    const addr = server.address() as { address: string; family: string; port: number };
    assert.deepEqual([addr.address, addr.family], ['::1', 'IPv6']);
    const client = await connectFd(await socketInNetns({ netns: path, family: 6 }), addr.port, '::1');
    sockets.push(client);
    assert.deepEqual(peerAddress(client), { family: 'IPv6', address: '::1', port: addr.port });
  });

  test('an unknown netns is a NativeError (ENOENT, open netns); nothing is created', async () => {
    await assert.rejects(listenInNetns({ netns: '/run/netns/weft-nt-absent', port: 0 }), (e: unknown) => e instanceof NativeError && e.syscallCode === 'ENOENT' && e.operation === 'open netns');
    await assert.rejects(netnsCookieOfPath('/run/netns/weft-nt-absent'), (e: unknown) => e instanceof NativeError && e.syscallCode === 'ENOENT');
  });
});
