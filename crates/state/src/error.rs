//! The store's one error type, [`StoreError`]: what can go wrong with the database itself (an I/O
//! or redb failure, a damaged file, another network's or another version's data, a second process).
//! None of these is a peer's fault, and none is a consensus failure (issue #14, item 7): a block
//! whose import failed with one of them is not recorded invalid.

use thiserror::Error;
use vision_primitives::types::Hash;

use crate::schema::SCHEMA_VERSION;

/// A storage failure. None of these is a peer's fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// redb reported an error.
    #[error("database error: {0}")]
    Db(String),
    /// The database belongs to another network.
    #[error(
        "the data directory holds chain {stored}, but the genesis in use is {configured}; use another --data-dir or the matching --genesis"
    )]
    GenesisMismatch {
        /// Genesis hash in the database.
        stored: Hash,
        /// Genesis hash configured.
        configured: Hash,
    },
    /// Stored bytes do not decode: the database is damaged.
    #[error("database is corrupt: {0}; restore from a backup or resync into an empty --data-dir")]
    Corrupt(String),
    /// The schema is from another version of the node.
    #[error("database schema version {found} is not supported (this node uses {SCHEMA_VERSION})")]
    Schema {
        /// Version found.
        found: u32,
    },
    /// Another process holds the database.
    #[error("the database is in use by another process (is a node already running on this --data-dir?)")]
    Locked,
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
db_err!(redb::StorageError, redb::TableError, redb::TransactionError, redb::CommitError);

impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
            other => StoreError::Db(other.to_string()),
        }
    }
}
