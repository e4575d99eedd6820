import { pgEnum } from "drizzle-orm/pg-core";

export const keyType = pgEnum("key_type", ["PRODUCTION", "SANDBOX"]);
export const tokenKind = pgEnum("token_kind", ["APPLICATION", "USER"]);
export const tokenFormat = pgEnum("token_format", ["OPAQUE", "JWT"]);
export const tier = pgEnum("tier", ["Unlimited", "Gold", "Silver", "Bronze"]);

export type KeyType = (typeof keyType.enumValues)[number];
export type TokenKind = (typeof tokenKind.enumValues)[number];
export type TokenFormat = (typeof tokenFormat.enumValues)[number];
export type Tier = (typeof tier.enumValues)[number];
