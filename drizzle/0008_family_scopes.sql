ALTER TABLE "refresh_token_families" ADD COLUMN "scopes" text[];--> statement-breakpoint
-- Families started before: the scopes of the access token their first refresh token came with
-- (the grant's own), where that token is still stored. One pass, set-based.
UPDATE "refresh_token_families" AS f SET "scopes" = first."scopes"
FROM (
  SELECT DISTINCT ON (rt."family_id") rt."family_id", a."scopes"
  FROM "refresh_tokens" AS rt
  JOIN "access_tokens" AS a ON a."id" = rt."access_token_id"
  ORDER BY rt."family_id", rt."issued_at", rt."id"
) AS first
WHERE first."family_id" = f."id";
