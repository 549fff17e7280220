"""retry-backoff: a message rejected or past its delivery limit is retried
in its queue after 500 ms, 1 s and 2 s; its 4th death there parks it in
queue `<queue>.parked` (republished through the default exchange, which
routes by queue name). What an overflowing queue drops is parked at once;
what expired is dropped. The first delay is the plugin setting
`first-delay-ms`. See ../README.md.

It implements the `dead-letter-plugin` world (`decide` only): the broker
asks it about a batch of deaths one `decide` at a time, in one call."""

from wit_world import WitWorld as World, exports
from wit_world.exports import dead_letter
from wit_world.imports import config, types

DEFAULT_FIRST_DELAY_MS = 500
RETRIES = 3


def first_delay_ms():
    """The `first-delay-ms` setting when it is a number, else 500 ms."""
    try:
        ms = int((config.get("first-delay-ms") or "").strip())
    except ValueError:
        return DEFAULT_FIRST_DELAY_MS
    return ms if ms >= 0 else DEFAULT_FIRST_DELAY_MS


def park(queue):
    # The default exchange ("") delivers to the queue named by the key.
    return dead_letter.Action_Republish(
        dead_letter.Republish(exchange="", routing_key=f"{queue}.parked")
    )


class WitWorld(World):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="retry-backoff",
            # The build metadata names the language: the Rust and Python
            # builds are distinct versions of one plugin, each able to
            # replace the other live.
            version="2.0.0+python",
            kind=types.PluginKind.DEAD_LETTER,
            key_only_routing=False,
            description="retry three times with doubling delays, then park in <queue>.parked",
        )


class DeadLetter(exports.DeadLetter):
    def decide(self, message, bodies, queue, queue_arguments, reason, history):
        if reason == types.DeathReason.EXPIRED:
            return dead_letter.Action_Drop()
        if reason == types.DeathReason.MAX_LENGTH:
            return park(queue)
        # This death included: the 1st to 3rd are retried, the 4th parks.
        deaths = sum(d.count for d in history if d.queue == queue)
        if 1 <= deaths <= RETRIES:
            return dead_letter.Action_Retry(dead_letter.Retry(delay_ms=first_delay_ms() << (deaths - 1)))
        return park(queue)
