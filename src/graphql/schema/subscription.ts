import type { SubscriptionRow } from "../../db/schema/index.js";
import { subscribe, unsubscribe } from "../../domain/subscription.js";
import { builder } from "../builder.js";
import { ApiRef } from "./api.js";
import { TierEnum } from "./enums.js";
import { SIGNED_IN, SIGNED_IN_CREATE } from "./error.js";

/** Named ApiSubscription: `Subscription` is GraphQL's root type for live operations. */
export const ApiSubscriptionRef = builder.objectRef<SubscriptionRow>("ApiSubscription").implement({
  description: "An application's subscription to an API at a tier.",
  fields: (t) => ({
    id: t.exposeID("id"),
    applicationId: t.exposeID("applicationId"),
    tier: t.field({ type: TierEnum, resolve: (s) => s.tier }),
    api: t.field({ type: ApiRef, resolve: (s) => s.apiId }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

const SubscribeInput = builder.inputType("SubscribeInput", {
  fields: (t) => ({
    applicationId: t.id({ required: true }),
    apiId: t.id({ required: true }),
    tier: t.field({ type: TierEnum, description: "Default: Unlimited." }),
  }),
});

const UnsubscribeInput = builder.inputType("UnsubscribeInput", {
  fields: (t) => ({ applicationId: t.id({ required: true }), apiId: t.id({ required: true }) }),
});

const SubscriptionPayload = (name: string) =>
  builder.objectRef<SubscriptionRow>(name).implement({
    fields: (t) => ({ subscription: t.field({ type: ApiSubscriptionRef, resolve: (s) => s }) }),
  });

builder.mutationFields((t) => ({
  subscribe: t.field({
    type: SubscriptionPayload("SubscribePayload"),
    description: "Subscribes an application to an API.",
    errors: { types: SIGNED_IN_CREATE },
    args: { input: t.arg({ type: SubscribeInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      subscribe(ctx.deps, ctx.auth, {
        applicationId: String(input.applicationId),
        apiId: String(input.apiId),
        tier: input.tier ?? undefined,
      }),
  }),
  unsubscribe: t.field({
    type: SubscriptionPayload("UnsubscribePayload"),
    description: "Removes an application's subscription to an API.",
    errors: { types: SIGNED_IN },
    args: { input: t.arg({ type: UnsubscribeInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      unsubscribe(ctx.deps, ctx.auth, {
        applicationId: String(input.applicationId),
        apiId: String(input.apiId),
      }),
  }),
}));
