"""{{name}}: an exchange plugin. The router lives in exchange.py (the
module named after the exported interface); this module describes it."""

from wit_world import WitWorld as World, exports
from wit_world.imports import types


class WitWorld(World):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="{{name}}",
            version="0.1.0",
            kind=types.PluginKind.EXCHANGE,
            # True only if routing looks at nothing but the routing key.
            key_only_routing=True,
            description="routes by routing key = binding key",
        )


class Exchange(exports.Exchange):
    def validate_binding(self, binding, exchange_arguments):
        # Raise componentize_py_types.Err("why") to refuse a binding.
        return None
