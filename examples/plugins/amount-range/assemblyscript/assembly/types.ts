// The exchange world's types as AssemblyScript classes (what `abi.ts`
// decodes from, and encodes to, the canonical ABI). See wit/types.wit.

export const enum ValueKind {
  Void = 0,
  Boolean = 1,
  Int = 2,
  Float = 3,
  Text = 4,
  Binary = 5,
  Timestamp = 6,
  TextList = 7,
}

/// A typed header or argument value; read the field its `kind` names.
export class Value {
  kind: ValueKind = ValueKind.Void;
  boolean: bool = false;
  int: i64 = 0;
  float: f64 = 0;
  text: string = "";
  binary: Uint8Array = new Uint8Array(0);
  timestamp: u64 = 0;
  textList: string[] = [];

  /// The value as a number, when it is one (or text holding one).
  asNumber(): f64 {
    if (this.kind == ValueKind.Int) return <f64>this.int;
    if (this.kind == ValueKind.Float) return this.float;
    if (this.kind == ValueKind.Timestamp) return <f64>this.timestamp;
    if (this.kind == ValueKind.Text) return parseFloat(this.text);
    return NaN;
  }
}

export class Field {
  constructor(public name: string, public value: Value) {}
}

export function find(fields: Field[], name: string): Value | null {
  for (let i = 0; i < fields.length; i++) {
    if (fields[i].name == name) return fields[i].value;
  }
  return null;
}

export class Binding {
  constructor(public destination: string, public key: string, public arguments_: Field[]) {}
}

export class Message {
  constructor(
    public routingKey: string,
    public headers: Field[],
    public messageId: string | null,
    public bodySize: u64,
  ) {}
}

export class PluginInfo {
  constructor(
    public name: string,
    public version: string,
    public keyOnlyRouting: bool,
    public description: string,
  ) {}
}

/// What `route` answers: binding indices, or a refusal with its reason.
export class Route {
  constructor(public targets: u32[], public refusal: string | null) {}

  static to(targets: u32[]): Route {
    return new Route(targets, null);
  }

  static refuse(reason: string): Route {
    return new Route([], reason);
  }
}
