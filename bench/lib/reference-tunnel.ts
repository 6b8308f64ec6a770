// Mode (c), the reference mTLS tunnel: HAProxy (Debian) in each node's netns, mutual TLS 1.3
// with ECDSA P-256 certificates issued by the lab controller's CA, one TLS connection per app
// connection; the client pod's connections are steered to it by an nftables DNAT rule in the
// client pod's netns, which is added for (c) only and removed afterwards.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../agent/src/common/exec.js';

/** One steered destination: client-pod traffic to podIp:port goes client node → server node → pod. */
export interface TunnelRoute {
  podIp: string;
  port: number;
  clientNode: string;
  serverNode: string;
  /** node IP (fabric) of the server node, where its HAProxy terminates TLS */
  serverNodeIp: string;
  /** port HAProxy listens on in the client node (plain) and server node (TLS) */
  outPort: number;
  inPort: number;
}

export interface NodeCert {
  cert: string;
  key: string;
  /** cert + key in one file, as HAProxy's `crt` wants */
  pem: string;
}

/** Issues an ECDSA P-256 leaf from the given CA with the openssl CLI (SAN: DNS and URI). */
export async function issueCert(dir: string, name: string, caCert: string, caKey: string, sans: string[]): Promise<NodeCert> {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, `${name}-key.pem`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}-cert.pem`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `subjectAltName=${sans.join(',')}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyAgreement\n`);
  await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/O=weft-bench/CN=${name}`]);
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-days', '2', '-sha256', '-extfile', ext, '-out', cert]);
  const pem = join(dir, `${name}.pem`);
  writeFileSync(pem, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'));
  return { cert, key, pem };
}

/** HAProxy config for one node: outbound listeners for routes from it, TLS listeners for routes to it. */
/** `threads`: HAProxy's nbthread, equal to each Weft agent's data-plane threads. */
export function haproxyConfig(node: string, nodeIp: string, routes: TunnelRoute[], cert: NodeCert, caFile: string, threads = 1): string {
  const lines = [
    'global',
    `  nbthread ${threads}`,
    '  maxconn 9000',
    '  ssl-default-bind-options ssl-min-ver TLSv1.3',
    '  ssl-default-server-options ssl-min-ver TLSv1.3',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 1h',
    '  timeout server 1h',
  ];
  for (const r of routes) {
    if (r.clientNode === node) {
      lines.push(`listen weft_out_${r.outPort}`, `  bind 0.0.0.0:${r.outPort}`,
        `  server peer ${r.serverNodeIp}:${r.inPort} ssl crt ${cert.pem} ca-file ${caFile} verify required verifyhost weft-bench-${r.serverNode}`);
    }
    if (r.serverNode === node) {
      lines.push(`listen weft_in_${r.inPort}`, `  bind ${nodeIp}:${r.inPort} ssl crt ${cert.pem} ca-file ${caFile} verify required`,
        `  server app ${r.podIp}:${r.port}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** Starts HAProxy in the node's netns (foreground, child of the bench). */
export async function startHaproxy(netnsFile: string, configFile: string): Promise<ChildProcess> {
  await run('haproxy', ['-c', '-q', '-f', configFile]);
  const p = spawn('nsenter', [`--net=${netnsFile}`, '--', 'sh', '-c', 'ulimit -n "$(ulimit -Hn)"; exec haproxy -db -f "$0"', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-2000); });
  await new Promise((r) => setTimeout(r, 300));
  if (p.exitCode !== null) throw new Error(`haproxy exited ${p.exitCode}: ${err}`);
  return p;
}

const TABLE = 'weftbench';

/** DNAT in the client pod's netns: each route's podIp:port → gateway:outPort. */
export async function addSteering(netnsFile: string, gateway: string, routes: TunnelRoute[]): Promise<void> {
  const rules = routes.map((r) => `    ip daddr ${r.podIp} tcp dport ${r.port} dnat to ${gateway}:${r.outPort}`).join('\n');
  const script = `table ip ${TABLE} {\n  chain out {\n    type nat hook output priority -100; policy accept;\n${rules}\n  }\n}\n`;
  await run('nsenter', [`--net=${netnsFile}`, '--', 'nft', '-f', '-'], { input: script });
}

export async function removeSteering(netnsFile: string): Promise<void> {
  await run('nsenter', [`--net=${netnsFile}`, '--', 'nft', 'delete', 'table', 'ip', TABLE], { allowFailure: true });
}

export async function hasSteering(netnsFile: string): Promise<boolean> {
  const r = await run('nsenter', [`--net=${netnsFile}`, '--', 'nft', 'list', 'table', 'ip', TABLE], { allowFailure: true });
  return r.code === 0;
}
