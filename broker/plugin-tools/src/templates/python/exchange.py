"""The routing state of one exchange: built once per set of bindings."""

from componentize_py_types import Err, Ok
from wit_world.exports import exchange


class Router(exchange.Router):
    def __init__(self, bindings, exchange_arguments):
        self.bindings = bindings

    def route(self, message, bodies):
        # Return binding indices; raise Err("why") to refuse the message.
        return [i for i, b in enumerate(self.bindings) if b.key == message.routing_key]

    def route_batch(self, messages, bodies):
        results = []
        for message in messages:
            try:
                results.append(Ok(self.route(message, bodies)))
            except Err as refused:
                results.append(refused)
        return results
