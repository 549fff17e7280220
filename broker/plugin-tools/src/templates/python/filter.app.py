"""{{name}}: a filter. Messages without a message id are rejected; the
second message with an id seen in the last minute is a duplicate."""

from wit_world import WitWorld as World, exports
from wit_world.exports import filter as verdicts
from wit_world.imports import kv, types

WINDOW_MS = 60_000


class WitWorld(World):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="{{name}}",
            version="0.1.0",
            kind=types.PluginKind.FILTER,
            key_only_routing=False,
            description="requires a message id; drops repeats within a minute",
        )


class Filter(exports.Filter):
    def check(self, message, bodies):
        message_id = message.properties.message_id
        if message_id is None:
            return verdicts.Verdict_Reject("a message id is required")
        if kv.set_if_absent("seen:" + message_id, b"", WINDOW_MS):
            return verdicts.Verdict_Accept()
        return verdicts.Verdict_Duplicate()

    def check_batch(self, messages, bodies):
        return [self.check(m, bodies) for m in messages]
