import { describe, expect, it } from "vitest";
import { OAuthError } from "../../src/oauth/errors.js";
import { parseForm } from "../../src/oauth/form.js";

const form = (text: string | Buffer) =>
  parseForm(typeof text === "string" ? Buffer.from(text, "utf8") : text);
const errorOf = (text: string | Buffer) => {
  try {
    form(text);
  } catch (error) {
    return error instanceof OAuthError ? error.code : "not an OAuthError";
  }
  return "no error";
};

describe("parseForm", () => {
  it("takes plain values as they are and decodes `+` and percent-encoding", () => {
    expect([...form("token=tmat_0a1b&grant_type=client_credentials")]).toEqual([
      ["token", "tmat_0a1b"],
      ["grant_type", "client_credentials"],
    ]);
    expect(form("scope=read+write").get("scope")).toBe("read write");
    expect(form("scope=read%20write%2Bmore").get("scope")).toBe("read write+more");
    expect(form("na%6De=%C3%A9t%C3%A9").get("name")).toBe("été");
    expect(form("flag&empty=&=x").get("flag")).toBe("");
  });

  it("refuses bad percent-encoding, bad UTF-8 and repeated parameters with invalid_request", () => {
    expect(errorOf("token=%ZZ")).toBe("invalid_request");
    expect(errorOf("token=%FF")).toBe("invalid_request");
    expect(errorOf(Buffer.from([0x74, 0x3d, 0xff]))).toBe("invalid_request");
    expect(errorOf("scope=a&scope=b")).toBe("invalid_request");
    expect(errorOf("sc%6Fpe=a&scope=b")).toBe("invalid_request");
  });
});
