// amount-range: a message follows every binding whose min/max arguments
// (inclusive, either optional) contain its numeric amount header. See
// ../../README.md.

import { Binding, Field, Message, PluginInfo, Route, Value, find } from "./types";

export function describe(): PluginInfo {
  return new PluginInfo("amount-range", "1.0.0", false, "routes by the numeric amount header into min/max ranges");
}

/// A binding's bounds; NaN where absent. `problem` is set when invalid.
class Range {
  min: f64 = NaN;
  max: f64 = NaN;
  problem: string | null = null;

  contains(amount: f64): bool {
    return (isNaN(this.min) || amount >= this.min) && (isNaN(this.max) || amount <= this.max);
  }
}

function bound(value: Value | null, name: string, range: Range): f64 {
  if (value === null) return NaN;
  const n = value.asNumber();
  if (isNaN(n)) range.problem = "binding argument " + name + " must be a number";
  return n;
}

function rangeOf(binding: Binding): Range {
  const range = new Range();
  range.min = bound(find(binding.arguments_, "min"), "min", range);
  range.max = bound(find(binding.arguments_, "max"), "max", range);
  if (range.problem === null && isNaN(range.min) && isNaN(range.max)) {
    range.problem = "a binding needs a numeric min and/or max argument";
  }
  if (range.problem === null && range.min > range.max) {
    range.problem = "min " + range.min.toString() + " is greater than max " + range.max.toString();
  }
  return range;
}

export function validateBinding(binding: Binding, exchangeArguments: Field[]): string | null {
  return rangeOf(binding).problem;
}

export class Router {
  ranges: Range[] = [];

  constructor(bindings: Binding[], exchangeArguments: Field[]) {
    for (let i = 0; i < bindings.length; i++) {
      const range = rangeOf(bindings[i]);
      // validated when added; one that no longer parses matches nothing
      if (range.problem !== null) range.min = Infinity;
      this.ranges.push(range);
    }
  }

  route(message: Message): Route {
    const header = find(message.headers, "amount");
    const amount = header === null ? NaN : header.asNumber();
    if (isNaN(amount)) return Route.refuse("the message has no numeric amount header");
    const targets = new Array<u32>();
    for (let i = 0; i < this.ranges.length; i++) {
      if (this.ranges[i].contains(amount)) targets.push(<u32>i);
    }
    return Route.to(targets);
  }
}
