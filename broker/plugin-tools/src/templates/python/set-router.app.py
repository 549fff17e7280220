"""{{name}}: a SET router. Messages with header x-region = eu are served by
SET eu, us by SET us; messages without it are global (CENTER)."""

from wit_world import WitWorld as World, exports
from wit_world.exports import set_router
from wit_world.imports import types


class WitWorld(World):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="{{name}}",
            version="0.1.0",
            kind=types.PluginKind.SET_ROUTER,
            key_only_routing=False,
            description="SET by the x-region header",
        )


class SetRouter(exports.SetRouter):
    def route(self, message, bodies, local_set):
        region = None
        for field in message.headers:
            if field.name == "x-region" and isinstance(field.value, types.Value_Text):
                region = field.value.value
        if region is None:
            return set_router.Decision_Center()
        if region == local_set:
            return set_router.Decision_Local()
        if region in ("eu", "us"):
            return set_router.Decision_Set(region)
        return set_router.Decision_Reject("unknown region " + region)
