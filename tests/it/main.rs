//! Integration tests: one binary, one module per area. Tests that start the real `vision-node`
//! binary use `CARGO_BIN_EXE_vision-node`, temp dirs and port 0 / free ports on loopback, and wait
//! on conditions with timeouts, never on fixed sleeps.

mod acceptance;
mod admin_auth;
mod api_flood;
mod api_ws;
mod bench_cli;
mod common;
#[cfg(feature = "fault-injection")]
mod crash;
#[cfg(feature = "fault-injection")]
mod crash_store_errors;
mod eclipse;
mod flood;
mod inbound_limits;
mod inprocess;
mod invalid_blocks;
mod key_files;
mod long_partition;
mod metrics;
mod misbehaving;
mod network;
mod node_cli;
mod partition;
mod protocol_vectors;
mod raw_gossip;
mod reorg;
mod reorg_memory;
mod safe_defaults;
mod shutdown;
mod slow_readers;
mod sync_attack;
mod timestamp_attack;
mod tx_junk;
mod vector_file;
mod vector_regen;
mod vectors;
