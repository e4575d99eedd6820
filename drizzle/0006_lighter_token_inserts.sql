-- Fewer checks and index entries per issued token: the application foreign key of access_tokens
-- repeats its key's (which cascades from the application through its keys), and application tokens
-- and their events (no user) need no entry in the by-user indexes.
ALTER TABLE "access_tokens" DROP CONSTRAINT "access_tokens_application_id_applications_id_fk";
--> statement-breakpoint
DROP INDEX "access_tokens_user_idx";--> statement-breakpoint
DROP INDEX "token_events_user_id_id_index";--> statement-breakpoint
CREATE INDEX "access_tokens_user_idx" ON "access_tokens" USING btree ("user_id") WHERE "access_tokens"."user_id" is not null;--> statement-breakpoint
CREATE INDEX "token_events_user_id_id_index" ON "token_events" USING btree ("user_id","id") WHERE "token_events"."user_id" is not null;