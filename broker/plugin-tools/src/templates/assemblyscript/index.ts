// {{name}}: an exchange plugin. A message follows every binding whose key
// equals its routing key; change `route` to route your way.

import { Binding, Field, Message, PluginInfo, Route } from "./types";

export function describe(): PluginInfo {
  // keyOnlyRouting: true only if `route` looks at nothing but the routing key.
  return new PluginInfo("{{name}}", "0.1.0", true, "routes by routing key = binding key");
}

/// Null accepts the binding; a string refuses it with that reason.
export function validateBinding(binding: Binding, exchangeArguments: Field[]): string | null {
  return null;
}

export class Router {
  bindings: Binding[];

  constructor(bindings: Binding[], exchangeArguments: Field[]) {
    this.bindings = bindings;
  }

  route(message: Message): Route {
    const targets = new Array<u32>();
    for (let i = 0; i < this.bindings.length; i++) {
      if (this.bindings[i].key == message.routingKey) targets.push(<u32>i);
    }
    return Route.to(targets);
  }
}
