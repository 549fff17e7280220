// same-body: a message whose body was seen in the last ten minutes is a
// duplicate, whatever its id; an empty body is rejected. See ../README.md.

import { setIfAbsent } from "switchyard:plugin/kv@0.1.1";

const WINDOW_MS = 600000n;
const MAX_READ = 65536;

export function describe() {
  return {
    name: "same-body",
    version: "1.0.0",
    kind: "filter",
    keyOnlyRouting: false,
    description: "drops messages whose body was seen in the last ten minutes",
  };
}

// FNV-1a-64 of the bytes, as 16 hex digits.
function fingerprint(bytes) {
  let hash = 0xcbf29ce484222325n;
  for (const byte of bytes) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash.toString(16).padStart(16, "0");
}

// The whole body of message `index`, read from the host in pieces.
function body(bodies, index, size) {
  const whole = new Uint8Array(Number(size));
  let offset = 0;
  while (offset < whole.length) {
    const piece = bodies.read(index, BigInt(offset), Math.min(MAX_READ, whole.length - offset));
    if (piece.length === 0) break;
    whole.set(piece, offset);
    offset += piece.length;
  }
  return whole.subarray(0, offset);
}

function check(message, bodies, index) {
  if (message.bodySize === 0n) return { tag: "reject", val: "the body is empty" };
  const key = `body:${fingerprint(body(bodies, index, message.bodySize))}`;
  return setIfAbsent(key, new Uint8Array(), WINDOW_MS) ? { tag: "accept" } : { tag: "duplicate" };
}

export const filter = {
  check(message, bodies) {
    return check(message, bodies, 0);
  },
  checkBatch(messages, bodies) {
    return messages.map((message, index) => check(message, bodies, index));
  },
};
