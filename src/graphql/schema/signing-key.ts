import { ForbiddenError, UnauthenticatedError } from "../../domain/errors.js";
import { rotateSigningKey } from "../../domain/signing-key.js";
import { builder } from "../builder.js";

const RotateSigningKeyPayload = builder.objectRef<{ kid: string }>("RotateSigningKeyPayload").implement({
  fields: (t) => ({
    kid: t.exposeString("kid", { description: "The key id of the new active signing key." }),
  }),
});

builder.mutationField("rotateSigningKey", (t) =>
  t.field({
    type: RotateSigningKeyPayload,
    description:
      "Admin: retires the JWT signing key now and activates a new one for every instance. " +
      "The retired public key stays in the JWKS until every token it signed has expired.",
    errors: { types: [UnauthenticatedError, ForbiddenError] },
    resolve: (_root, _args, ctx) => rotateSigningKey(ctx.deps, ctx.auth),
  }),
);
