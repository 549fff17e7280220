//! The broker crate's integration tests, one binary (linking wasmtime and
//! the broker once instead of once per file). Each module is one concern;
//! `support` starts the real binary, `core` opens a `Broker` in-process,
//! `common` sets up the plugin host alone.
//!
//! Tests that re-run this binary as a child select the child test by its
//! full path (`module::test`, with `--exact`).

mod common;
mod core;
mod support;

mod broker_core;
mod broker_corruption;
mod broker_dead_letter_policy;
mod broker_dead_letters;
mod broker_permissions;
mod broker_props;
mod broker_queue_expiry;
mod broker_security;
mod broker_topology;
mod conformance;
mod dead_letter_batch;
mod dist_manifest;
mod e2e_admission;
mod e2e_batched_delivery;
mod e2e_bench;
mod e2e_broker_death;
mod e2e_cell_trust;
mod e2e_cells;
mod e2e_cli;
mod e2e_console;
mod e2e_counters;
mod e2e_crash_loop;
mod e2e_dead_letter_failures;
mod e2e_dead_letters;
mod e2e_definitions;
mod e2e_delays;
mod e2e_delivery;
mod e2e_disk_full;
mod e2e_duplicates;
mod e2e_durability;
mod e2e_durable_acks;
mod e2e_federation;
mod e2e_frames;
mod e2e_http;
mod e2e_http_limits;
mod e2e_http_origin;
mod e2e_https;
mod e2e_isolation;
mod e2e_limits;
mod e2e_long_poll;
mod e2e_memory_return;
mod e2e_ordered;
mod e2e_partial_frames;
mod e2e_plugins;
mod e2e_producer_groups;
mod e2e_routing;
mod e2e_security;
mod e2e_set_example;
mod e2e_set_routers;
mod e2e_single_active;
mod e2e_streams;
mod e2e_tls_tools;
mod e2e_topology;
mod e2e_topology_limits;
mod e2e_transactions;
mod hostile_plugins;
mod key_only_claim;
mod plugin_loading;
mod plugin_state;
mod ratelimit;
mod registry;
mod sandbox;
mod storage;
mod storage_churn;
mod storage_crash;
mod storage_delays;
mod storage_group_commit;
mod storage_halves;
mod storage_props;
mod storage_streams;
