// amount-range: a message follows every binding whose min/max arguments
// (inclusive, either optional) contain its numeric amount header. See
// ../README.md. WIT records arrive with camelCase fields; `result` errors
// are thrown.

export function describe() {
  return {
    name: "amount-range",
    version: "1.0.0",
    kind: "exchange",
    keyOnlyRouting: false,
    description: "routes by the numeric amount header into min/max ranges",
  };
}

function number(value) {
  switch (value.tag) {
    case "int":
      return Number(value.val);
    case "float":
      return value.val;
    case "text": {
      const text = value.val.trim();
      const parsed = Number(text);
      return text === "" || Number.isNaN(parsed) ? undefined : parsed;
    }
    default:
      return undefined;
  }
}

function argument(fields, name) {
  const field = fields.find((f) => f.name === name);
  if (!field) return undefined;
  const found = number(field.value);
  if (found === undefined) throw `binding argument ${name} must be a number`;
  return found;
}

function bindingRange(binding) {
  const min = argument(binding.arguments, "min");
  const max = argument(binding.arguments, "max");
  if (min === undefined && max === undefined) {
    throw "a binding needs a numeric min and/or max argument";
  }
  if (min !== undefined && max !== undefined && min > max) {
    throw `min ${min} is greater than max ${max}`;
  }
  return { min, max };
}

class Router {
  constructor(bindings, exchangeArguments) {
    this.ranges = bindings.map((binding) => {
      try {
        return bindingRange(binding);
      } catch {
        // validated when added; one that no longer parses matches nothing
        return { min: Infinity, max: undefined };
      }
    });
  }

  route(message, bodies) {
    const header = message.headers.find((f) => f.name === "amount");
    const amount = header ? number(header.value) : undefined;
    if (amount === undefined) throw "the message has no numeric amount header";
    const targets = [];
    this.ranges.forEach(({ min, max }, index) => {
      if ((min === undefined || amount >= min) && (max === undefined || amount <= max)) {
        targets.push(index);
      }
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
  validateBinding(binding, exchangeArguments) {
    bindingRange(binding);
  },
  Router,
};
