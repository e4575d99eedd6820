import { Writable } from "node:stream";
import type { FastifyBaseLogger } from "fastify";
import { describe, expect, it } from "vitest";
import { lazyRequestLogger } from "../../src/http/request-logger.js";
import { createLogger } from "../../src/logger.js";

function capture(level: string) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { logger: createLogger(level, stream) as unknown as FastifyBaseLogger, lines };
}

describe("lazyRequestLogger (Fastify's per-request child logger)", () => {
  it("writes enabled levels with the request's bindings, and drops the others", () => {
    const { logger, lines } = capture("warn");
    const log = lazyRequestLogger(logger, { reqId: "req-1" }, {});
    log.info("dropped");
    log.debug("dropped");
    log.warn({ attempt: 2 }, "kept");
    log.error("kept too");
    expect(lines.map((l) => [l.msg, l.reqId, l.level])).toEqual([
      ["kept", "req-1", 40],
      ["kept too", "req-1", 50],
    ]);
    expect(lines[0]?.attempt).toBe(2);
    expect(log.level).toBe("warn");
  });

  it("honours a route's own level (logLevel) over the parent's", () => {
    const { logger, lines } = capture("info");
    const log = lazyRequestLogger(logger, { reqId: "req-2" }, { level: "warn" });
    log.info("dropped");
    log.warn("kept");
    expect(lines.map((l) => l.msg)).toEqual(["kept"]);
    expect(log.level).toBe("warn");
  });

  it("still redacts secrets in what it writes, and its children carry both bindings", () => {
    const { logger, lines } = capture("info");
    const log = lazyRequestLogger(logger, { reqId: "req-3" }, {});
    log.info({ password: "hunter2" }, "login");
    log.child({ step: "auth" }).info("nested");
    expect(lines[0]).toMatchObject({ msg: "login", reqId: "req-3", password: "[redacted]" });
    expect(lines[1]).toMatchObject({ msg: "nested", reqId: "req-3", step: "auth" });
  });

  it("can be raised or lowered at run time like a pino logger", () => {
    const { logger, lines } = capture("warn");
    const log = lazyRequestLogger(logger, { reqId: "req-4" }, {});
    log.level = "info";
    log.info("now kept");
    expect(lines.map((l) => l.msg)).toEqual(["now kept"]);
  });
});
