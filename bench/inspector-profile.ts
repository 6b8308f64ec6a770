// Records a CPU profile of a running Node process through its inspector, from inside the
// process's netns (the inspector listens on 127.0.0.1:9229 after SIGUSR1). Needs Node 20's
// --experimental-websocket. Usage: node --experimental-websocket inspector-profile.js SECONDS OUT
import { writeFileSync } from 'node:fs';

const [seconds = '5', out = 'agent.cpuprofile', port = '9229'] = process.argv.slice(2);

async function main(): Promise<void> {
  let list: Array<{ webSocketDebuggerUrl: string }> = [];
  for (let i = 0; i < 50 && list.length === 0; i++) {
    try { list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as typeof list; } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  if (!list[0]) throw new Error(`no inspector on 127.0.0.1:${port}`);
  const WS = (globalThis as unknown as { WebSocket: new (url: string) => WebSocket }).WebSocket;
  const ws = new WS(list[0].webSocketDebuggerUrl);
  await new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; });
  let id = 0;
  const waiting = new Map<number, (v: unknown) => void>();
  ws.onmessage = (ev: MessageEvent) => {
    const m = JSON.parse(String(ev.data)) as { id?: number; result?: unknown };
    if (m.id !== undefined) waiting.get(m.id)?.(m.result);
  };
  const call = (method: string, params: object = {}) => new Promise<unknown>((res) => { const i = ++id; waiting.set(i, res); ws.send(JSON.stringify({ id: i, method, params })); });
  await call('Profiler.enable');
  await call('Profiler.setSamplingInterval', { interval: 200 });
  await call('Profiler.start');
  process.stdout.write('started\n');
  await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
  const r = (await call('Profiler.stop')) as { profile: unknown };
  writeFileSync(out, JSON.stringify(r.profile));
  ws.close();
  process.stdout.write('done\n');
}
main().then(() => process.exit(0), (err: Error) => { process.stderr.write(`inspector-profile: ${err.message}\n`); process.exit(1); });
