import { readTokenSettings, type TokenSettings, updateTokenSettings } from "../../domain/settings.js";
import { builder } from "../builder.js";
import { ADMIN_ONLY } from "./error.js";

const TokenSettingsRef = builder.objectRef<TokenSettings>("TokenSettings").implement({
  description: "Validity defaults (seconds; negative = never expires) and guardrails.",
  fields: (t) => ({
    applicationValidity: t.exposeInt("applicationValidity"),
    userValidity: t.exposeInt("userValidity"),
    refreshValidity: t.exposeInt("refreshValidity"),
    maxValidity: t.exposeInt("maxValidity", {
      nullable: true,
      description: "Caps every validity period; null = no cap.",
    }),
    allowNeverExpiring: t.exposeBoolean("allowNeverExpiring", {
      description:
        "Whether a validity may be negative (never expires). Once false, a key set to never expire earlier issues tokens of maxValidity, or with no maximum of the default validity.",
    }),
  }),
});

const UpdateTokenSettingsInput = builder.inputType("UpdateTokenSettingsInput", {
  fields: (t) => ({
    applicationValidity: t.int(),
    userValidity: t.int(),
    refreshValidity: t.int(),
    maxValidity: t.int({ description: "Seconds; null removes the cap." }),
    allowNeverExpiring: t.boolean(),
  }),
});

const UpdateTokenSettingsPayload = builder.objectRef<TokenSettings>("UpdateTokenSettingsPayload").implement({
  fields: (t) => ({ settings: t.field({ type: TokenSettingsRef, resolve: (x) => x }) }),
});

builder.queryField("tokenSettings", (t) =>
  t.field({
    type: TokenSettingsRef,
    description: "Admin: validity defaults and guardrails.",
    errors: { types: ADMIN_ONLY },
    resolve: (_root, _args, ctx) => readTokenSettings(ctx.deps, ctx.auth),
  }),
);

builder.mutationField("updateTokenSettings", (t) =>
  t.field({
    type: UpdateTokenSettingsPayload,
    description: "Admin: changes validity defaults and guardrails; later tokens follow them.",
    errors: { types: ADMIN_ONLY },
    args: { input: t.arg({ type: UpdateTokenSettingsInput, required: true }) },
    resolve: (_root, { input }, ctx) => {
      // Absent = unchanged; an explicit null maxValidity removes the cap.
      const { maxValidity, ...rest } = input;
      const changes = Object.fromEntries(Object.entries(rest).filter(([, v]) => v != null));
      return updateTokenSettings(ctx.deps, ctx.auth, {
        ...changes,
        ...(maxValidity !== undefined ? { maxValidity } : {}),
      });
    },
  }),
);
