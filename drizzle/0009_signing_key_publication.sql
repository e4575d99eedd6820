ALTER TABLE "signing_keys" ADD COLUMN "publish_until" timestamp with time zone;--> statement-breakpoint
-- Keys from before: published until the latest expiry among the JWT access tokens issued while
-- they were active (five minutes either side: instances re-read the active key every minute),
-- and at least a day after retirement. One pass, set-based.
UPDATE "signing_keys" AS k SET "publish_until" = greatest(
  coalesce(k."retired_at", now()) + interval '1 day',
  (
    SELECT CASE WHEN bool_or(a."expires_at" IS NULL) THEN 'infinity'::timestamptz ELSE max(a."expires_at") END
    FROM "access_tokens" AS a
    WHERE a."format" = 'JWT'
      AND a."issued_at" >= k."created_at" - interval '5 minutes'
      AND (k."retired_at" IS NULL OR a."issued_at" <= k."retired_at" + interval '5 minutes')
  )
);
