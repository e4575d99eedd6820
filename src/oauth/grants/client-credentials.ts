import { grantClientCredentials } from "../../domain/grant.js";
import { optional } from "../form.js";
import { type Grant, tokenResponse } from "./grant.js";

/** RFC 6749 §4.4: an application token for the authenticated client. */
export const clientCredentials: Grant = {
  type: "client_credentials",
  async handle({ deps, call, client }) {
    const { value, token } = await grantClientCredentials(deps, client, optional(call.form, "scope"));
    return tokenResponse(token, value);
  },
};
