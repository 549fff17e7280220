// {{name}}: a filter. Messages without a message id are rejected; the
// second message with an id seen in the last minute is a duplicate.

import { setIfAbsent } from "switchyard:plugin/kv@0.1.1";

const WINDOW_MS = 60000n;

export function describe() {
  return {
    name: "{{name}}",
    version: "0.1.0",
    kind: "filter",
    keyOnlyRouting: false,
    description: "requires a message id; drops repeats within a minute",
  };
}

function check(message, bodies) {
  const id = message.properties.messageId;
  if (id === undefined || id === null) {
    return { tag: "reject", val: "a message id is required" };
  }
  if (setIfAbsent(`seen:${id}`, new Uint8Array(), WINDOW_MS)) {
    return { tag: "accept" };
  }
  return { tag: "duplicate" };
}

export const filter = {
  check,
  checkBatch(messages, bodies) {
    return messages.map((message) => check(message, bodies));
  },
};
