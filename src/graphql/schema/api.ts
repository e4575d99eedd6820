import type { ApiResourceRow, ApiRow, ApiScopeRow } from "../../db/schema/index.js";
import {
  createApi,
  getApisByIds,
  getResourcesByApiIds,
  getScopesByApiIds,
  HTTP_METHODS,
  listApis,
} from "../../domain/api.js";
import { UnauthenticatedError } from "../../domain/errors.js";
import { builder } from "../builder.js";
import { ADMIN_ONLY_CREATE } from "./error.js";

const ApiScope = builder.objectRef<ApiScopeRow>("ApiScope").implement({
  fields: (t) => ({
    name: t.exposeString("name"),
    description: t.exposeString("description", { nullable: true }),
  }),
});

const HttpMethod = builder.enumType("HttpMethod", { values: HTTP_METHODS });

const ApiResource = builder.objectRef<ApiResourceRow>("ApiResource").implement({
  description: "A resource of an API (method + path pattern) and the scopes a caller must hold.",
  fields: (t) => ({
    method: t.field({ type: HttpMethod, resolve: (r) => r.method as (typeof HTTP_METHODS)[number] }),
    pathPattern: t.exposeString("pathPattern"),
    scopes: t.exposeStringList("scopes"),
  }),
});

export const ApiRef = builder.loadableObject("Api", {
  load: (ids: string[], ctx) => getApisByIds(ctx.deps, ids),
  sort: (api: ApiRow) => api.id,
  fields: (t) => ({
    id: t.exposeID("id"),
    name: t.exposeString("name"),
    context: t.exposeString("context"),
    version: t.exposeString("version"),
    description: t.exposeString("description", { nullable: true }),
    scopes: t.loadableGroup({
      type: ApiScope,
      load: (ids: string[], ctx) => getScopesByApiIds(ctx.deps, ids),
      group: (s) => s.apiId,
      resolve: (api) => api.id,
    }),
    resources: t.loadableGroup({
      type: ApiResource,
      load: (ids: string[], ctx) => getResourcesByApiIds(ctx.deps, ids),
      group: (r) => r.apiId,
      resolve: (api) => api.id,
    }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

const ApiScopeInput = builder.inputType("ApiScopeInput", {
  fields: (t) => ({ name: t.string({ required: true }), description: t.string() }),
});

const ApiResourceInput = builder.inputType("ApiResourceInput", {
  fields: (t) => ({
    method: t.field({ type: HttpMethod, required: true }),
    pathPattern: t.string({ required: true, description: "e.g. /search or /items/{id}" }),
    scopes: t.stringList({ description: "Scopes (defined by the API) a caller must hold." }),
  }),
});

const CreateApiInput = builder.inputType("CreateApiInput", {
  fields: (t) => ({
    name: t.string({ required: true }),
    context: t.string({ required: true, description: "e.g. /twitter" }),
    version: t.string({ required: true, description: "e.g. 1.0.0" }),
    description: t.string(),
    scopes: t.field({ type: [ApiScopeInput] }),
    resources: t.field({ type: [ApiResourceInput] }),
  }),
});

const CreateApiPayload = builder.objectRef<ApiRow>("CreateApiPayload").implement({
  fields: (t) => ({ api: t.field({ type: ApiRef, resolve: (api) => api }) }),
});

builder.queryField("apis", (t) =>
  t.field({
    type: [ApiRef],
    description: "Every published API.",
    errors: { types: [UnauthenticatedError] },
    resolve: (_root, _args, ctx) => listApis(ctx.deps, ctx.auth),
  }),
);

builder.mutationField("createApi", (t) =>
  t.field({
    type: CreateApiPayload,
    description: "Admin: publishes an API with its scopes and resources.",
    errors: { types: ADMIN_ONLY_CREATE },
    args: { input: t.arg({ type: CreateApiInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      createApi(ctx.deps, ctx.auth, {
        ...input,
        scopes: input.scopes ?? undefined,
        resources: input.resources?.map((r) => ({ ...r, scopes: r.scopes ?? undefined })) ?? undefined,
      }),
  }),
);
