//! Vision Node: a proof-of-work, account-based blockchain node.
//!
//! Layers, top to bottom (see `docs/architecture.md`):
//! - [`api`]: HTTP JSON API for wallets and operators;
//! - [`node`]: wiring, the shared [`node::Core`] every producer of blocks and transactions goes
//!   through, and graceful shutdown;
//! - [`miner`]: block templates (cached) and proof-of-work search on dedicated threads;
//! - [`mempool`]: the bounded transaction pool;
//! - [`chain`]: types, encoding, consensus rules, import and fork choice;
//! - [`verify`]: the signature rule and the parallel verifier;
//! - [`state`]: the redb state machine.
//!
//! Nothing in `chain`, `state` or `mempool` knows about HTTP or the network; errors that can come
//! from a peer carry a [`errors::PeerAction`] so the network layer can score the sender.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
pub mod chain;
pub mod config;
pub mod metrics;
pub mod miner;
pub mod node;
pub mod testkit;
pub mod wallet;

// The lower layers are crates of their own (`crates/`); the node re-exports them under the paths
// the node's modules, tests, benchmarks and fuzz targets use.
pub use vision_mempool as mempool;
pub use vision_p2p as p2p;
pub use vision_primitives::{bounds, errors, keys, util, verify};
pub use vision_state as state;
pub use vision_state::fault;
