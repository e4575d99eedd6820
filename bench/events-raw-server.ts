/**
 * Events benchmark child: the raw `ws` baseline. A plain WebSocketServer (same `ws` version and
 * options as our GraphQL WebSocket server: no compression) that broadcasts given text messages
 * to every connected client the way the `ws` README does (one Buffer per message, sent to each
 * client), one message after another, letting I/O run between messages. No GraphQL, no
 * per-subscriber work: the ceiling our fan-out is compared with.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setImmediate as turn } from "node:timers/promises";
import { WebSocket, WebSocketServer } from "ws";
import { serve } from "./events-ipc.js";

const http = createServer((_req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
const { port } = http.address() as AddressInfo;

const handlers = {
  clients: () => wss.clients.size,
  broadcast: async ({ payloads }: { payloads: string[] }) => {
    const started = performance.now();
    for (const payload of payloads) {
      const data = Buffer.from(payload);
      for (const client of wss.clients) {
        if (client.readyState === WebSocket.OPEN) client.send(data, { binary: false });
      }
      await turn();
    }
    return performance.now() - started;
  },
};
export type RawServerApi = typeof handlers;

serve(
  handlers,
  async () => {
    for (const client of wss.clients) client.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    await new Promise<void>((resolve) => http.close(() => resolve()));
  },
  `http://127.0.0.1:${port}`,
);
