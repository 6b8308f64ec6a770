// The fixed HTTP/1.1 exchange between the bench's load generator and responder. Responses
// have a fixed length, so the client counts bytes instead of parsing (the proxies under test
// are L4 and pass bytes unchanged).

export function responseBytes(bodyBytes: number): Buffer {
  const head = `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${bodyBytes}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), Buffer.alloc(bodyBytes, 0x61)]);
}

export function requestBytes(host: string, close = false): Buffer {
  return Buffer.from(`GET /1k HTTP/1.1\r\nHost: ${host}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`);
}
