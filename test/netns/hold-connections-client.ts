// Runs inside a pod: opens N TCP connections to host:port (the sample app's echo), checks each
// echoes a line, prints {"open":N} and holds them; on SIGTERM writes one more line on each,
// checks the echo, closes them and prints {"closed":N,"failed":N,"errors":[...]}.
// argv: host port count
import net from 'node:net';

const [host, portArg, countArg] = process.argv.slice(2);
const port = Number(portArg);
const count = Number(countArg);
const errors: string[] = [];

function echo(s: net.Socket, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.includes('\n')) {
        s.off('data', onData);
        if (got.trim() === line) resolve();
        else reject(new Error(`echo mismatch: ${JSON.stringify(got)}`));
      }
    };
    s.on('data', onData);
    s.write(line + '\n');
  });
}

function open(i: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port }, () => echo(s, `hello-${i}`).then(() => {
      s.setTimeout(0);
      resolve(s);
    }, reject));
    s.setTimeout(10_000, () => s.destroy(new Error('timeout')));
    s.on('error', reject);
  });
}

const sockets = await Promise.all(Array.from({ length: count }, (_, i) => open(i).catch((err: Error) => {
  errors.push(err.message);
  return undefined;
})));
const live = sockets.filter((s): s is net.Socket => s !== undefined);
process.stdout.write(JSON.stringify({ open: live.length, errors }) + '\n');
process.once('SIGTERM', () => {
  void Promise.all(live.map((s, i) => echo(s, `bye-${i}`).then(() => true, (err: Error) => {
    errors.push(err.message);
    return false;
  }))).then((r) => {
    for (const s of live) s.end();
    process.stdout.write(JSON.stringify({ closed: r.filter(Boolean).length, failed: r.filter((x) => !x).length, errors }) + '\n');
    setTimeout(() => process.exit(0), 100);
  });
});
