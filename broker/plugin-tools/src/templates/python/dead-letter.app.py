"""{{name}}: a dead-letter policy. Rejected messages are retried after a
second, up to three times; everything else goes to the exchange named by the
queue's x-dead-letter-exchange argument, or is dropped."""

from wit_world import WitWorld as World, exports
from wit_world.exports import dead_letter
from wit_world.imports import types


class WitWorld(World):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="{{name}}",
            version="0.1.0",
            kind=types.PluginKind.DEAD_LETTER,
            key_only_routing=False,
            description="retry rejected messages three times, then dead-letter",
        )


class DeadLetter(exports.DeadLetter):
    def decide(self, message, bodies, queue, queue_arguments, reason, history):
        deaths = sum(d.count for d in history if d.queue == queue)
        if reason == types.DeathReason.REJECTED and deaths <= 3:
            return dead_letter.Action_Retry(dead_letter.Retry(delay_ms=1000))
        for field in queue_arguments:
            if field.name == "x-dead-letter-exchange" and isinstance(field.value, types.Value_Text):
                return dead_letter.Action_Republish(
                    dead_letter.Republish(exchange=field.value.value, routing_key=message.routing_key)
                )
        return dead_letter.Action_Drop()
