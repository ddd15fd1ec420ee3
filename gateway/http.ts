// Plain HTTP routes next to the WebSocket: health, readiness and Prometheus metrics. All
// answer synchronously inside the uWS callback (so no onAborted/cork is needed); anything
// answering after an await must register res.onAborted and cork its writes.
import type uWS from 'uWebSockets.js';
import type { GatewayMetrics } from './metrics.ts';

export interface HttpDeps {
  /** 'ready' → /readyz 200; anything else is the 503 body ('starting', 'draining'). */
  readiness(): 'ready' | 'starting' | 'draining';
  metrics: GatewayMetrics;
  /** More routes, registered before the catch-all 404 (the admin API). */
  more?: (app: uWS.TemplatedApp) => void;
}

export function registerHttpRoutes(app: uWS.TemplatedApp, deps: HttpDeps): void {
  app.get('/healthz', (res) => {
    res.writeHeader('content-type', 'text/plain').end('ok', true);
  });
  app.get('/readyz', (res) => {
    const state = deps.readiness();
    if (state === 'ready') res.writeHeader('content-type', 'text/plain').end('ready', true);
    else res.writeStatus('503 Service Unavailable').writeHeader('content-type', 'text/plain').end(state, true);
  });
  app.get('/metrics', (res) => {
    res.writeHeader('content-type', 'text/plain; version=0.0.4').end(deps.metrics.render(deps.readiness() === 'ready'), true);
  });
  deps.more?.(app);
  app.any('/*', (res) => {
    res.writeStatus('404 Not Found').writeHeader('content-type', 'text/plain').end('not found', true);
  });
}
