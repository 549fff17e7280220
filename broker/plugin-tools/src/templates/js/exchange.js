// {{name}}: an exchange plugin. A message follows every binding whose key
// equals its routing key; change `route` to route your way. WIT records
// arrive as objects with camelCase fields; `result` errors are thrown.

export function describe() {
  return {
    name: "{{name}}",
    version: "0.1.0",
    kind: "exchange",
    // True only if `route` looks at nothing but the routing key.
    keyOnlyRouting: true,
    description: "routes by routing key = binding key",
  };
}

class Router {
  constructor(bindings, exchangeArguments) {
    this.bindings = bindings;
  }

  route(message, bodies) {
    const targets = [];
    this.bindings.forEach((binding, index) => {
      if (binding.key === message.routingKey) targets.push(index);
    });
    return targets;
  }

  routeBatch(messages, bodies) {
    return messages.map((message) => {
      try {
        return { tag: "ok", val: this.route(message, bodies) };
      } catch (refused) {
        return { tag: "err", val: String(refused) };
      }
    });
  }
}

export const exchange = {
  // Throw a string to refuse a binding.
  validateBinding(binding, exchangeArguments) {},
  Router,
};
