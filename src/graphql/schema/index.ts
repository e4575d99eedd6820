// Imports every type file; each defines its types and its own query/mutation fields.
import "./scalars.js";
import "./error.js";
import "./enums.js";
import "./user.js";
import "./api.js";
import "./token.js";
import "./token-settings.js";
import "./application-key.js";
import "./subscription.js";
import "./application.js";
import "./signing-key.js";
import "./token-event.js";
import { printSchema } from "graphql";
import { builder } from "../builder.js";

export const schema = builder.toSchema({ sortSchema: true });

/** The SDL committed as schema/schema.graphql. */
export const printSdl = () => `${printSchema(schema)}\n`;
