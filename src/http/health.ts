import type { FastifyInstance } from "fastify";
import type { Database } from "../db/client.js";

/** Liveness (the process answers) and readiness (the database answers). */
export function registerHealthRoutes(app: FastifyInstance, database: Database): void {
  app.get("/health/live", async () => ({ status: "ok" }));
  app.get("/health/ready", async (_request, reply) => {
    try {
      await database.raw("select 1");
      return { status: "ok", database: database.driver };
    } catch (error) {
      app.log.warn({ err: error }, "readiness check failed");
      return reply.code(503).send({ status: "unavailable", database: database.driver });
    }
  });
}
