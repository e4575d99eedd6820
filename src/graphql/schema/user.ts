import type { Role, UserRow } from "../../db/schema/index.js";
import {
  BusyError,
  ForbiddenError,
  InvalidCredentialsError,
  InvalidGrantError,
  RateLimitedError,
  UnauthenticatedError,
  ValidationError,
} from "../../domain/errors.js";
import { login } from "../../domain/login.js";
import { rotateRefreshToken } from "../../domain/refresh-token.js";
import { CONSOLE_CLIENT_ID } from "../../domain/token.js";
import {
  changePassword,
  createUser,
  deleteUser,
  getUsersByIds,
  listUsers,
  updateUser,
} from "../../domain/user.js";
import { createUserStoreDomain, listUserStoreDomains, partitionOf } from "../../domain/user-store-domain.js";
import { requireViewer } from "../../domain/viewer.js";
import { builder } from "../builder.js";
import { ADMIN_ONLY, ADMIN_ONLY_CREATE } from "./error.js";
import { secondsUntil } from "./scalars.js";

export const RoleEnum = builder.enumType("Role", {
  values: { ADMIN: { value: "admin" as Role }, SUBSCRIBER: { value: "subscriber" as Role } },
});

export const UserRef = builder.loadableObject("User", {
  load: (ids: string[], ctx) => getUsersByIds(ctx.deps, ids),
  sort: (user: UserRow) => user.id,
  fields: (t) => ({
    id: t.exposeID("id"),
    username: t.exposeString("username"),
    roles: t.field({ type: [RoleEnum], resolve: (u) => u.roles }),
    userStoreDomain: t.exposeString("userStoreDomain"),
    disabled: t.boolean({ resolve: (u) => u.disabledAt !== null }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

const LoginPayload = builder.objectRef<Awaited<ReturnType<typeof login>>>("LoginPayload").implement({
  description: "A user access token and refresh token for the built-in console client (values shown once).",
  fields: (t) => ({
    accessToken: t.exposeString("accessToken"),
    refreshToken: t.exposeString("refreshToken"),
    tokenType: t.string({ resolve: () => "Bearer" }),
    expiresAt: t.field({ type: "DateTime", nullable: true, resolve: (p) => p.token.expiresAt }),
    expiresIn: t.int({
      nullable: true,
      description: "Seconds until the access token expires; null when it never expires.",
      resolve: (p) => secondsUntil(p.token.expiresAt),
    }),
    user: t.field({ type: UserRef, resolve: (p) => p.user }),
  }),
});

const LoginInput = builder.inputType("LoginInput", {
  fields: (t) => ({ username: t.string({ required: true }), password: t.string({ required: true }) }),
});

const RefreshUserTokenInput = builder.inputType("RefreshUserTokenInput", {
  fields: (t) => ({ refreshToken: t.string({ required: true }) }),
});

const CreateUserInput = builder.inputType("CreateUserInput", {
  fields: (t) => ({
    username: t.string({ required: true }),
    password: t.string({ required: true }),
    roles: t.field({ type: [RoleEnum], required: false, description: "Default: [SUBSCRIBER]." }),
    userStoreDomain: t.string({ required: false, description: "Default: PRIMARY." }),
  }),
});

const DeleteUserInput = builder.inputType("DeleteUserInput", {
  fields: (t) => ({ id: t.id({ required: true }) }),
});

const UserPayload = (name: string) =>
  builder
    .objectRef<UserRow>(name)
    .implement({ fields: (t) => ({ user: t.field({ type: UserRef, resolve: (u) => u }) }) });

builder.queryField("me", (t) =>
  t.field({
    type: UserRef,
    description: "The signed-in user.",
    errors: { types: [UnauthenticatedError] },
    resolve: async (_root, _args, ctx) => {
      const viewer = requireViewer(ctx.auth);
      return (await getUsersByIds(ctx.deps, [viewer.id]))[0]!;
    },
  }),
);

builder.mutationFields((t) => ({
  login: t.field({
    type: LoginPayload,
    description: "The Login API: a user access token and refresh token for the console client.",
    errors: { types: [InvalidCredentialsError, ValidationError, RateLimitedError] },
    args: { input: t.arg({ type: LoginInput, required: true }) },
    resolve: (_root, { input }, ctx) => login(ctx.deps, input, ctx.source),
  }),
  refreshUserToken: t.field({
    type: LoginPayload,
    description:
      "Rotates a console refresh token: a new access token and refresh token (reuse revokes the family).",
    errors: { types: [InvalidGrantError, ValidationError] },
    args: { input: t.arg({ type: RefreshUserTokenInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      rotateRefreshToken(ctx.deps, { refreshToken: input.refreshToken, clientId: CONSOLE_CLIENT_ID }),
  }),
  createUser: t.field({
    type: UserPayload("CreateUserPayload"),
    description: "Admin: creates a user.",
    errors: { types: ADMIN_ONLY_CREATE },
    args: { input: t.arg({ type: CreateUserInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      createUser(ctx.deps, ctx.auth, {
        username: input.username,
        password: input.password,
        roles: input.roles ?? undefined,
        userStoreDomain: input.userStoreDomain ?? undefined,
      }),
  }),
  deleteUser: t.field({
    type: UserPayload("DeleteUserPayload"),
    description: "Admin: deletes a user and revokes every token it holds.",
    errors: { types: ADMIN_ONLY },
    args: { input: t.arg({ type: DeleteUserInput, required: true }) },
    resolve: (_root, { input }, ctx) => deleteUser(ctx.deps, ctx.auth, String(input.id)),
  }),
}));

const UserStoreDomainRef = builder
  .objectRef<Awaited<ReturnType<typeof listUserStoreDomains>>[number]>("UserStoreDomain")
  .implement({
    description: "A user store domain; its users' tokens live in their own partition.",
    fields: (t) => ({
      name: t.exposeString("name"),
      partition: t.string({ resolve: (d) => partitionOf(d.name) }),
      createdAt: t.expose("createdAt", { type: "DateTime" }),
    }),
  });

const UpdateUserInput = builder.inputType("UpdateUserInput", {
  fields: (t) => ({
    id: t.id({ required: true }),
    disabled: t.boolean({ description: "Disabling revokes every token the user and its applications hold." }),
    password: t.string({ description: "A new password; revokes the user's tokens." }),
    roles: t.field({ type: [RoleEnum] }),
  }),
});

const ChangePasswordInput = builder.inputType("ChangePasswordInput", {
  fields: (t) => ({
    currentPassword: t.string({ required: true }),
    newPassword: t.string({ required: true }),
  }),
});

const CreateUserStoreDomainInput = builder.inputType("CreateUserStoreDomainInput", {
  fields: (t) => ({ name: t.string({ required: true, description: "e.g. PARTNERS" }) }),
});

const CreateUserStoreDomainPayload = builder
  .objectRef<Awaited<ReturnType<typeof createUserStoreDomain>>>("CreateUserStoreDomainPayload")
  .implement({ fields: (t) => ({ domain: t.field({ type: UserStoreDomainRef, resolve: (d) => d }) }) });

builder.queryFields((t) => ({
  users: t.field({
    type: [UserRef],
    description: "Admin: every user.",
    errors: { types: [UnauthenticatedError, ForbiddenError] },
    resolve: (_root, _args, ctx) => listUsers(ctx.deps, ctx.auth),
  }),
  userStoreDomains: t.field({
    type: [UserStoreDomainRef],
    description: "Admin: the user store domains.",
    errors: { types: [UnauthenticatedError, ForbiddenError] },
    resolve: (_root, _args, ctx) => listUserStoreDomains(ctx.deps, ctx.auth),
  }),
}));

builder.mutationFields((t) => ({
  updateUser: t.field({
    type: UserPayload("UpdateUserPayload"),
    description: "Admin: disable or enable a user, set its password or roles.",
    errors: { types: ADMIN_ONLY },
    args: { input: t.arg({ type: UpdateUserInput, required: true }) },
    resolve: (_root, { input }, ctx) => updateUser(ctx.deps, ctx.auth, { ...input, id: String(input.id) }),
  }),
  changePassword: t.field({
    type: UserPayload("ChangePasswordPayload"),
    description: "Changes the caller's password; every token it holds is revoked.",
    errors: { types: [UnauthenticatedError, ValidationError, InvalidCredentialsError, RateLimitedError] },
    args: { input: t.arg({ type: ChangePasswordInput, required: true }) },
    resolve: (_root, { input }, ctx) => changePassword(ctx.deps, ctx.auth, input, ctx.source),
  }),
  createUserStoreDomain: t.field({
    type: CreateUserStoreDomainPayload,
    description:
      "Admin: adds a user store domain and its token partition. BusyError when long-running work on the token table kept the partition from being added (retry).",
    errors: { types: [...ADMIN_ONLY_CREATE, BusyError] },
    args: { input: t.arg({ type: CreateUserStoreDomainInput, required: true }) },
    resolve: (_root, { input }, ctx) => createUserStoreDomain(ctx.deps, ctx.auth, input),
  }),
}));
