// The canonical-ABI glue of the exchange world, written by hand because
// AssemblyScript has no WIT bindings generator. `switchyard plugin build`
// compiles this file (the entry point), renames its exports to the WIT
// names (exchange_router_route → switchyard:plugin/exchange@0.1.0#[method]router.route)
// and embeds the WIT. Memory the host writes through `cabi_realloc` and
// the results handed back are freed once the host is done with them.

import { Binding, Field, Message, Route, Value, ValueKind } from "./types";
import { describe as describePlugin, validateBinding, Router } from "./index";

@external("[export]switchyard:plugin/exchange@0.1.0", "[resource-new]router")
declare function routerNew(rep: i32): i32;

@external("switchyard:plugin/types@0.1.0", "[resource-drop]bodies")
declare function bodiesDrop(handle: i32): void;

// ---- memory shared with the host ----

let pending: usize[] = [];

export function cabi_realloc(old: usize, oldSize: usize, align: usize, size: usize): usize {
  if (size == 0) return align;
  const block = old == 0 ? heap.alloc(size) : heap.realloc(old, size);
  if (old == 0) pending.push(block);
  else {
    const at = pending.indexOf(old);
    if (at >= 0) pending[at] = block;
    else pending.push(block);
  }
  return block;
}

function alloc(size: usize): usize {
  return cabi_realloc(0, 0, 8, size);
}

function release(): void {
  for (let i = 0; i < pending.length; i++) heap.free(pending[i]);
  pending = [];
}

export function abortHandler(message: usize, file: usize, line: u32, column: u32): void {
  unreachable();
}

// ---- decoding what the host passes ----

function readString(at: usize): string {
  return String.UTF8.decodeUnsafe(load<u32>(at), load<u32>(at + 4));
}

function writeString(at: usize, text: string): void {
  const bytes = String.UTF8.encode(text);
  const len = bytes.byteLength;
  const ptr = alloc(len);
  memory.copy(ptr, changetype<usize>(bytes), len);
  store<u32>(at, <u32>ptr);
  store<u32>(at + 4, <u32>len);
}

function readValue(at: usize): Value {
  const value = new Value();
  value.kind = <ValueKind>load<u8>(at);
  const payload = at + 8;
  switch (value.kind) {
    case ValueKind.Boolean: value.boolean = load<u8>(payload) != 0; break;
    case ValueKind.Int: value.int = load<i64>(payload); break;
    case ValueKind.Float: value.float = load<f64>(payload); break;
    case ValueKind.Text: value.text = readString(payload); break;
    case ValueKind.Binary: {
      const len = load<u32>(payload + 4);
      const bytes = new Uint8Array(len);
      memory.copy(bytes.dataStart, load<u32>(payload), len);
      value.binary = bytes;
      break;
    }
    case ValueKind.Timestamp: value.timestamp = load<u64>(payload); break;
    case ValueKind.TextList: {
      const ptr = load<u32>(payload);
      const len = load<u32>(payload + 4);
      for (let i: u32 = 0; i < len; i++) value.textList.push(readString(ptr + i * 8));
      break;
    }
  }
  return value;
}

// list<field>: field = name (8) · value (16, align 8) → 24 bytes
function readFields(ptr: usize, len: u32): Field[] {
  const fields = new Array<Field>();
  for (let i: u32 = 0; i < len; i++) {
    const at = ptr + i * 24;
    fields.push(new Field(readString(at), readValue(at + 8)));
  }
  return fields;
}

// message: routing-key @0 · headers @8 · properties @16 (message-id: tag @16, string @20) · body-size @152
function readMessage(at: usize): Message {
  const id: string | null = load<u8>(at + 16) != 0 ? readString(at + 20) : null;
  return new Message(
    readString(at),
    readFields(load<u32>(at + 8), load<u32>(at + 12)),
    id,
    load<u64>(at + 152),
  );
}

// binding: destination @0 · key @8 · arguments @16 → 24 bytes
function readBinding(at: usize): Binding {
  return new Binding(readString(at), readString(at + 8), readFields(load<u32>(at + 16), load<u32>(at + 20)));
}

// result<list<u32>, string>: tag @0 · payload @4 (ptr, len)
function writeRoute(at: usize, route: Route): void {
  const refusal = route.refusal;
  if (refusal !== null) {
    store<u8>(at, 1);
    writeString(at + 4, refusal);
    return;
  }
  store<u8>(at, 0);
  const targets = route.targets;
  const ptr = alloc(<usize>targets.length * 4);
  for (let i = 0; i < targets.length; i++) store<u32>(ptr + <usize>i * 4, targets[i]);
  store<u32>(at + 4, <u32>ptr);
  store<u32>(at + 8, <u32>targets.length);
}

// ---- the world's exports ----

const routers = new Map<i32, Router>();
let nextRouter: i32 = 1;

// plugin-info: name @0 · version @8 · kind @16 · key-only-routing @17 · description @20
export function describe(): usize {
  const info = describePlugin();
  const ret = alloc(28);
  writeString(ret, info.name);
  writeString(ret + 8, info.version);
  store<u8>(ret + 16, 0); // plugin-kind.exchange
  store<u8>(ret + 17, info.keyOnlyRouting ? 1 : 0);
  writeString(ret + 20, info.description);
  return ret;
}

export function cabi_post_describe(ret: usize): void {
  release();
}

export function exchange_validate_binding(
  destPtr: usize, destLen: u32, keyPtr: usize, keyLen: u32,
  argsPtr: usize, argsLen: u32, exchangeArgsPtr: usize, exchangeArgsLen: u32,
): usize {
  const binding = new Binding(
    String.UTF8.decodeUnsafe(destPtr, destLen),
    String.UTF8.decodeUnsafe(keyPtr, keyLen),
    readFields(argsPtr, argsLen),
  );
  const refusal = validateBinding(binding, readFields(exchangeArgsPtr, exchangeArgsLen));
  const ret = alloc(12);
  if (refusal === null) {
    store<u8>(ret, 0);
  } else {
    store<u8>(ret, 1);
    writeString(ret + 4, refusal);
  }
  return ret;
}

export function cabi_post_exchange_validate_binding(ret: usize): void {
  release();
}

export function exchange_router_constructor(bindingsPtr: usize, bindingsLen: u32, argsPtr: usize, argsLen: u32): i32 {
  const bindings = new Array<Binding>();
  for (let i: u32 = 0; i < bindingsLen; i++) bindings.push(readBinding(bindingsPtr + i * 24));
  const router = new Router(bindings, readFields(argsPtr, argsLen));
  const rep = nextRouter++;
  routers.set(rep, router);
  release();
  return routerNew(rep);
}

export function exchange_router_dtor(rep: i32): void {
  routers.delete(rep);
}

// Parameters spilled to memory: self @0 · message @8 (160 bytes) · bodies @168
export function exchange_router_route(params: usize): usize {
  const router = routers.get(load<i32>(params));
  const route = router.route(readMessage(params + 8));
  bodiesDrop(load<i32>(params + 168));
  const ret = alloc(12);
  writeRoute(ret, route);
  return ret;
}

export function cabi_post_exchange_router_route(ret: usize): void {
  release();
}

export function exchange_router_route_batch(rep: i32, messagesPtr: usize, messagesLen: u32, bodies: i32): usize {
  const router = routers.get(rep);
  const results = alloc(<usize>messagesLen * 12);
  for (let i: u32 = 0; i < messagesLen; i++) {
    writeRoute(results + i * 12, router.route(readMessage(messagesPtr + i * 160)));
  }
  bodiesDrop(bodies);
  const ret = alloc(8);
  store<u32>(ret, <u32>results);
  store<u32>(ret + 4, messagesLen);
  return ret;
}

export function cabi_post_exchange_router_route_batch(ret: usize): void {
  release();
}
