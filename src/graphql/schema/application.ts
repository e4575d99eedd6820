import type { ApplicationRow } from "../../db/schema/index.js";
import {
  createApplication,
  deleteApplication,
  getApplication,
  getKeysByApplicationIds,
  listApplications,
} from "../../domain/application.js";
import { UnauthenticatedError } from "../../domain/errors.js";
import { getSubscriptionsByApplicationIds } from "../../domain/subscription.js";
import { builder } from "../builder.js";
import { ApplicationKeyRef } from "./application-key.js";
import { TierEnum, TokenFormatEnum } from "./enums.js";
import { SIGNED_IN, SIGNED_IN_CREATE } from "./error.js";
import { ApiSubscriptionRef } from "./subscription.js";
import { UserRef } from "./user.js";

export const ApplicationRef = builder.objectRef<ApplicationRow>("Application").implement({
  description: "A logical collection of subscribed APIs, owned by one user.",
  fields: (t) => ({
    id: t.exposeID("id"),
    name: t.exposeString("name"),
    description: t.exposeString("description", { nullable: true }),
    throttlingTier: t.field({ type: TierEnum, resolve: (a) => a.throttlingTier }),
    tokenFormat: t.field({ type: TokenFormatEnum, resolve: (a) => a.tokenFormat }),
    owner: t.field({ type: UserRef, resolve: (a) => a.ownerId }),
    // Batched: one statement for all applications in the response, not one per application.
    subscriptions: t.loadableGroup({
      type: ApiSubscriptionRef,
      load: (ids: string[], ctx) => getSubscriptionsByApplicationIds(ctx.deps, ids),
      group: (s) => s.applicationId,
      resolve: (a) => a.id,
    }),
    keys: t.loadableGroup({
      type: ApplicationKeyRef,
      load: (ids: string[], ctx) => getKeysByApplicationIds(ctx.deps, ids),
      group: (k) => k.applicationId,
      resolve: (a) => a.id,
    }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

const CreateApplicationInput = builder.inputType("CreateApplicationInput", {
  fields: (t) => ({
    name: t.string({ required: true }),
    description: t.string(),
    throttlingTier: t.field({ type: TierEnum, description: "Default: Unlimited." }),
    tokenFormat: t.field({ type: TokenFormatEnum, description: "Default: OPAQUE." }),
    ownerId: t.id({ description: "Admins only: create the application for this user." }),
  }),
});

const ApplicationIdInput = builder.inputType("DeleteApplicationInput", {
  fields: (t) => ({ id: t.id({ required: true }) }),
});

const ApplicationPayload = (name: string) =>
  builder.objectRef<ApplicationRow>(name).implement({
    fields: (t) => ({ application: t.field({ type: ApplicationRef, resolve: (a) => a }) }),
  });

builder.queryFields((t) => ({
  applications: t.field({
    type: [ApplicationRef],
    description: "The caller's applications; admins see every application, or one owner's.",
    errors: { types: [UnauthenticatedError] },
    args: { ownerId: t.arg.id({ description: "Admins only: filter by owner." }) },
    resolve: (_root, args, ctx) =>
      listApplications(ctx.deps, ctx.auth, { ownerId: args.ownerId?.toString() }),
  }),
  application: t.field({
    type: ApplicationRef,
    errors: { types: SIGNED_IN },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => getApplication(ctx.deps, ctx.auth, String(args.id)),
  }),
}));

builder.mutationFields((t) => ({
  createApplication: t.field({
    type: ApplicationPayload("CreateApplicationPayload"),
    errors: { types: SIGNED_IN_CREATE },
    args: { input: t.arg({ type: CreateApplicationInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      createApplication(ctx.deps, ctx.auth, {
        name: input.name,
        description: input.description,
        throttlingTier: input.throttlingTier ?? undefined,
        tokenFormat: input.tokenFormat ?? undefined,
        ownerId: input.ownerId?.toString(),
      }),
  }),
  deleteApplication: t.field({
    type: ApplicationPayload("DeleteApplicationPayload"),
    description: "Deletes an application and revokes its tokens.",
    errors: { types: SIGNED_IN },
    args: { input: t.arg({ type: ApplicationIdInput, required: true }) },
    resolve: (_root, { input }, ctx) => deleteApplication(ctx.deps, ctx.auth, String(input.id)),
  }),
}));
