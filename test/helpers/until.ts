// Polls `cond` every 10 ms until it holds; rejects naming `what` after `ms`. Resolves with the
// milliseconds it waited.
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 8000): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - start;
}
