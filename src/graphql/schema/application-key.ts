import type { ApplicationKeyRow, ConsumerSecretRow } from "../../db/schema/index.js";
import {
  GRANT_TYPES,
  generateKeys,
  getSecretsByKeyIds,
  regenerateConsumerSecret,
  regenerateToken,
  setValidityPeriod,
} from "../../domain/application-key.js";
import { KeysAlreadyGeneratedError } from "../../domain/errors.js";
import { builder } from "../builder.js";
import { KeyTypeEnum } from "./enums.js";
import { SIGNED_IN } from "./error.js";
import { IssuedTokenRef } from "./token.js";

const GrantTypeEnum = builder.enumType("GrantType", { values: GRANT_TYPES });

const ConsumerSecretRef = builder.objectRef<ConsumerSecretRow>("ConsumerSecret").implement({
  description: "One of a key's consumer secrets (the value is shown only when created).",
  fields: (t) => ({
    id: t.exposeID("id"),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    expiresAt: t.expose("expiresAt", { type: "DateTime", nullable: true }),
    lastUsedAt: t.expose("lastUsedAt", {
      type: "DateTime",
      nullable: true,
      description: "Minute precision.",
    }),
    revokedAt: t.expose("revokedAt", { type: "DateTime", nullable: true }),
    active: t.boolean({ resolve: (s) => !s.revokedAt && !(s.expiresAt && s.expiresAt <= new Date()) }),
  }),
});

/** An application's OAuth client for one key type. The consumer secret is never readable. */
export const ApplicationKeyRef = builder.objectRef<ApplicationKeyRow>("ApplicationKey").implement({
  fields: (t) => ({
    id: t.exposeID("id"),
    applicationId: t.exposeID("applicationId"),
    keyType: t.field({ type: KeyTypeEnum, resolve: (k) => k.keyType }),
    consumerKey: t.exposeString("consumerKey"),
    allowedDomains: t.exposeStringList("allowedDomains", { description: "Empty or [ALL]: every domain." }),
    validityPeriod: t.exposeInt("validityPeriod", {
      nullable: true,
      description: "Seconds; null = the default from token settings; negative = never expires.",
    }),
    scopes: t.exposeStringList("scopes"),
    grantTypes: t.field({
      type: [GrantTypeEnum],
      resolve: (k) => k.grantTypes as (typeof GRANT_TYPES)[number][],
    }),
    secrets: t.loadableGroup({
      type: ConsumerSecretRef,
      load: (ids: string[], ctx) => getSecretsByKeyIds(ctx.deps, ids),
      group: (s) => s.keyId,
      resolve: (k) => k.id,
    }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
  }),
});

const GenerateKeysInput = builder.inputType("GenerateKeysInput", {
  fields: (t) => ({
    applicationId: t.id({ required: true }),
    keyType: t.field({ type: KeyTypeEnum, required: true }),
    validityPeriod: t.int({ description: "Seconds; negative = never expires; default from token settings." }),
    allowedDomains: t.stringList({
      description: "Domains calls may come from; empty or [ALL] = every domain.",
    }),
    scopes: t.stringList({
      description: "A subset of the scopes of the APIs the application subscribes to.",
    }),
    grantTypes: t.field({
      type: [GrantTypeEnum],
      description: "Default: client_credentials, refresh_token.",
    }),
  }),
});

const RegenerateTokenInput = builder.inputType("RegenerateTokenInput", {
  fields: (t) => ({
    applicationId: t.id({ required: true }),
    keyType: t.field({ type: KeyTypeEnum, required: true }),
    validityPeriod: t.int(),
    allowedDomains: t.stringList(),
    scopes: t.stringList(),
    gracePeriod: t.int({ description: "Seconds the previous tokens stay valid (default 0: revoked now)." }),
  }),
});

const RegenerateConsumerSecretInput = builder.inputType("RegenerateConsumerSecretInput", {
  fields: (t) => ({
    applicationId: t.id({ required: true }),
    keyType: t.field({ type: KeyTypeEnum, required: true }),
    gracePeriod: t.int({ description: "Seconds the previous secrets keep working (default 0: stop now)." }),
  }),
});

const SetValidityPeriodInput = builder.inputType("SetValidityPeriodInput", {
  fields: (t) => ({
    applicationId: t.id({ required: true }),
    keyType: t.field({ type: KeyTypeEnum, required: true }),
    validityPeriod: t.int({ required: true, description: "Seconds; negative = never expires." }),
    applyToActiveTokens: t.boolean({
      description: "Also move the expiry of active opaque tokens (default false).",
    }),
  }),
});

type Generated = Awaited<ReturnType<typeof generateKeys>>;
const GenerateKeysPayload = builder.objectRef<Generated>("GenerateKeysPayload").implement({
  description: "The consumer secret and access token are shown this once.",
  fields: (t) => ({
    key: t.field({ type: ApplicationKeyRef, resolve: (x) => x.key }),
    consumerKey: t.string({ resolve: (x) => x.key.consumerKey }),
    consumerSecret: t.exposeString("consumerSecret"),
    token: t.field({ type: IssuedTokenRef, resolve: (x) => x.issued }),
  }),
});

type Regenerated = Awaited<ReturnType<typeof regenerateToken>>;
const RegenerateTokenPayload = builder.objectRef<Regenerated>("RegenerateTokenPayload").implement({
  fields: (t) => ({
    key: t.field({ type: ApplicationKeyRef, resolve: (x) => x.key }),
    token: t.field({ type: IssuedTokenRef, resolve: (x) => x.issued }),
    previousTokensValidUntil: t.expose("previousValidUntil", {
      type: "DateTime",
      nullable: true,
      description: "End of the grace period; null when the previous tokens were revoked at once.",
    }),
  }),
});

type RotatedSecret = Awaited<ReturnType<typeof regenerateConsumerSecret>>;
const RegenerateConsumerSecretPayload = builder
  .objectRef<RotatedSecret>("RegenerateConsumerSecretPayload")
  .implement({
    fields: (t) => ({
      key: t.field({ type: ApplicationKeyRef, resolve: (x) => x.key }),
      consumerSecret: t.exposeString("consumerSecret"),
      previousSecretsValidUntil: t.expose("previousValidUntil", { type: "DateTime", nullable: true }),
    }),
  });

type ValiditySet = Awaited<ReturnType<typeof setValidityPeriod>>;
const SetValidityPeriodPayload = builder.objectRef<ValiditySet>("SetValidityPeriodPayload").implement({
  fields: (t) => ({
    key: t.field({ type: ApplicationKeyRef, resolve: (x) => x.key }),
    updatedTokens: t.exposeInt("updatedTokens", { description: "Active tokens whose expiry moved." }),
  }),
});

builder.mutationFields((t) => ({
  generateKeys: t.field({
    type: GenerateKeysPayload,
    description: "Consumer key, consumer secret and a first application token for one key type.",
    errors: { types: [...SIGNED_IN, KeysAlreadyGeneratedError] },
    args: { input: t.arg({ type: GenerateKeysInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      generateKeys(ctx.deps, ctx.auth, { ...input, applicationId: String(input.applicationId) }),
  }),
  regenerateToken: t.field({
    type: RegenerateTokenPayload,
    description:
      "Revokes the key's application tokens (optionally after a grace period) and issues a new one.",
    errors: { types: SIGNED_IN },
    args: { input: t.arg({ type: RegenerateTokenInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      regenerateToken(ctx.deps, ctx.auth, { ...input, applicationId: String(input.applicationId) }),
  }),
  regenerateConsumerSecret: t.field({
    type: RegenerateConsumerSecretPayload,
    description: "A new consumer secret; the previous ones stop now or after the grace period.",
    errors: { types: SIGNED_IN },
    args: { input: t.arg({ type: RegenerateConsumerSecretInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      regenerateConsumerSecret(ctx.deps, ctx.auth, { ...input, applicationId: String(input.applicationId) }),
  }),
  setValidityPeriod: t.field({
    type: SetValidityPeriodPayload,
    description:
      "The validity of the tokens the key issues from now on (and, optionally, of its active ones).",
    errors: { types: SIGNED_IN },
    args: { input: t.arg({ type: SetValidityPeriodInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      setValidityPeriod(ctx.deps, ctx.auth, { ...input, applicationId: String(input.applicationId) }),
  }),
}));
