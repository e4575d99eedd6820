import { asc, inArray, sql } from "drizzle-orm";
import { z } from "zod";
import type { Tx } from "../db/client.js";
import {
  type ApiResourceRow,
  type ApiRow,
  type ApiScopeRow,
  apiResources,
  apiScopes,
  apis,
} from "../db/schema/index.js";
import type { Deps } from "./deps.js";
import { AlreadyExistsError, ValidationError } from "./errors.js";
import { isUniqueViolation, parseInput, text } from "./validation.js";
import { type Auth, requireAdmin, requireViewer } from "./viewer.js";

const ScopeName = z
  .string()
  .min(1, "must not be empty")
  .max(100, "must be at most 100 characters")
  .regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, "must be an RFC 6749 §3.3 scope token (no spaces or quotes)");

export const HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] as const;

const CreateApiInput = z
  .object({
    name: text(100),
    context: z
      .string()
      .max(200, "must be at most 200 characters")
      .regex(/^(\/[A-Za-z0-9._~-]+)+$/, "must be a path such as /twitter"),
    version: z
      .string()
      .min(1, "must not be empty")
      .max(32, "must be at most 32 characters")
      .regex(/^[A-Za-z0-9._-]+$/, "may contain only letters, digits and . _ -"),
    description: text(1000).nullish(),
    scopes: z
      .array(z.object({ name: ScopeName, description: text(1000).nullish() }))
      .max(100)
      .default([]),
    resources: z
      .array(
        z.object({
          method: z.enum(HTTP_METHODS),
          pathPattern: z
            .string()
            .max(500)
            .regex(/^\/[A-Za-z0-9._~\-/{}*:]*$/, "must be a path pattern such as /search/{id} or /items/*"),
          scopes: z.array(ScopeName).max(20).default([]),
        }),
      )
      .max(200)
      .default([]),
  })
  .superRefine((api, ctx) => {
    const names = api.scopes.map((s) => s.name);
    if (new Set(names).size !== names.length) {
      ctx.addIssue({ code: "custom", path: ["scopes"], message: "scope names must be unique" });
    }
    // Resources are unique per method and path (a table constraint): say so, rather than letting the
    // unique violation surface as "an API with this context and version already exists".
    const seen = new Set<string>();
    api.resources.forEach((r, i) => {
      const key = `${r.method} ${r.pathPattern}`;
      if (seen.has(key))
        ctx.addIssue({ code: "custom", path: ["resources", i], message: `${key} is listed twice` });
      seen.add(key);
      const unknown = r.scopes.find((s) => !names.includes(s));
      if (unknown) {
        ctx.addIssue({
          code: "custom",
          path: ["resources", i, "scopes"],
          message: `scope ${unknown} is not defined by the API`,
        });
      }
    });
  });

export type CreateApiInput = z.input<typeof CreateApiInput>;

/** Admin: publishes an API with its scopes and resources. Context + version is unique. */
export async function createApi(deps: Deps, auth: Auth, input: CreateApiInput): Promise<ApiRow> {
  const viewer = requireAdmin(auth);
  const data = parseInput(CreateApiInput, input);
  try {
    return await deps.db.transaction(async (tx) => {
      await refuseNestedPrefix(tx, `${data.context}/${data.version}`);
      const [api] = await tx
        .insert(apis)
        .values({
          name: data.name,
          context: data.context,
          version: data.version,
          description: data.description ?? null,
          createdBy: viewer.id,
        })
        .returning();
      if (data.scopes.length > 0) {
        await tx
          .insert(apiScopes)
          .values(
            data.scopes.map((s) => ({ apiId: api!.id, name: s.name, description: s.description ?? null })),
          );
      }
      if (data.resources.length > 0) {
        await tx.insert(apiResources).values(data.resources.map((r) => ({ ...r, apiId: api!.id })));
      }
      return api!;
    });
  } catch (error) {
    if (isUniqueViolation(error)) {
      throw new AlreadyExistsError("Api", "context", "an API with this context and version already exists");
    }
    throw error;
  }
}

/**
 * A gateway finds an API by the `/context/version` prefix of a call's path, so no API's prefix may
 * lie under another's (`/shop/v1` and `/shop/v1/admin` + `v2`): a call to the inner one would
 * also be a call to the outer one. Serialized (the table locked against other creations) so that
 * two such APIs cannot be created at once.
 */
async function refuseNestedPrefix(tx: Tx, prefix: string): Promise<void> {
  await tx.execute(sql`lock table ${apis} in share row exclusive mode`);
  const path = sql`${apis.context} || '/' || ${apis.version} || '/'`;
  const [nested] = await tx
    .select({ context: apis.context, version: apis.version })
    .from(apis)
    // The same prefix is a duplicate, which the unique constraint reports.
    .where(
      sql`(starts_with(${`${prefix}/`}, ${path}) or starts_with(${path}, ${`${prefix}/`})) and ${path} <> ${`${prefix}/`}`,
    )
    .limit(1);
  if (nested) {
    throw new ValidationError(
      "context",
      `context: ${prefix} and the API ${nested.context}/${nested.version} would overlap (one lies under the other): a gateway could not tell which a call is for`,
    );
  }
}

/** Every published API, for any signed-in user (subscribers browse them to subscribe). */
export async function listApis(deps: Deps, auth: Auth): Promise<ApiRow[]> {
  requireViewer(auth);
  return deps.db.select().from(apis).orderBy(asc(apis.context), asc(apis.version));
}

/** Batch lookups for DataLoaders. */
export const getApisByIds = (deps: Deps, ids: readonly string[]) =>
  deps.db
    .select()
    .from(apis)
    .where(inArray(apis.id, [...ids]));

export const getScopesByApiIds = (deps: Deps, ids: readonly string[]): Promise<ApiScopeRow[]> =>
  deps.db
    .select()
    .from(apiScopes)
    .where(inArray(apiScopes.apiId, [...ids]))
    .orderBy(asc(apiScopes.name));

export const getResourcesByApiIds = (deps: Deps, ids: readonly string[]): Promise<ApiResourceRow[]> =>
  deps.db
    .select()
    .from(apiResources)
    .where(inArray(apiResources.apiId, [...ids]));
