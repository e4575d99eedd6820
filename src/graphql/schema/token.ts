import type { AccessTokenRow } from "../../db/schema/index.js";
import { tokenKind } from "../../db/schema/index.js";
import type { IssuedToken } from "../../domain/application-key.js";
import { isTokenActive } from "../../domain/token.js";
import {
  listTokens,
  revealTokens,
  revokeToken,
  revokeTokenById,
  revokeTokens,
  tokenCursor,
} from "../../domain/token-management.js";
import { builder } from "../builder.js";
import { KeyTypeEnum, TokenFormatEnum } from "./enums.js";
import { ADMIN_ONLY, SIGNED_IN } from "./error.js";
import { secondsUntil } from "./scalars.js";

export const TokenKindEnum = builder.enumType("TokenKind", { values: tokenKind.enumValues });

/** Token metadata. The value itself is never readable, except with TOKEN_PERSISTENCE=encrypt. */
export const TokenRef = builder.objectRef<AccessTokenRow>("Token").implement({
  fields: (t) => ({
    id: t.exposeID("id"),
    kind: t.field({ type: TokenKindEnum, resolve: (x) => x.kind }),
    format: t.field({ type: TokenFormatEnum, resolve: (x) => x.format }),
    keyType: t.field({ type: KeyTypeEnum, nullable: true, resolve: (x) => x.keyType }),
    applicationId: t.exposeID("applicationId", { nullable: true }),
    userId: t.exposeID("userId", { nullable: true }),
    clientId: t.exposeString("clientId"),
    userStoreDomain: t.exposeString("userStoreDomain"),
    scopes: t.exposeStringList("scopes"),
    issuedAt: t.expose("issuedAt", { type: "DateTime" }),
    expiresAt: t.expose("expiresAt", {
      type: "DateTime",
      nullable: true,
      description: "Null: never expires.",
    }),
    revokedAt: t.expose("revokedAt", { type: "DateTime", nullable: true }),
    revokeReason: t.exposeString("revokeReason", { nullable: true }),
    revokeScheduledAt: t.expose("revokeScheduledAt", {
      type: "DateTime",
      nullable: true,
      description: "End of a regeneration grace period.",
    }),
    active: t.boolean({ resolve: (x) => isTokenActive(x) }),
    value: t.loadable({
      type: "String",
      nullable: true,
      description:
        "The token again, only where TOKEN_PERSISTENCE=encrypt (null otherwise), and only for an admin, the token's user, or (an application token) its application's owner: never another user's token issued through your application.",
      load: (tokens: AccessTokenRow[], ctx) => revealTokens(ctx.deps, ctx.auth, tokens),
      loaderOptions: { cacheKeyFn: (token) => token.id },
      resolve: (x) => x,
    }),
  }),
});

/** A token just issued: its value is shown this once. */
export const IssuedTokenRef = builder.objectRef<IssuedToken>("IssuedToken").implement({
  fields: (t) => ({
    accessToken: t.string({ resolve: (x) => x.value }),
    tokenType: t.string({ resolve: () => "Bearer" }),
    expiresIn: t.int({
      nullable: true,
      description: "Seconds until expiry; null when the token never expires.",
      resolve: (x) => secondsUntil(x.token.expiresAt),
    }),
    token: t.field({ type: TokenRef, resolve: (x) => x.token }),
  }),
});

const TokenFilter = builder.inputType("TokenFilter", {
  fields: (t) => ({
    applicationId: t.id(),
    userId: t.id(),
    keyType: t.field({ type: KeyTypeEnum }),
    kind: t.field({ type: TokenKindEnum }),
    scope: t.string({ description: "Tokens holding this scope." }),
    active: t.boolean({ description: "Only active (true) or only inactive (false) tokens." }),
  }),
});

const TokenEdge = builder.objectRef<AccessTokenRow>("TokenEdge").implement({
  fields: (t) => ({
    cursor: t.string({ resolve: tokenCursor }),
    node: t.field({ type: TokenRef, resolve: (x) => x }),
  }),
});

const TokenConnection = builder
  .objectRef<Awaited<ReturnType<typeof listTokens>>>("TokenConnection")
  .implement({
    description: "Tokens, newest first.",
    fields: (t) => ({
      edges: t.field({ type: [TokenEdge], resolve: (x) => x.nodes }),
      nodes: t.field({ type: [TokenRef], resolve: (x) => x.nodes }),
      hasNextPage: t.exposeBoolean("hasNextPage"),
      endCursor: t.string({
        nullable: true,
        resolve: (x) => (x.nodes.length ? tokenCursor(x.nodes[x.nodes.length - 1]!) : null),
      }),
    }),
  });

const TokenPayload = (name: string) =>
  builder.objectRef<AccessTokenRow>(name).implement({
    fields: (t) => ({ token: t.field({ type: TokenRef, resolve: (x) => x }) }),
  });

const RevokeTokensPayload = builder.objectRef<{ count: number }>("RevokeTokensPayload").implement({
  fields: (t) => ({ count: t.exposeInt("count", { description: "How many active tokens were revoked." }) }),
});

builder.queryField("tokens", (t) =>
  t.field({
    type: TokenConnection,
    description: "Token metadata (never values): admins see all, others their own and their applications'.",
    errors: { types: SIGNED_IN },
    args: {
      filter: t.arg({ type: TokenFilter }),
      first: t.arg.int({ description: "Page size, 1 to 200 (default 50)." }),
      after: t.arg.string(),
    },
    resolve: (_root, args, ctx) => listTokens(ctx.deps, ctx.auth, args),
  }),
);

builder.mutationFields((t) => ({
  revokeToken: t.field({
    type: TokenPayload("RevokeTokenPayload"),
    description: "Revokes a token by value (its owner or an admin).",
    errors: { types: SIGNED_IN },
    args: {
      input: t.arg({
        type: builder.inputType("RevokeTokenInput", {
          fields: (f) => ({ token: f.string({ required: true }) }),
        }),
        required: true,
      }),
    },
    resolve: (_root, { input }, ctx) => revokeToken(ctx.deps, ctx.auth, input.token),
  }),
  revokeTokenById: t.field({
    type: TokenPayload("RevokeTokenByIdPayload"),
    description: "Revokes a token by id (its owner or an admin).",
    errors: { types: SIGNED_IN },
    args: {
      input: t.arg({
        type: builder.inputType("RevokeTokenByIdInput", {
          fields: (f) => ({ id: f.id({ required: true }) }),
        }),
        required: true,
      }),
    },
    resolve: (_root, { input }, ctx) => revokeTokenById(ctx.deps, ctx.auth, String(input.id)),
  }),
  revokeTokens: t.field({
    type: RevokeTokensPayload,
    description: "Admin: revokes every active token matching the filter.",
    errors: { types: ADMIN_ONLY },
    args: { filter: t.arg({ type: TokenFilter, required: true }) },
    resolve: async (_root, { filter }, ctx) => ({ count: await revokeTokens(ctx.deps, ctx.auth, filter) }),
  }),
}));
