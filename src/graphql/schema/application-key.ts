import type { ApplicationKeyRow } from "../../db/schema/index.js";
import { builder } from "../builder.js";
import { KeyTypeEnum } from "./enums.js";

/** An application's OAuth client for one key type. The consumer secret is never readable. */
export const ApplicationKeyRef = builder.objectRef<ApplicationKeyRow>("ApplicationKey").implement({
  fields: (t) => ({
    id: t.exposeID("id"),
    keyType: t.field({ type: KeyTypeEnum, resolve: (k) => k.keyType }),
    consumerKey: t.exposeString("consumerKey"),
    allowedDomains: t.exposeStringList("allowedDomains"),
    validityPeriod: t.exposeInt("validityPeriod", {
      nullable: true,
      description: "Seconds; null = the default from token settings; negative = never expires.",
    }),
    scopes: t.exposeStringList("scopes"),
    grantTypes: t.exposeStringList("grantTypes"),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});
