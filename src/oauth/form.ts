import type { FastifyInstance, FastifyRequest } from "fastify";
import { OAUTH_CONTROL } from "../domain/validation.js";
import { OAuthError } from "./errors.js";

const FORM = "application/x-www-form-urlencoded";
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Parses `application/x-www-form-urlencoded` bodies strictly: UTF-8 only, raw or percent-encoded
 * (RFC 6749 Appendix B), and each parameter at most once (§3.1, §3.2). Registered in the OAuth routes' scope only.
 */
export function registerFormParser(app: FastifyInstance): void {
  app.addContentTypeParser(FORM, { parseAs: "buffer" }, (_request, body, done) => {
    try {
      done(null, parseForm(body as Buffer));
    } catch (error) {
      done(error as OAuthError, undefined);
    }
  });
}

/** True for a content type whose body `parseForm` reads (parameters such as charset allowed). */
export function isFormContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const type = contentType.toLowerCase();
  return type === FORM || (type.startsWith(FORM) && /^\s*;/.test(type.slice(FORM.length)));
}

/** A form body as parameters; invalid_request for bad UTF-8, bad percent-encoding or a repeat. */
export function parseForm(body: Buffer): Map<string, string> {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new OAuthError("invalid_request", "the request body is not valid UTF-8");
  }
  const params = new Map<string, string>();
  for (const pair of text.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    let name: string;
    let value: string;
    try {
      name = decodeComponent(eq < 0 ? pair : pair.slice(0, eq));
      value = decodeComponent(eq < 0 ? "" : pair.slice(eq + 1));
    } catch {
      // URLSearchParams would turn %FF into U+FFFD silently: distinct inputs, one value.
      throw new OAuthError("invalid_request", "the request body is not valid percent-encoded UTF-8");
    }
    // RFC 6749 Appendix A: no parameter holds a control character (a tab aside, in passwords).
    if (OAUTH_CONTROL.test(name) || OAUTH_CONTROL.test(value)) {
      throw new OAuthError("invalid_request", "the request body holds a control character");
    }
    if (params.has(name)) throw new OAuthError("invalid_request", `the ${name} parameter is repeated`);
    params.set(name, value);
  }
  return params;
}

/**
 * One form-urlencoded name or value: `+` is a space; bad percent-encoding or UTF-8 throws. Most
 * (tokens, grant types, ids) hold neither `%` nor `+` and are already what they say.
 */
export const decodeComponent = (raw: string) =>
  raw.includes("%") || raw.includes("+") ? decodeURIComponent(raw.replaceAll("+", " ")) : raw;

/** The parsed form of an OAuth request, or invalid_request when the body is not a form. */
export function formOf(request: FastifyRequest): Map<string, string> {
  if (!(request.body instanceof Map)) {
    throw new OAuthError("invalid_request", `the request body must be ${FORM}`);
  }
  return request.body as Map<string, string>;
}

/** An optional parameter; an empty value counts as absent (RFC 6749 §3.1). */
export function optional(form: Map<string, string>, name: string): string | undefined {
  const value = form.get(name);
  return value === undefined || value === "" ? undefined : value;
}

/** A required parameter, or invalid_request naming it. */
export function required(form: Map<string, string>, name: string): string {
  const value = optional(form, name);
  if (value === undefined) throw new OAuthError("invalid_request", `the ${name} parameter is missing`);
  if (value.length > 8192) throw new OAuthError("invalid_request", `the ${name} parameter is too long`);
  return value;
}
