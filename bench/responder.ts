// The bench's upstream app, run inside the server pod: answers every HTTP/1.1 request (any
// method and path, pipelining allowed) with a fixed 1 KB body. Raw TCP so the server costs the
// same, and little, in every mode. Usage: node responder.js PORT [BODY_BYTES]
import { createServer } from 'node:net';
import { responseBytes } from './lib/http-wire.js';

const port = Number(process.argv[2] ?? 8081);
const bodyBytes = Number(process.argv[3] ?? 1024);
const response = responseBytes(bodyBytes);
const END = Buffer.from('\r\n\r\n');

const server = createServer({ noDelay: true }, (sock) => {
  sock.on('error', () => undefined);
  let tail = Buffer.alloc(0);
  sock.on('data', (chunk: Buffer) => {
    // Count request ends ("\r\n\r\n"), also when one straddles two chunks.
    const buf = tail.length ? Buffer.concat([tail, chunk]) : chunk;
    let n = 0;
    let at = 0;
    for (;;) {
      const i = buf.indexOf(END, at);
      if (i < 0) break;
      n++;
      at = i + 4;
    }
    tail = Buffer.from(buf.subarray(Math.max(at, buf.length - 3)));
    if (n === 1) sock.write(response);
    else if (n > 1) sock.write(Buffer.concat(Array.from({ length: n }, () => response)));
  });
  sock.on('end', () => sock.end());
});
server.maxConnections = 1_000_000;
server.listen({ port, host: '0.0.0.0', backlog: 4096 }, () => process.stdout.write(`listening ${port}\n`));
process.on('SIGTERM', () => process.exit(0));
