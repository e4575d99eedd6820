ALTER TABLE "signing_keys" ADD COLUMN "publish_until" timestamp with time zone;--> statement-breakpoint
-- Keys from before: published until the latest expiry among the JWT access tokens still valid
-- that were issued while they were active (five minutes either side: instances re-read the active
-- key every minute), plus the hour of headroom the service adds, and at least a day after
-- retirement. Only live tokens are read (expires_at > now(), through its index): expired and
-- revoked JWTs need no key. JWTs always expire (RFC 9068), so there is no "for ever" case.
UPDATE "signing_keys" AS k SET "publish_until" = greatest(
  coalesce(k."retired_at", now()) + interval '1 day',
  (
    SELECT max(a."expires_at") + interval '1 hour'
    FROM "access_tokens" AS a
    WHERE a."expires_at" > now()
      AND a."format" = 'JWT'
      AND a."revoked_at" IS NULL
      AND a."issued_at" >= k."created_at" - interval '5 minutes'
      AND (k."retired_at" IS NULL OR a."issued_at" <= k."retired_at" + interval '5 minutes')
  )
);
