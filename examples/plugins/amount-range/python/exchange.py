"""The routing state of one amount-range exchange."""

import math

from componentize_py_types import Err, Ok
from wit_world.exports import exchange

import ranges


def contains(bounds, amount):
    low, high = bounds
    return (low is None or amount >= low) and (high is None or amount <= high)


class Router(exchange.Router):
    def __init__(self, bindings, exchange_arguments):
        self.ranges = []
        for binding in bindings:
            try:
                self.ranges.append(ranges.binding_range(binding))
            except ValueError:
                # validated when added; one that no longer parses matches nothing
                self.ranges.append((math.inf, None))

    def route(self, message, bodies):
        amount = None
        for field in message.headers:
            if field.name == "amount":
                amount = ranges.number(field.value)
        if amount is None:
            raise Err("the message has no numeric amount header")
        return [i for i, bounds in enumerate(self.ranges) if contains(bounds, amount)]

    def route_batch(self, messages, bodies):
        results = []
        for message in messages:
            try:
                results.append(Ok(self.route(message, bodies)))
            except Err as refused:
                results.append(refused)
        return results
