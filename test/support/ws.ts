import { type Client, createClient } from "graphql-ws";
import WebSocket from "ws";
import type { TestApp } from "./app.js";

/** A real graphql-ws client (graphql-transport-ws protocol) for the app. */
export function wsClient(t: TestApp, token?: string): Client {
  return createClient({
    url: t.graphqlUrl.replace(/^http/, "ws"),
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: true,
  });
}

/** Runs one operation to completion; resolves with its single result or rejects with the error/close event. */
export function runOnce<T = any>(
  client: Client,
  query: string,
  variables?: Record<string, unknown>,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let result: T | undefined;
    client.subscribe<T>(
      { query, ...(variables ? { variables } : {}) },
      {
        next: (value) => {
          result = value as T;
        },
        error: reject,
        complete: () => resolve(result as T),
      },
    );
  });
}
