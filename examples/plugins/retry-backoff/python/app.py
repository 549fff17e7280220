"""retry-backoff: retry rejected messages after 500 ms, 1 s, 2 s, 4 s, then
park them on exchange `parking`; park what an overflowing queue drops; drop
what expired. See ../README.md."""

from wit_world import WitWorld as World, exports
from wit_world.exports import dead_letter
from wit_world.imports import types

FIRST_DELAY_MS = 500
RETRIES = 4
PARKING = "parking"


def park(queue, why):
    return dead_letter.Action_Republish(
        dead_letter.Republish(exchange=PARKING, routing_key=f"{queue}.{why}")
    )


class WitWorld(World):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="retry-backoff",
            version="1.0.0",
            kind=types.PluginKind.DEAD_LETTER,
            key_only_routing=False,
            description="retry with doubling delays, then park on exchange parking",
        )


class DeadLetter(exports.DeadLetter):
    def decide(self, message, bodies, queue, queue_arguments, reason, history):
        if reason == types.DeathReason.EXPIRED:
            return dead_letter.Action_Drop()
        if reason == types.DeathReason.MAX_LENGTH:
            return park(queue, "overflow")
        deaths = sum(d.count for d in history if d.queue == queue)
        if 1 <= deaths <= RETRIES:
            return dead_letter.Action_Retry(dead_letter.Retry(delay_ms=FIRST_DELAY_MS << (deaths - 1)))
        return park(queue, "parked")
