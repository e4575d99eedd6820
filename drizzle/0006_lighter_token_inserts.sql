-- Fewer checks and index entries per issued token: one foreign key on (application_key_id,
-- application_id) replaces one per column (it holds both to a key of that application, and
-- cascades from the application through its keys), and application tokens and their events (no
-- user) get no entry in the by-user indexes.
ALTER TABLE "application_keys" ADD CONSTRAINT "application_keys_id_application_key" UNIQUE("id","application_id");--> statement-breakpoint
ALTER TABLE "access_tokens" DROP CONSTRAINT "access_tokens_application_id_applications_id_fk";
--> statement-breakpoint
ALTER TABLE "access_tokens" DROP CONSTRAINT "access_tokens_application_key_id_application_keys_id_fk";
--> statement-breakpoint
ALTER TABLE "access_tokens" ADD CONSTRAINT "access_tokens_application_key_fk" FOREIGN KEY ("application_key_id","application_id") REFERENCES "public"."application_keys"("id","application_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
DROP INDEX "access_tokens_user_idx";--> statement-breakpoint
DROP INDEX "token_events_user_id_id_index";--> statement-breakpoint
CREATE INDEX "access_tokens_user_idx" ON "access_tokens" USING btree ("user_id") WHERE "access_tokens"."user_id" is not null;--> statement-breakpoint
CREATE INDEX "token_events_user_id_id_index" ON "token_events" USING btree ("user_id","id") WHERE "token_events"."user_id" is not null;
