// Gateway counters, rendered as Prometheus text for GET /metrics. Plain numbers: the hot
// path only increments fields.
import { ErrorCodes, type ErrorName } from '../protocol/errors.ts';

export class GatewayMetrics {
  openConnections = 0;
  authenticatedConnections = 0;
  /** Connections whose send buffer went over the lag mark and has not drained yet. */
  laggingConnections = 0;
  framesIn = 0;
  /** Direct frames (welcome/res/err/lag) written to one socket. */
  framesOut = 0;
  /** Events published to user topics (one per recipient user, however many devices). */
  eventsPublished = 0;
  rateLimitedFrames = 0;
  /** Requests being served now, across connections (admission control). */
  inflightRequests = 0;
  /** Requests refused with `busy` by admission control. */
  shedRequests = 0;
  lagEvents = 0;
  /** Purchase attempts answered from the gateway's sale board, sent to workers, shed with try_later. */
  readonly saleAttempts = { answeredLocally: 0, forwarded: 0, shed: 0 };
  readonly errorsByName = new Map<string, number>();
  readonly closesByCode = new Map<number, number>();

  countError(name: string): void {
    this.errorsByName.set(name, (this.errorsByName.get(name) ?? 0) + 1);
  }

  countClose(code: number): void {
    this.closesByCode.set(code, (this.closesByCode.get(code) ?? 0) + 1);
  }

  render(ready: boolean): string {
    const lines: string[] = [];
    const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: Array<[string, number]>) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
    };
    metric('lantern_ready', 'gauge', '1 when the gateway accepts connections (readyz).', [['', ready ? 1 : 0]]);
    metric('lantern_connections_open', 'gauge', 'Open WebSocket connections.', [['', this.openConnections]]);
    metric('lantern_requests_inflight', 'gauge', 'Requests being served now.', [['', this.inflightRequests]]);
    metric('lantern_requests_shed_total', 'counter', 'Requests refused with busy by admission control.', [['', this.shedRequests]]);
    metric('lantern_connections_authenticated', 'gauge', 'Open connections past welcome.', [['', this.authenticatedConnections]]);
    metric('lantern_connections_lagging', 'gauge', 'Connections over the slow-consumer mark (events may be dropped).', [['', this.laggingConnections]]);
    metric('lantern_frames_in_total', 'counter', 'Binary and text messages received.', [['', this.framesIn]]);
    metric('lantern_frames_out_total', 'counter', 'Frames sent directly to one connection (welcome, res, err, lag).', [['', this.framesOut]]);
    metric('lantern_events_published_total', 'counter', 'Events published to user topics.', [['', this.eventsPublished]]);
    metric('lantern_rate_limited_frames_total', 'counter', 'Frames refused by the per-connection rate limit.', [['', this.rateLimitedFrames]]);
    metric('lantern_sale_attempts_total', 'counter', 'Flash-sale purchase attempts by where they were answered: local (the gateway\'s sale board), forwarded (a worker), shed (try_later).',
      [['{where="local"}', this.saleAttempts.answeredLocally], ['{where="forwarded"}', this.saleAttempts.forwarded], ['{where="shed"}', this.saleAttempts.shed]]);
    metric('lantern_lag_events_total', 'counter', 'lag events sent to connections that fell behind.', [['', this.lagEvents]]);
    metric('lantern_errors_total', 'counter', 'err frames sent, by error name.',
      [...this.errorsByName].sort().map(([name, n]) => [`{error="${name}",code="${ErrorCodes[name as ErrorName]?.code ?? 0}"}`, n]));
    metric('lantern_closes_total', 'counter', 'Connections closed, by close code.',
      [...this.closesByCode].sort((a, b) => a[0] - b[0]).map(([code, n]) => [`{code="${code}"}`, n]));
    return lines.join('\n') + '\n';
  }
}
