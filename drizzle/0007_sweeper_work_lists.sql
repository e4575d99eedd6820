-- The sweeper runs every SWEEPER_INTERVAL_MS: each of its work lists gets an index, so a sweep
-- reads the rows it has work for instead of the whole table. Partial where they can be, so that
-- issuing a token (revoked_at and revoke_scheduled_at null) adds no entry to them.
CREATE INDEX "refresh_token_families_revoked_at_idx" ON "refresh_token_families" USING btree ("revoked_at") WHERE "refresh_token_families"."revoked_at" is not null;--> statement-breakpoint
CREATE INDEX "refresh_tokens_expires_at_idx" ON "refresh_tokens" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "refresh_tokens_revoked_at_idx" ON "refresh_tokens" USING btree ("revoked_at") WHERE "refresh_tokens"."revoked_at" is not null;--> statement-breakpoint
CREATE INDEX "refresh_tokens_used_at_idx" ON "refresh_tokens" USING btree ("used_at") WHERE "refresh_tokens"."used_at" is not null;--> statement-breakpoint
CREATE INDEX "refresh_tokens_retry_pair_idx" ON "refresh_tokens" USING btree ("used_at") WHERE "refresh_tokens"."retry_ciphertext" is not null;--> statement-breakpoint
CREATE INDEX "access_tokens_grace_period_idx" ON "access_tokens" USING btree ("revoke_scheduled_at") WHERE "access_tokens"."revoke_scheduled_at" is not null and "access_tokens"."revoked_at" is null;--> statement-breakpoint
CREATE INDEX "access_tokens_revoked_at_idx" ON "access_tokens" USING btree ("revoked_at") WHERE "access_tokens"."revoked_at" is not null;