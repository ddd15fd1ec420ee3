// 'echo': each client sends send-frames to the raw uWS echo server and measures the round
// trip when its own frame comes back. Same frames and decoding as chat-1to1, so the two
// rates compare the servers, not the generator.
import type WebSocket from 'ws';
import { decodeFrame, encodeFrame } from '../../../protocol/codec.ts';
import { urlOf } from '../messages.ts';
import { makeStamper, readStamp, textSendFrame } from '../payload.ts';
import { closeSockets, mapLimit, openSocket } from '../socket.ts';
import { SETUP_CONCURRENCY, type ScenarioSetup } from './scenario.ts';

export const setupEcho: ScenarioSetup = async (config, sink) => {
  const stamp = makeStamper(config.load.payloadBytes);
  let closing = false;
  const indices = Array.from({ length: config.clients }, (_, i) => i);
  const sockets: WebSocket[] = [];
  const senders = await mapLimit(indices, SETUP_CONCURRENCY, async (i) => {
    const ws = await openSocket(urlOf(config, config.firstClient + i), config.setupTimeoutMs);
    sockets.push(ws);
    const cidPrefix = `${config.firstClient + i}-`;
    let nextId = 0;
    ws.on('message', (data: Buffer) => {
      let text: unknown;
      try {
        const frame = decodeFrame(data);
        text = (frame['body'] as { text?: unknown } | undefined)?.text;
      } catch (err) {
        sink.failed(null, `echo client ${i}: ${(err as Error).message}`);
        return;
      }
      const sentAt = readStamp(text);
      if (Number.isNaN(sentAt)) sink.failed(null, `echo client ${i}: reply without a timestamp`);
      else sink.delivered(i, sentAt);
    });
    // ws always follows 'error' with 'close': report once, on close, with the cause.
    let lastError = '';
    ws.on('error', (err) => { lastError = ` after error: ${err.message}`; });
    ws.on('close', (code) => { if (!closing) sink.failed(null, `echo client ${i}: closed ${code}${lastError}`); });
    return {
      send(stampMs: number): void {
        const id = ++nextId;
        ws.send(encodeFrame(textSendFrame(id, 'echo', cidPrefix + id, stamp(stampMs))));
      },
      bufferedAmount: () => ws.bufferedAmount,
    };
  });
  return {
    senders,
    close: async () => {
      closing = true;
      await closeSockets(sockets);
    },
  };
};
