// The browser tests, in one process so that they share one server and one
// chromium (see harness.mjs): drafting (delegates, observers), then the
// chair's office (review, adoption, history, home, phone width).

import { after } from "node:test";
import { closeShared } from "./harness.mjs";

await import("./drafting.mjs");
await import("./review.mjs");

after(closeShared);
