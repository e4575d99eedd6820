-- Hand-written: user token partitioning (the seeds' "user token partitioning", DESIGN.md "At rest").
-- access_tokens becomes a table list-partitioned by user store domain. Drizzle cannot express
-- PARTITION BY, so the table generated in 0000 is recreated here with the same columns,
-- constraints and indexes. Each user store domain gets its own partition (created when an admin
-- adds a domain); the DEFAULT partition only catches rows of a domain whose partition is missing.
DROP TABLE "access_tokens";--> statement-breakpoint
CREATE TABLE "access_tokens" (
	"id" uuid NOT NULL,
	"user_store_domain" text NOT NULL,
	"kind" "token_kind" NOT NULL,
	"format" "token_format" DEFAULT 'OPAQUE' NOT NULL,
	"client_id" text NOT NULL,
	"application_id" uuid,
	"application_key_id" uuid,
	"key_type" "key_type",
	"user_id" uuid,
	"refresh_family_id" uuid,
	"scopes" text[] DEFAULT '{}' NOT NULL,
	"token_hash" text NOT NULL,
	"token_ciphertext" text,
	"encryption_key_id" text,
	"issued_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	"revoke_reason" text,
	"revoke_scheduled_at" timestamp with time zone,
	"expiring_soon_notified_at" timestamp with time zone,
	"expired_notified_at" timestamp with time zone,
	CONSTRAINT "access_tokens_id_user_store_domain_pk" PRIMARY KEY("id","user_store_domain")
) PARTITION BY LIST ("user_store_domain");--> statement-breakpoint
ALTER TABLE "access_tokens" ADD CONSTRAINT "access_tokens_application_id_applications_id_fk" FOREIGN KEY ("application_id") REFERENCES "public"."applications"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "access_tokens" ADD CONSTRAINT "access_tokens_application_key_id_application_keys_id_fk" FOREIGN KEY ("application_key_id") REFERENCES "public"."application_keys"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "access_tokens" ADD CONSTRAINT "access_tokens_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "access_tokens_id_idx" ON "access_tokens" USING btree ("id");--> statement-breakpoint
CREATE INDEX "access_tokens_application_key_idx" ON "access_tokens" USING btree ("application_key_id");--> statement-breakpoint
CREATE INDEX "access_tokens_user_idx" ON "access_tokens" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "access_tokens_expires_at_idx" ON "access_tokens" USING btree ("expires_at");--> statement-breakpoint
CREATE TABLE "access_tokens_primary" PARTITION OF "access_tokens" FOR VALUES IN ('PRIMARY');--> statement-breakpoint
CREATE TABLE "access_tokens_default" PARTITION OF "access_tokens" DEFAULT;--> statement-breakpoint
INSERT INTO "user_store_domains" ("name") VALUES ('PRIMARY') ON CONFLICT DO NOTHING;
