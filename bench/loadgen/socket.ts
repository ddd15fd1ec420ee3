// WebSocket plumbing shared by the scenarios.
import WebSocket from 'ws';

/** Opens a client socket (no compression, like the servers) or fails within timeoutMs. */
export function openSocket(url: string, timeoutMs: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`connecting to ${url} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(new Error(`connecting to ${url} failed: ${err.message}`, { cause: err }));
    };
    ws.once('error', onError);
    ws.once('open', () => {
      clearTimeout(timer);
      ws.off('error', onError);
      resolve(ws);
    });
  });
}

/** Closes sockets and waits until each has closed (terminating those that take longer than timeoutMs). */
export async function closeSockets(sockets: readonly WebSocket[], timeoutMs = 2000): Promise<void> {
  await Promise.all(sockets.map((ws) => new Promise<void>((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) { resolve(); return; }
    const timer = setTimeout(() => { ws.terminate(); }, timeoutMs);
    ws.once('close', () => { clearTimeout(timer); resolve(); });
    if (ws.readyState !== WebSocket.CLOSING) ws.close(1000);
  })));
}

/** Runs fn over items with at most `limit` in flight; the first failure rejects. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  async function lane(): Promise<void> {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}
