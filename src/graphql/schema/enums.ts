import { keyType, tier, tokenFormat } from "../../db/schema/index.js";
import { builder } from "../builder.js";

export const KeyTypeEnum = builder.enumType("KeyType", { values: keyType.enumValues });
export const TierEnum = builder.enumType("Tier", { values: tier.enumValues });
export const TokenFormatEnum = builder.enumType("TokenFormat", { values: tokenFormat.enumValues });
