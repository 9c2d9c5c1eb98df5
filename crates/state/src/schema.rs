//! The redb schema: every table, declared once, versioned in its name.
//!
//! A table's name ends in `-N`; a change to a table's key or value layout gets a new name (and a
//! migration), never a silent reinterpretation of old bytes. Layouts:
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta-1` | name | see the `META_*` keys |
//! | `blocks-1` | block hash | header (161 B) ‖ total work (u128 LE) ‖ status (u8) |
//! | `bodies-1` | block hash | body encoding (count ‖ length-prefixed transactions) |
//! | `canon-1` | height | block hash on the canonical chain |
//! | `accounts-1` | address | balance (u128 LE) ‖ nonce (u64 LE); absent = empty |
//! | `undo-1` | block hash | previous LtHash (2048 B) ‖ count (u32) ‖ (address ‖ balance ‖ nonce)* |
//! | `tx-index-1` | tx id | block hash ‖ index in block (u32 LE) |
//! | `account-txs-2` | address ‖ height (u64 BE) ‖ index (u32 BE) | the transaction's canonical encoding |
//! | `side-1` | height (u64 BE) ‖ block hash | parent hash |
//! | `peers-1` | peer id | before the address manager: last seen (u64 LE ms) ‖ count (u16 LE) ‖ (length (u16 LE) ‖ multiaddr)*; read once into `addr-book-1`, then emptied |
//! | `addr-book-1` | peer id | the address manager's record, opaque here (`vision_p2p::addrman::encode_record`) |
//! | `bans-1` | peer id | ban expiry (unix ms) |
//!
//! # Invariants (hold after every committed write transaction)
//! - `meta.tip` is the hash at `canon[max height]`, and `canon` has an entry for every height from
//!   0 to the tip's height, each the parent of the next.
//! - `accounts` and `meta.lthash` are the state after applying `canon[1..=tip]` to the genesis
//!   allocations; `root(meta.lthash) == header(tip).state_root`.
//! - `undo[h]` exists for every canonical block `h` above genesis and reverts exactly that block.
//! - `tx-index` and `account-txs` list exactly the transactions of canonical blocks.
//! - `bodies` has an entry for every block in `blocks` except those with status `Invalid`, whose
//!   bodies are dropped when they are found invalid (descendants of invalid blocks that were never
//!   stored are remembered only in memory: `invalid`).
//! - Every block in `blocks` but genesis has its parent in `blocks`.
//! - `side` lists exactly the blocks in `blocks` that are not canonical (side chains, reverted
//!   blocks, invalid headers), each with its parent (schema 2; built from `blocks` when a schema 1
//!   database is opened).
//! - `account-txs` holds a copy of each transaction it lists (schema 3; was the transaction id,
//!   `account-txs-1`), so that a page of an account's history is one range read, never a body
//!   decode per entry. A schema 2 database gets it built from the canonical bodies when opened.
//! - Stale side branches are pruned (`prune`): a stored block that is not canonical and whose
//!   height is at or below `tip height - max reorg depth` forks off deeper than any reorganisation
//!   followed, so it and every stored block above it (all not canonical) can never become
//!   canonical. They are deleted (header, body, `side` entry), descendants before ancestors, at
//!   most `prune::PRUNE_BATCH_BLOCKS` per import, inside that import's write transaction; so the
//!   parent invariant above holds after every commit, and pruning lags the tip by a few imports
//!   at most.

use redb::TableDefinition;

/// Singleton values, by name.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta-1");
/// Every stored block's header, total work and status.
pub const BLOCKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blocks-1");
/// Every stored block's transactions.
pub const BODIES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("bodies-1");
/// Canonical chain: height to hash.
pub const CANON: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("canon-1");
/// Account state.
pub const ACCOUNTS: TableDefinition<&[u8; 32], &[u8; 24]> = TableDefinition::new("accounts-1");
/// Undo data of canonical blocks.
pub const UNDO: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("undo-1");
/// Where each canonical transaction is.
pub const TX_INDEX: TableDefinition<&[u8; 32], &[u8; 36]> = TableDefinition::new("tx-index-1");
/// Each account's canonical transactions, in chain order: the transaction itself (its canonical
/// encoding), so that the account history is served from this table alone.
pub const ACCOUNT_TXS: TableDefinition<&[u8; 44], &[u8]> = TableDefinition::new("account-txs-2");
/// Schema 1 and 2's account index (tx id only); deleted by the migration to schema 3.
pub const ACCOUNT_TXS_1: TableDefinition<&[u8; 44], &[u8; 32]> = TableDefinition::new("account-txs-1");

/// Stored blocks that are not canonical, by height: (height BE ‖ hash) to parent hash.
pub const SIDE: TableDefinition<&[u8; 40], &[u8; 32]> = TableDefinition::new("side-1");

/// Known peers before the address manager (read once to fill `addr-book-1`, then emptied): peer id bytes to last seen (u64 LE ms) ‖ count (u16 LE) ‖ (length u16 LE ‖ multiaddr bytes)*.
pub const PEERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("peers-1");
/// The address manager's records: peer id bytes to a record the network layer encodes.
pub const ADDR_BOOK: TableDefinition<&[u8], &[u8]> = TableDefinition::new("addr-book-1");
/// Banned peers: peer id bytes to ban expiry (unix ms).
pub const BANS: TableDefinition<&[u8], u64> = TableDefinition::new("bans-1");

/// Schema version; bumped with any table layout change. 2 added `side-1`; 3 replaced
/// `account-txs-1` (tx ids) with `account-txs-2` (the transactions). Older databases are migrated
/// when opened.
pub const SCHEMA_VERSION: u32 = 3;
/// `meta` key: schema version (u32 LE).
pub const META_SCHEMA: &str = "schema_version";
/// `meta` key: genesis hash.
pub const META_GENESIS: &str = "genesis_hash";
/// `meta` key: canonical tip hash.
pub const META_TIP: &str = "tip";
/// `meta` key: LtHash accumulator of the tip state.
pub const META_LTHASH: &str = "lthash";
/// `meta` key: the address manager's anchors, `count (u8) ‖ (length (u8) ‖ peer id)*`.
pub const META_ANCHORS: &str = "anchors";

/// Key of an `account-txs` entry.
pub fn account_tx_key(address: &[u8; 32], height: u64, index: u32) -> [u8; 44] {
    let mut k = [0u8; 44];
    k[..32].copy_from_slice(address);
    k[32..40].copy_from_slice(&height.to_be_bytes());
    k[40..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Key of a `side` entry: height first, so that a range scan walks side blocks from the lowest.
pub fn side_key(height: u64, hash: &vision_primitives::types::Hash) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..8].copy_from_slice(&height.to_be_bytes());
    k[8..].copy_from_slice(&hash.0);
    k
}

/// (height, hash) of a `side` key.
pub fn split_side_key(k: &[u8; 40]) -> (u64, vision_primitives::types::Hash) {
    let mut h = [0u8; 8];
    h.copy_from_slice(&k[..8]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&k[8..]);
    (u64::from_be_bytes(h), vision_primitives::types::Hash(hash))
}
