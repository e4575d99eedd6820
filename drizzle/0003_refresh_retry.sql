ALTER TABLE "refresh_tokens" ADD COLUMN "retry_ciphertext" text;--> statement-breakpoint
ALTER TABLE "refresh_tokens" ADD COLUMN "retry_key_id" text;