import { grantPassword } from "../../domain/grant.js";
import { optional, required } from "../form.js";
import { type Grant, tokenResponse } from "./grant.js";

/** RFC 6749 §4.3 (the Login API): a user token, and a refresh token where the key allows refresh. */
export const password: Grant = {
  type: "password",
  async handle({ deps, call, client }) {
    const { form } = call;
    const credentials = { username: required(form, "username"), password: required(form, "password") };
    const issued = await grantPassword(deps, client, credentials, optional(form, "scope"), call.ip);
    return tokenResponse(issued.token, issued.accessToken, issued.refreshToken);
  },
};
