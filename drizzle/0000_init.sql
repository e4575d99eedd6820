CREATE TYPE "public"."key_type" AS ENUM('PRODUCTION', 'SANDBOX');--> statement-breakpoint
CREATE TYPE "public"."tier" AS ENUM('Unlimited', 'Gold', 'Silver', 'Bronze');--> statement-breakpoint
CREATE TYPE "public"."token_format" AS ENUM('OPAQUE', 'JWT');--> statement-breakpoint
CREATE TYPE "public"."token_kind" AS ENUM('APPLICATION', 'USER');--> statement-breakpoint
CREATE TABLE "api_resources" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"api_id" uuid NOT NULL,
	"method" text NOT NULL,
	"path_pattern" text NOT NULL,
	"scopes" text[] DEFAULT '{}' NOT NULL,
	CONSTRAINT "api_resources_api_id_method_path_pattern_unique" UNIQUE("api_id","method","path_pattern")
);
--> statement-breakpoint
CREATE TABLE "api_scopes" (
	"api_id" uuid NOT NULL,
	"name" text NOT NULL,
	"description" text,
	CONSTRAINT "api_scopes_api_id_name_pk" PRIMARY KEY("api_id","name")
);
--> statement-breakpoint
CREATE TABLE "apis" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"context" text NOT NULL,
	"version" text NOT NULL,
	"description" text,
	"created_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "apis_context_version_key" UNIQUE("context","version")
);
--> statement-breakpoint
CREATE TABLE "applications" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"owner_id" uuid NOT NULL,
	"name" text NOT NULL,
	"description" text,
	"throttling_tier" "tier" DEFAULT 'Unlimited' NOT NULL,
	"token_format" "token_format" DEFAULT 'OPAQUE' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "applications_owner_name_key" UNIQUE("owner_id","name")
);
--> statement-breakpoint
CREATE TABLE "application_keys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"application_id" uuid NOT NULL,
	"key_type" "key_type" NOT NULL,
	"consumer_key" text NOT NULL,
	"allowed_domains" text[] DEFAULT '{}' NOT NULL,
	"validity_period" integer,
	"scopes" text[] DEFAULT '{}' NOT NULL,
	"grant_types" text[] NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "application_keys_consumer_key_unique" UNIQUE("consumer_key"),
	CONSTRAINT "application_keys_application_key_type_key" UNIQUE("application_id","key_type")
);
--> statement-breakpoint
CREATE TABLE "consumer_secrets" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"key_id" uuid NOT NULL,
	"secret_hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "refresh_token_families" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" uuid NOT NULL,
	"application_key_id" uuid,
	"client_id" text NOT NULL,
	"user_store_domain" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	"revoke_reason" text
);
--> statement-breakpoint
CREATE TABLE "refresh_tokens" (
	"id" uuid PRIMARY KEY NOT NULL,
	"family_id" uuid NOT NULL,
	"access_token_id" uuid NOT NULL,
	"token_hash" text NOT NULL,
	"token_ciphertext" text,
	"encryption_key_id" text,
	"issued_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone,
	"used_at" timestamp with time zone,
	"replaced_by_id" uuid,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "service_secrets" (
	"name" text PRIMARY KEY NOT NULL,
	"value" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "settings" (
	"key" text PRIMARY KEY NOT NULL,
	"value" jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "signing_keys" (
	"kid" text PRIMARY KEY NOT NULL,
	"alg" text NOT NULL,
	"public_jwk" jsonb NOT NULL,
	"private_jwk_ciphertext" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"retired_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "subscriptions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"application_id" uuid NOT NULL,
	"api_id" uuid NOT NULL,
	"tier" "tier" DEFAULT 'Unlimited' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "subscriptions_application_api_key" UNIQUE("application_id","api_id")
);
--> statement-breakpoint
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
);
--> statement-breakpoint
CREATE TABLE "token_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"reason" text,
	"occurred_at" timestamp with time zone DEFAULT now() NOT NULL,
	"token_id" uuid,
	"token_kind" "token_kind",
	"key_type" "key_type",
	"application_id" uuid,
	"user_id" uuid,
	"scopes" text[],
	"expires_at" timestamp with time zone,
	"actor_id" uuid,
	"details" jsonb
);
--> statement-breakpoint
CREATE TABLE "user_store_domains" (
	"name" text PRIMARY KEY NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "users" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"username" text NOT NULL,
	"password_hash" text NOT NULL,
	"roles" text[] DEFAULT '{subscriber}'::text[] NOT NULL,
	"user_store_domain" text DEFAULT 'PRIMARY' NOT NULL,
	"disabled_at" timestamp with time zone,
	"password_changed_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "api_resources" ADD CONSTRAINT "api_resources_api_id_apis_id_fk" FOREIGN KEY ("api_id") REFERENCES "public"."apis"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "api_scopes" ADD CONSTRAINT "api_scopes_api_id_apis_id_fk" FOREIGN KEY ("api_id") REFERENCES "public"."apis"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "apis" ADD CONSTRAINT "apis_created_by_users_id_fk" FOREIGN KEY ("created_by") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "applications" ADD CONSTRAINT "applications_owner_id_users_id_fk" FOREIGN KEY ("owner_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "application_keys" ADD CONSTRAINT "application_keys_application_id_applications_id_fk" FOREIGN KEY ("application_id") REFERENCES "public"."applications"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "consumer_secrets" ADD CONSTRAINT "consumer_secrets_key_id_application_keys_id_fk" FOREIGN KEY ("key_id") REFERENCES "public"."application_keys"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "refresh_token_families" ADD CONSTRAINT "refresh_token_families_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "refresh_token_families" ADD CONSTRAINT "refresh_token_families_application_key_id_application_keys_id_fk" FOREIGN KEY ("application_key_id") REFERENCES "public"."application_keys"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "refresh_tokens" ADD CONSTRAINT "refresh_tokens_family_id_refresh_token_families_id_fk" FOREIGN KEY ("family_id") REFERENCES "public"."refresh_token_families"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "subscriptions" ADD CONSTRAINT "subscriptions_application_id_applications_id_fk" FOREIGN KEY ("application_id") REFERENCES "public"."applications"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "subscriptions" ADD CONSTRAINT "subscriptions_api_id_apis_id_fk" FOREIGN KEY ("api_id") REFERENCES "public"."apis"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "access_tokens" ADD CONSTRAINT "access_tokens_application_id_applications_id_fk" FOREIGN KEY ("application_id") REFERENCES "public"."applications"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "access_tokens" ADD CONSTRAINT "access_tokens_application_key_id_application_keys_id_fk" FOREIGN KEY ("application_key_id") REFERENCES "public"."application_keys"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "access_tokens" ADD CONSTRAINT "access_tokens_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_user_store_domain_user_store_domains_name_fk" FOREIGN KEY ("user_store_domain") REFERENCES "public"."user_store_domains"("name") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "api_resources_api_id_idx" ON "api_resources" USING btree ("api_id");--> statement-breakpoint
CREATE INDEX "applications_created_at_index" ON "applications" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "consumer_secrets_key_id_index" ON "consumer_secrets" USING btree ("key_id");--> statement-breakpoint
CREATE INDEX "refresh_token_families_user_id_index" ON "refresh_token_families" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "refresh_tokens_family_id_index" ON "refresh_tokens" USING btree ("family_id");--> statement-breakpoint
CREATE INDEX "refresh_tokens_access_token_id_index" ON "refresh_tokens" USING btree ("access_token_id");--> statement-breakpoint
CREATE INDEX "subscriptions_api_id_index" ON "subscriptions" USING btree ("api_id");--> statement-breakpoint
CREATE INDEX "access_tokens_id_idx" ON "access_tokens" USING btree ("id");--> statement-breakpoint
CREATE INDEX "access_tokens_application_key_idx" ON "access_tokens" USING btree ("application_key_id");--> statement-breakpoint
CREATE INDEX "access_tokens_user_idx" ON "access_tokens" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "access_tokens_expires_at_idx" ON "access_tokens" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "token_events_application_id_id_index" ON "token_events" USING btree ("application_id","id");--> statement-breakpoint
CREATE INDEX "token_events_user_id_id_index" ON "token_events" USING btree ("user_id","id");--> statement-breakpoint
CREATE INDEX "token_events_token_id_index" ON "token_events" USING btree ("token_id");--> statement-breakpoint
CREATE UNIQUE INDEX "users_username_key" ON "users" USING btree (lower("username"));