"""amount-range: a message follows every binding whose min/max arguments
(inclusive, either optional) contain its numeric amount header. The router
is in exchange.py; see ../README.md."""

from componentize_py_types import Err
from wit_world import WitWorld as World, exports
from wit_world.imports import types

import ranges


class WitWorld(World):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="amount-range",
            version="1.0.0",
            kind=types.PluginKind.EXCHANGE,
            key_only_routing=False,
            description="routes by the numeric amount header into min/max ranges",
        )


class Exchange(exports.Exchange):
    def validate_binding(self, binding, exchange_arguments):
        try:
            ranges.binding_range(binding)
        except ValueError as problem:
            raise Err(str(problem))
