import { requireGrantAllowed } from "../../domain/grant.js";
import { rotateRefreshToken } from "../../domain/refresh-token.js";
import { optional, required } from "../form.js";
import { type Grant, tokenResponse } from "./grant.js";

/** RFC 6749 §6: rotation with reuse detection (see rotateRefreshToken). */
export const refreshToken: Grant = {
  type: "refresh_token",
  async handle({ deps, call: { form }, client }) {
    requireGrantAllowed(client, "refresh_token");
    const issued = await rotateRefreshToken(deps, {
      refreshToken: required(form, "refresh_token"),
      clientId: client.key.consumerKey,
      scope: optional(form, "scope"),
    });
    return tokenResponse(issued.token, issued.accessToken, issued.refreshToken);
  },
};
