import type { Role } from "../db/schema/index.js";
import { ForbiddenError, UnauthenticatedError } from "./errors.js";

/** The authenticated caller of a GraphQL operation. */
export interface Viewer {
  readonly id: string;
  readonly username: string;
  readonly roles: readonly Role[];
  readonly userStoreDomain: string;
  /** The access token the caller presented. */
  readonly tokenId: string;
}

/** Who is calling: a viewer, nobody, or someone whose credentials failed. */
export type Auth =
  | { readonly viewer: Viewer }
  | { readonly viewer: null; readonly failure: "missing" | "invalid" };

export const isAdmin = (viewer: Viewer) => viewer.roles.includes("admin");

/** The viewer, or an UnauthenticatedError that says whether credentials were missing or bad. */
export function requireViewer(auth: Auth): Viewer {
  if (auth.viewer) return auth.viewer;
  throw new UnauthenticatedError(
    auth.failure === "missing"
      ? "authentication required: send Authorization: Bearer <access token>"
      : "the access token is invalid, expired or revoked",
  );
}

/** The viewer if it is an admin; ForbiddenError for other roles. */
export function requireAdmin(auth: Auth): Viewer {
  const viewer = requireViewer(auth);
  if (!isAdmin(viewer)) throw new ForbiddenError("this operation requires the admin role");
  return viewer;
}
