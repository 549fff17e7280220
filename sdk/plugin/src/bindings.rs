//! The wit-bindgen seam. The shared interfaces are generated once (`base`);
//! each world module reuses them through `with`, so a plugin's types are the
//! same whichever world it implements.

pub mod base {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin-base",
        runtime_path: "switchyard_plugin::__wit_bindgen::rt",
        additional_derives: [PartialEq],
        generate_all,
    });
}

macro_rules! world_bindings {
    ($feature:literal, $module:ident, $world:literal) => {
        #[cfg(feature = $feature)]
        pub mod $module {
            wit_bindgen::generate!({
                path: "../../wit",
                world: $world,
                runtime_path: "switchyard_plugin::__wit_bindgen::rt",
                additional_derives: [PartialEq],
                pub_export_macro: true,
                export_macro_name: "export",
                with: {
                    "switchyard:plugin/types@0.1.1": crate::bindings::base::switchyard::plugin::types,
                    "switchyard:plugin/log@0.1.1": crate::bindings::base::switchyard::plugin::log,
                    "switchyard:plugin/clock@0.1.1": crate::bindings::base::switchyard::plugin::clock,
                    "switchyard:plugin/kv@0.1.1": crate::bindings::base::switchyard::plugin::kv,
                    "switchyard:plugin/config@0.1.1": crate::bindings::base::switchyard::plugin::config,
                },
            });
        }
    };
}

world_bindings!("exchange", exchange, "exchange-plugin");
// Rust policies export `decide-batch` too (a default that asks `decide` per
// death), so every one of them is asked about a batch in one call.
world_bindings!("dead-letter", dead_letter, "dead-letter-batch-plugin");
world_bindings!("filter", filter, "filter-plugin");
// Rust SET routers export `route-batch` too (a default that asks `route`
// per message), so the broker asks each of them once per publish batch.
world_bindings!("set-router", set_router, "set-router-batch-plugin");
