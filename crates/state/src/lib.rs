//! The redb state machine: accounts, blocks, undo data and indexes, changed only through one write
//! transaction per block import or reorg.
//!
//! - [`execute`] is the state transition function: it runs a block's transactions against any
//!   [`AccountReader`] and returns a [`StateDiff`] (old and new value of every account touched), or
//!   the first transaction that breaks a rule. Import, the miner's template builder and `db check`
//!   all use it, so they cannot disagree.
//! - [`Store`] owns the database; [`WriteView`] wraps one write transaction and offers the few
//!   operations a block import needs ([`WriteView::connect`], [`WriteView::disconnect_tip`]); nothing is
//!   visible to readers until [`WriteView::commit`], and dropping a `WriteView` aborts it. So a crash
//!   at any instant leaves the old tip or the new one, never a mix.
//!
//! The table layouts and invariants are in [`schema`]. Block import with fork choice is in
//! [`import`], the `db check` replay in [`check`], and the crash suite's fault points in [`fault`].
//!
//! This crate depends on no network, HTTP or async runtime crate (`tests/layers.rs`).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod ancestry;
pub mod check;
pub mod error;
pub mod fault;
pub mod import;
pub mod invalid;
pub mod prune;
pub mod schema;

pub use error::StoreError;
pub use import::{Arrival, Chain, ImportError, ImportOutcome, ReconsiderError, Reconsidered, Tip};
pub use invalid::INVALID_DESCENDANTS;
pub use vision_primitives::lthash;

use std::collections::BTreeMap;
use std::path::Path;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use thiserror::Error;

use schema::*;
use vision_primitives::consensus::{ChainParams, TxError};
use vision_primitives::encoding::{Reader, Writer};
use vision_primitives::genesis::Genesis;
use vision_primitives::lthash::LtHash;
use vision_primitives::types::{Address, Block, BlockHeader, HEADER_LEN, Hash, Transaction};

/// An account's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Account {
    /// Base units held.
    pub balance: u128,
    /// Number of transactions sent (the next nonce to use).
    pub nonce: u64,
}

impl Account {
    /// Stored form.
    pub fn to_bytes(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[..16].copy_from_slice(&self.balance.to_le_bytes());
        b[16..].copy_from_slice(&self.nonce.to_le_bytes());
        b
    }
    /// From the stored form.
    pub fn from_bytes(b: &[u8; 24]) -> Self {
        let mut bal = [0u8; 16];
        bal.copy_from_slice(&b[..16]);
        let mut n = [0u8; 8];
        n.copy_from_slice(&b[16..]);
        Account { balance: u128::from_le_bytes(bal), nonce: u64::from_le_bytes(n) }
    }
    /// True for the empty account (absent from the state).
    pub fn is_empty(&self) -> bool {
        self.balance == 0 && self.nonce == 0
    }
}

/// Anything accounts can be read from.
pub trait AccountReader {
    /// The account's state (empty if absent).
    fn account(&self, address: &Address) -> Result<Account, StoreError>;
}

fn read_account<T: ReadableTable<&'static [u8; 32], &'static [u8; 24]>>(
    t: &T,
    address: &Address,
) -> Result<Account, StoreError> {
    Ok(t.get(address.as_bytes())?.map(|g| Account::from_bytes(g.value())).unwrap_or_default())
}

impl AccountReader for redb::ReadOnlyTable<&'static [u8; 32], &'static [u8; 24]> {
    fn account(&self, address: &Address) -> Result<Account, StoreError> {
        read_account(self, address)
    }
}

impl AccountReader for redb::Table<'_, &'static [u8; 32], &'static [u8; 24]> {
    fn account(&self, address: &Address) -> Result<Account, StoreError> {
        read_account(self, address)
    }
}

impl AccountReader for std::collections::HashMap<Address, Account> {
    fn account(&self, address: &Address) -> Result<Account, StoreError> {
        Ok(self.get(address).copied().unwrap_or_default())
    }
}

/// What a block did to the state: every touched account's value before and after.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDiff {
    /// Address to (before, after).
    pub changes: BTreeMap<Address, (Account, Account)>,
    /// Fees collected.
    pub fees: u128,
}

impl StateDiff {
    /// The accumulator after applying this diff to `base`.
    pub fn apply_to(&self, base: &LtHash) -> LtHash {
        let mut lt = base.clone();
        for (addr, (old, new)) in &self.changes {
            if old != new {
                lt.remove(addr, old.balance, old.nonce);
                lt.insert(addr, new.balance, new.nonce);
            }
        }
        lt
    }
}

/// A transaction failed during execution.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExecError {
    /// Transaction `index` breaks a rule (index == number of transactions: the miner's credit).
    #[error("transaction {index}: {error}")]
    Tx {
        /// Position in the block.
        index: usize,
        /// The rule.
        error: TxError,
    },
    /// The state could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Overlay<'a, R: AccountReader> {
    base: &'a R,
    diff: StateDiff,
}

impl<R: AccountReader> Overlay<'_, R> {
    fn get(&mut self, a: &Address) -> Result<Account, StoreError> {
        if let Some((_, new)) = self.diff.changes.get(a) {
            return Ok(*new);
        }
        let acc = self.base.account(a)?;
        self.diff.changes.insert(*a, (acc, acc));
        Ok(acc)
    }
    fn set(&mut self, a: &Address, acc: Account) {
        if let Some(entry) = self.diff.changes.get_mut(a) {
            entry.1 = acc;
        }
    }
}

/// Applies one transaction's nonce and balance rules to the overlay.
fn execute_tx<R: AccountReader>(o: &mut Overlay<'_, R>, tx: &Transaction) -> Result<u128, ExecError> {
    let wrap = |error| ExecError::Tx { index: 0, error };
    let mut sender = o.get(&tx.from)?;
    if tx.nonce < sender.nonce {
        return Err(wrap(TxError::NonceTooLow { expected: sender.nonce, got: tx.nonce }));
    }
    if tx.nonce > sender.nonce {
        return Err(wrap(TxError::NonceGap { expected: sender.nonce, got: tx.nonce }));
    }
    let cost = tx.total_cost().ok_or(wrap(TxError::CostOverflow))?;
    if sender.balance < cost {
        return Err(wrap(TxError::InsufficientBalance { need: cost, have: sender.balance }));
    }
    sender.balance -= cost;
    sender.nonce += 1;
    o.set(&tx.from, sender);
    let (to, amount) = tx.transfer();
    let mut recipient = o.get(&to)?;
    recipient.balance = recipient.balance.checked_add(amount).ok_or(wrap(TxError::BalanceOverflow))?;
    o.set(&to, recipient);
    Ok(tx.fee)
}

/// The state transition function: runs `txs` in order on top of `base`, then credits the block
/// reward plus fees to `miner`.
pub fn execute<R: AccountReader>(
    base: &R,
    params: &ChainParams,
    txs: &[Transaction],
    miner: &Address,
) -> Result<StateDiff, ExecError> {
    let mut o = Overlay { base, diff: StateDiff::default() };
    let mut fees: u128 = 0;
    for (index, tx) in txs.iter().enumerate() {
        let fee = execute_tx(&mut o, tx).map_err(|e| match e {
            ExecError::Tx { error, .. } => ExecError::Tx { index, error },
            other => other,
        })?;
        fees = fees.checked_add(fee).ok_or(ExecError::Tx { index, error: TxError::BalanceOverflow })?;
    }
    let overflow = ExecError::Tx { index: txs.len(), error: TxError::BalanceOverflow };
    let mut m = o.get(miner)?;
    let credit = params.block_reward.checked_add(fees).ok_or(overflow.clone())?;
    m.balance = m.balance.checked_add(credit).ok_or(overflow)?;
    o.set(miner, m);
    o.diff.fees = fees;
    Ok(o.diff)
}

/// Whether a stored block has been found valid, invalid, or not yet fully checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BlockStatus {
    /// Header, PoW, signatures and stateless rules checked; state rules not yet (side chain).
    HeaderValid = 0,
    /// Applied to the state at least once: fully valid.
    Connected = 1,
    /// Found invalid; never to be applied.
    Invalid = 2,
}

/// A stored block's header, total work and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMeta {
    /// The header.
    pub header: BlockHeader,
    /// Cumulative work from genesis through this block.
    pub total_work: u128,
    /// Validation status.
    pub status: BlockStatus,
}

impl BlockMeta {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(HEADER_LEN + 17);
        self.header.write(&mut w);
        w.u128(self.total_work);
        w.u8(self.status as u8);
        w.finish()
    }
    fn decode(b: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader::new(b);
        let parse = |r: &mut Reader<'_>| -> Result<Self, vision_primitives::encoding::DecodeError> {
            let header = BlockHeader::read(r)?;
            let total_work = r.u128()?;
            let status = match r.u8()? {
                0 => BlockStatus::HeaderValid,
                1 => BlockStatus::Connected,
                _ => BlockStatus::Invalid,
            };
            Ok(BlockMeta { header, total_work, status })
        };
        let m = parse(&mut r).map_err(|e| StoreError::Corrupt(format!("block meta: {e}")))?;
        r.finish().map_err(|e| StoreError::Corrupt(format!("block meta: {e}")))?;
        Ok(m)
    }
}

/// A block named without its body: what a tip change reports for each block it reverted or
/// applied. The body stays in the store (an applied block is canonical; a reverted one stays
/// stored as a side-chain block until stale-branch pruning, `prune`, removes it), so whoever
/// needs the transactions reads them back one block at a time ([`ReadView::body`]) instead of
/// holding a whole reorganisation's bodies at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    /// Block hash.
    pub hash: Hash,
    /// Its header.
    pub header: BlockHeader,
    /// Number of transactions in its body.
    pub tx_count: usize,
}

/// Anything stored block headers can be looked up in (read and write views).
pub trait BlockMetaReader {
    /// A stored block's header, work and status.
    fn block_meta(&self, hash: &Hash) -> Result<Option<BlockMeta>, StoreError>;
}

impl BlockMetaReader for ReadView {
    fn block_meta(&self, hash: &Hash) -> Result<Option<BlockMeta>, StoreError> {
        ReadView::block_meta(self, hash)
    }
}

impl BlockMetaReader for WriteView {
    fn block_meta(&self, hash: &Hash) -> Result<Option<BlockMeta>, StoreError> {
        WriteView::block_meta(self, hash)
    }
}

/// The database.
pub struct Store {
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// An address-manager record as stored: (peer id bytes, record bytes).
pub type PeerRecord = (Vec<u8>, Vec<u8>);

/// A remembered peer: (peer id bytes, multiaddr bytes, last seen unix ms).
pub type StoredPeer = (Vec<u8>, Vec<Vec<u8>>, u64);

/// Most peers remembered in the database: every slot of the address manager's tables
/// (`vision_p2p::addrman::MAX_ENTRIES`, which a test there keeps equal); a record for a further
/// peer is not written.
pub const MAX_STORED_PEERS: usize = 5_120;
/// Peers remembered in redb, in the resource registry (cap: [`MAX_STORED_PEERS`]).
pub const STORED_PEERS: vision_primitives::bounds::Resource =
    vision_primitives::bounds::Resource::new("stored_peers", "state::MAX_STORED_PEERS", MAX_STORED_PEERS);
/// Most addresses read per peer from the table written before the address manager.
pub const MAX_ADDRS_PER_PEER: usize = 8;
/// Longest address-manager record written (a record of 8 addresses is far below).
pub const MAX_PEER_RECORD_BYTES: usize = 4096;
/// Most anchors written.
pub const MAX_ANCHORS: usize = 16;

/// One change to the peer book or the ban list, for [`Store::save_peer_book`] (raw peer id and
/// record bytes: this layer knows no libp2p).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerBookChange {
    /// A peer's address-manager record (longer than [`MAX_PEER_RECORD_BYTES`]: not written).
    Put {
        /// The peer id's bytes.
        peer: Vec<u8>,
        /// The record.
        record: Vec<u8>,
    },
    /// A peer the address manager forgot.
    Forget {
        /// The peer id's bytes.
        peer: Vec<u8>,
    },
    /// The anchors, replacing the previous ones (at most [`MAX_ANCHORS`] are kept).
    Anchors {
        /// Their peer ids' bytes.
        peers: Vec<Vec<u8>>,
    },
    /// The peers written before the address manager were read into it: empty their table.
    DropLegacyPeers,
    /// A peer is banned until `until_ms` (unix ms).
    Ban {
        /// The peer id's bytes.
        peer: Vec<u8>,
        /// The end of the ban.
        until_ms: u64,
    },
    /// A peer's ban is lifted.
    Unban {
        /// The peer id's bytes.
        peer: Vec<u8>,
    },
}

/// Reads a `peers-1` value: `last_seen_ms u64 ‖ count u16 ‖ (len u16 ‖ bytes)*`.
fn decode_peer(v: &[u8]) -> Option<(u64, Vec<Vec<u8>>)> {
    let mut r = Reader::new(v);
    let seen = r.u64().ok()?;
    let n = u16::from_le_bytes(r.array().ok()?) as usize;
    let mut addrs = Vec::with_capacity(n.min(MAX_ADDRS_PER_PEER));
    for _ in 0..n {
        let len = u16::from_le_bytes(r.array().ok()?) as usize;
        addrs.push(r.take(len).ok()?.to_vec());
    }
    Some((seen, addrs))
}

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "chain.redb";

/// redb's page cache (its default is 1 GiB, which let the node's memory follow the database's size:
/// found by the mempool flood in `tests/it/flood.rs`). 128 MiB holds the account table and the
/// recent blocks a node reads most.
pub const DB_CACHE_BYTES: usize = 128 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the database in `dir` for the network of `genesis`.
    pub fn open(dir: &Path, genesis: &Genesis) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dir.display())))?;
        let db = Database::builder().set_cache_size(DB_CACHE_BYTES).create(dir.join(DB_FILE))?;
        crate::fault::point("open.after_create");
        let store = Self::init(db, genesis)?;
        crate::fault::point("open.after_init");
        Ok(store)
    }

    /// A store in memory (tests and simulations).
    pub fn in_memory(genesis: &Genesis) -> Result<Self, StoreError> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Self::init(db, genesis)
    }

    fn init(db: Database, genesis: &Genesis) -> Result<Self, StoreError> {
        let store = Store { db };
        let configured = genesis.hash();
        {
            // Network tables may be missing in databases created before they existed.
            let w = store.write()?;
            w.txn.open_table(PEERS)?;
            w.txn.open_table(BANS)?;
            w.commit()?;
        }
        {
            let r = store.read()?;
            if let Some(stored) = r.genesis_hash()? {
                if stored != configured {
                    return Err(StoreError::GenesisMismatch { stored, configured });
                }
                let v = r.schema_version()?;
                drop(r);
                match v {
                    1 => {
                        store.migrate_1_to_2()?;
                        store.migrate_2_to_3()?;
                    }
                    2 => store.migrate_2_to_3()?,
                    SCHEMA_VERSION => {}
                    _ => return Err(StoreError::Schema { found: v }),
                }
                return Ok(store);
            }
        }
        let block = genesis.block();
        let hash = block.hash();
        let w = store.write()?;
        {
            let mut meta = w.txn.open_table(META)?;
            meta.insert(META_SCHEMA, SCHEMA_VERSION.to_le_bytes().as_slice())?;
            meta.insert(META_GENESIS, hash.0.as_slice())?;
            meta.insert(META_TIP, hash.0.as_slice())?;
            meta.insert(META_LTHASH, genesis.lthash().to_bytes().as_slice())?;
            let mut accounts = w.txn.open_table(ACCOUNTS)?;
            for a in &genesis.allocations {
                let acc = Account { balance: a.balance, nonce: 0 };
                if !acc.is_empty() {
                    accounts.insert(a.address.as_bytes(), &acc.to_bytes())?;
                }
            }
            w.txn.open_table(CANON)?.insert(0u64, &hash.0)?;
        }
        w.put_block(
            &block,
            &BlockMeta {
                header: block.header,
                total_work: u128::from(block.header.difficulty),
                status: BlockStatus::Connected,
            },
        )?;
        // Genesis is canonical, not a side-chain block.
        w.txn.open_table(SIDE)?.remove(&side_key(0, &hash))?;
        // Create the remaining tables so read transactions never meet a missing table.
        w.txn.open_table(UNDO)?;
        w.txn.open_table(TX_INDEX)?;
        w.txn.open_table(ACCOUNT_TXS)?;
        w.commit()?;
        Ok(store)
    }

    /// Schema 1 to 2: builds the `side` index (every stored block that is not canonical) from one
    /// scan of the stored headers, in one write transaction.
    fn migrate_1_to_2(&self) -> Result<(), StoreError> {
        let w = self.write()?;
        let mut n = 0u64;
        {
            let blocks = w.txn.open_table(BLOCKS)?;
            let canon = w.txn.open_table(CANON)?;
            let mut side = w.txn.open_table(SIDE)?;
            for item in blocks.iter()? {
                let (k, v) = item?;
                let m = BlockMeta::decode(v.value())?;
                let hash = Hash(*k.value());
                if canon.get(m.header.height)?.map(|g| Hash(*g.value())) != Some(hash) {
                    side.insert(&side_key(m.header.height, &hash), &m.header.parent.0)?;
                    n += 1;
                }
            }
            w.txn.open_table(META)?.insert(META_SCHEMA, 2u32.to_le_bytes().as_slice())?;
        }
        w.commit()?;
        tracing::info!(side_blocks = n, "database schema 1 migrated to 2 (side-chain index)");
        Ok(())
    }

    /// Schema 2 to 3: builds `account-txs-2` (each entry holds its transaction) from the bodies of
    /// the canonical blocks, one pass from height 1 to the tip, and deletes `account-txs-1`, in
    /// one write transaction: a crash leaves schema 2, migrated again at the next open. Never an
    /// empty index: the table is either built whole or not committed.
    fn migrate_2_to_3(&self) -> Result<(), StoreError> {
        let w = self.write()?;
        let mut entries = 0u64;
        let tip_height;
        {
            let canon = w.txn.open_table(CANON)?;
            let bodies = w.txn.open_table(BODIES)?;
            let mut by_acct = w.txn.open_table(ACCOUNT_TXS)?;
            tip_height = canon.last()?.map(|(k, _)| k.value()).unwrap_or(0);
            for item in canon.range(1u64..)? {
                let (h, hash) = item?;
                let height = h.value();
                let hash = Hash(*hash.value());
                let body = bodies
                    .get(&hash.0)?
                    .ok_or_else(|| StoreError::Corrupt(format!("no body for canonical block {hash}")))?;
                let txs = Block::read_body(&mut Reader::new(body.value()))
                    .map_err(|e| StoreError::Corrupt(format!("body of {hash}: {e}")))?;
                for (i, tx) in txs.iter().enumerate() {
                    let bytes = tx.encode();
                    by_acct.insert(&account_tx_key(tx.from.as_bytes(), height, i as u32), bytes.as_slice())?;
                    entries += 1;
                    let (to, _) = tx.transfer();
                    if to != tx.from {
                        by_acct.insert(&account_tx_key(to.as_bytes(), height, i as u32), bytes.as_slice())?;
                        entries += 1;
                    }
                }
            }
            w.txn.open_table(META)?.insert(META_SCHEMA, SCHEMA_VERSION.to_le_bytes().as_slice())?;
        }
        w.txn.delete_table(ACCOUNT_TXS_1).map_err(|e| StoreError::Db(e.to_string()))?;
        w.commit()?;
        tracing::info!(
            entries,
            blocks = tip_height,
            "database schema 2 migrated to 3 (account history holds the transactions)"
        );
        Ok(())
    }

    /// A consistent snapshot for reading.
    pub fn read(&self) -> Result<ReadView, StoreError> {
        Ok(ReadView { txn: self.db.begin_read()? })
    }

    /// Applies peer-book and ban changes in order, in one write transaction (one fsync however
    /// many: the network flushes what gathered over a few seconds, off the import path). Holds at
    /// most [`MAX_STORED_PEERS`] records. Returns how many are stored.
    pub fn save_peer_book(&self, changes: &[PeerBookChange]) -> Result<u64, StoreError> {
        let tx = self.write()?;
        let stored;
        {
            let mut book = tx.txn.open_table(ADDR_BOOK)?;
            let mut bans = tx.txn.open_table(BANS)?;
            for change in changes {
                match change {
                    PeerBookChange::Put { peer, record } => {
                        let room = book.len()? < MAX_STORED_PEERS as u64 || book.get(peer.as_slice())?.is_some();
                        if room && record.len() <= MAX_PEER_RECORD_BYTES {
                            book.insert(peer.as_slice(), record.as_slice())?;
                        }
                    }
                    PeerBookChange::Forget { peer } => {
                        book.remove(peer.as_slice())?;
                    }
                    PeerBookChange::Anchors { peers } => {
                        let peers: Vec<&Vec<u8>> =
                            peers.iter().filter(|p| p.len() <= u8::MAX as usize).take(MAX_ANCHORS).collect();
                        let mut w = vec![peers.len() as u8];
                        for p in peers {
                            w.push(p.len() as u8);
                            w.extend_from_slice(p);
                        }
                        tx.txn.open_table(META)?.insert(META_ANCHORS, w.as_slice())?;
                    }
                    PeerBookChange::DropLegacyPeers => {
                        tx.txn.delete_table(PEERS)?;
                    }
                    PeerBookChange::Ban { peer, until_ms } => {
                        bans.insert(peer.as_slice(), *until_ms)?;
                    }
                    PeerBookChange::Unban { peer } => {
                        bans.remove(peer.as_slice())?;
                    }
                }
            }
            stored = book.len()?;
        }
        tx.commit()?;
        Ok(stored)
    }

    /// The address manager's records: (peer id, record).
    pub fn load_peer_book(&self) -> Result<Vec<PeerRecord>, StoreError> {
        self.byte_rows(ADDR_BOOK, MAX_STORED_PEERS)
    }

    /// At most `limit` rows of a byte-keyed table, in key order; none if it does not exist.
    fn byte_rows(&self, table: TableDefinition<&[u8], &[u8]>, limit: usize) -> Result<Vec<PeerRecord>, StoreError> {
        let r = self.read()?;
        let t = match r.txn.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for item in t.iter()?.take(limit) {
            let (k, v) = item?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// The anchors last written (peer ids), in order.
    pub fn load_anchors(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let r = self.read()?;
        let t = r.txn.open_table(META)?;
        let Some(v) = t.get(META_ANCHORS)? else { return Ok(Vec::new()) };
        let v = v.value();
        let mut out = Vec::new();
        let mut i = 1;
        for _ in 0..v.first().copied().unwrap_or(0) {
            let Some(&len) = v.get(i) else { break };
            let Some(p) = v.get(i + 1..i + 1 + len as usize) else { break };
            out.push(p.to_vec());
            i += 1 + len as usize;
        }
        Ok(out)
    }

    /// Peers written before the address manager (`peers-1`), most recently seen first: read
    /// once into it.
    pub fn load_legacy_peers(&self) -> Result<Vec<StoredPeer>, StoreError> {
        let mut out: Vec<StoredPeer> = self
            .byte_rows(PEERS, usize::MAX)?
            .into_iter()
            .filter_map(|(k, v)| decode_peer(&v).map(|(seen, addrs)| (k, addrs, seen)))
            .collect();
        out.sort_by_key(|p| std::cmp::Reverse(p.2));
        Ok(out)
    }

    /// Every recorded ban: (peer id, until ms).
    pub fn load_bans(&self) -> Result<Vec<(Vec<u8>, u64)>, StoreError> {
        let r = self.read()?;
        let t = r.txn.open_table(BANS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push((k.value().to_vec(), v.value()));
        }
        Ok(out)
    }

    /// The one write transaction (blocks while another is open).
    pub fn write(&self) -> Result<WriteView, StoreError> {
        Ok(WriteView { txn: self.db.begin_write()? })
    }

    /// An empty durable commit: makes every deferred commit before it durable
    /// ([`WriteView::defer_durability`]).
    pub fn persist(&self) -> Result<(), StoreError> {
        self.write()?.commit()
    }
}

/// Reads shared by read and write views.
macro_rules! read_methods {
    () => {
        /// Genesis hash stored at creation.
        pub fn genesis_hash(&self) -> Result<Option<Hash>, StoreError> {
            let t = match self.txn.open_table(META) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            t.get(META_GENESIS)?.map(|g| to_hash(g.value())).transpose()
        }

        /// Schema version stored at creation.
        pub fn schema_version(&self) -> Result<u32, StoreError> {
            let t = self.txn.open_table(META)?;
            let g = t.get(META_SCHEMA)?.ok_or_else(|| StoreError::Corrupt("no schema version".into()))?;
            let b: [u8; 4] = g.value().try_into().map_err(|_| StoreError::Corrupt("schema version".into()))?;
            Ok(u32::from_le_bytes(b))
        }

        /// Canonical tip hash.
        pub fn tip_hash(&self) -> Result<Hash, StoreError> {
            let t = self.txn.open_table(META)?;
            let g = t.get(META_TIP)?.ok_or_else(|| StoreError::Corrupt("no tip".into()))?;
            to_hash(g.value())
        }

        /// LtHash accumulator of the tip state.
        pub fn lthash(&self) -> Result<LtHash, StoreError> {
            let t = self.txn.open_table(META)?;
            let g = t.get(META_LTHASH)?.ok_or_else(|| StoreError::Corrupt("no lthash".into()))?;
            LtHash::from_bytes(g.value()).ok_or_else(|| StoreError::Corrupt("lthash length".into()))
        }

        /// A stored block's header, work and status.
        pub fn block_meta(&self, hash: &Hash) -> Result<Option<BlockMeta>, StoreError> {
            let t = self.txn.open_table(BLOCKS)?;
            t.get(&hash.0)?.map(|g| BlockMeta::decode(g.value())).transpose()
        }

        /// A stored block's transactions.
        pub fn body(&self, hash: &Hash) -> Result<Option<Vec<Transaction>>, StoreError> {
            let t = self.txn.open_table(BODIES)?;
            let Some(g) = t.get(&hash.0)? else { return Ok(None) };
            let mut r = Reader::new(g.value());
            let txs = Block::read_body(&mut r).map_err(|e| StoreError::Corrupt(format!("body of {hash}: {e}")))?;
            Ok(Some(txs))
        }

        /// Transaction `index` of a stored block's body, found by walking the length prefixes:
        /// only that transaction is decoded.
        pub fn body_tx(&self, hash: &Hash, index: u32) -> Result<Option<Transaction>, StoreError> {
            let t = self.txn.open_table(BODIES)?;
            let Some(g) = t.get(&hash.0)? else { return Ok(None) };
            let corrupt =
                |e: vision_primitives::encoding::DecodeError| StoreError::Corrupt(format!("body of {hash}: {e}"));
            let mut r = Reader::new(g.value());
            let count = r.u32().map_err(corrupt)?;
            if index >= count {
                return Ok(None);
            }
            for _ in 0..index {
                r.length_prefixed(vision_primitives::types::MAX_TX_LEN, "transaction length").map_err(corrupt)?;
            }
            let bytes =
                r.length_prefixed(vision_primitives::types::MAX_TX_LEN, "transaction length").map_err(corrupt)?;
            Transaction::decode(bytes).map(Some).map_err(corrupt)
        }

        /// A whole stored block. `None` for a block stored as invalid: its body is not kept.
        pub fn block(&self, hash: &Hash) -> Result<Option<Block>, StoreError> {
            let Some(meta) = self.block_meta(hash)? else { return Ok(None) };
            let Some(transactions) = self.body(hash)? else {
                if meta.status == BlockStatus::Invalid {
                    return Ok(None);
                }
                return Err(StoreError::Corrupt(format!("no body for {hash}")));
            };
            Ok(Some(Block { header: meta.header, transactions }))
        }

        /// (hash, height, parent) of every stored block above `height` (a full scan of the
        /// headers: for operator actions only).
        pub fn block_parents_above(&self, height: u64) -> Result<Vec<(Hash, u64, Hash)>, StoreError> {
            let t = self.txn.open_table(BLOCKS)?;
            let mut out = Vec::new();
            for item in t.iter()? {
                let (k, v) = item?;
                let m = BlockMeta::decode(v.value())?;
                if m.header.height > height {
                    out.push((Hash(*k.value()), m.header.height, m.header.parent));
                }
            }
            Ok(out)
        }

        /// Up to `limit` stored blocks that are not canonical (side chains, invalid headers), from
        /// `height` up, in (height, hash) order: (height, hash, parent). Reads the `side` index only.
        pub fn side_blocks_from(&self, height: u64, limit: usize) -> Result<Vec<(u64, Hash, Hash)>, StoreError> {
            let t = self.txn.open_table(SIDE)?;
            let mut out = Vec::new();
            for item in t.range::<&[u8; 40]>(&side_key(height, &Hash::ZERO)..)? {
                if out.len() >= limit {
                    break;
                }
                let (k, v) = item?;
                let (h, hash) = split_side_key(k.value());
                out.push((h, hash, Hash(*v.value())));
            }
            Ok(out)
        }

        /// Hash of the canonical block at `height`.
        pub fn canonical_hash(&self, height: u64) -> Result<Option<Hash>, StoreError> {
            let t = self.txn.open_table(CANON)?;
            Ok(t.get(height)?.map(|g| Hash(*g.value())))
        }

        /// An account's state at the tip.
        pub fn account(&self, address: &Address) -> Result<Account, StoreError> {
            read_account(&self.txn.open_table(ACCOUNTS)?, address)
        }

        /// Block hash and index of a canonical transaction.
        pub fn tx_location(&self, id: &Hash) -> Result<Option<(Hash, u32)>, StoreError> {
            let t = self.txn.open_table(TX_INDEX)?;
            Ok(t.get(&id.0)?.map(|g| {
                let v = g.value();
                let mut h = [0u8; 32];
                h.copy_from_slice(&v[..32]);
                let mut i = [0u8; 4];
                i.copy_from_slice(&v[32..]);
                (Hash(h), u32::from_le_bytes(i))
            }))
        }

        /// Up to `limit` canonical transactions of `address`, newest first, strictly below
        /// `(before_height, before_index)` when given. Returns (height, index, transaction): one
        /// range read of the account index, which holds the transactions (no block is read).
        pub fn account_txs(
            &self,
            address: &Address,
            limit: usize,
            before: Option<(u64, u32)>,
        ) -> Result<Vec<(u64, u32, Transaction)>, StoreError> {
            let t = self.txn.open_table(ACCOUNT_TXS)?;
            let lo = account_tx_key(address.as_bytes(), 0, 0);
            let hi = match before {
                Some((h, i)) => account_tx_key(address.as_bytes(), h, i),
                None => {
                    let mut k = account_tx_key(address.as_bytes(), u64::MAX, u32::MAX);
                    k[43] = 0xff;
                    k
                }
            };
            let mut out = Vec::new();
            let range =
                if before.is_some() { t.range::<&[u8; 44]>(&lo..&hi)? } else { t.range::<&[u8; 44]>(&lo..=&hi)? };
            for item in range.rev() {
                let (k, v) = item?;
                let k = k.value();
                let mut h = [0u8; 8];
                h.copy_from_slice(&k[32..40]);
                let mut i = [0u8; 4];
                i.copy_from_slice(&k[40..]);
                let (height, index) = (u64::from_be_bytes(h), u32::from_be_bytes(i));
                let tx = Transaction::decode(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("account index entry at {height}:{index}: {e}")))?;
                out.push((height, index, tx));
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        }
    };
}

fn to_hash(b: &[u8]) -> Result<Hash, StoreError> {
    let a: [u8; 32] = b.try_into().map_err(|_| StoreError::Corrupt("hash length".into()))?;
    Ok(Hash(a))
}

/// A read snapshot.
pub struct ReadView {
    txn: ReadTransaction,
}

impl ReadView {
    read_methods!();

    /// The open accounts table, as an [`AccountReader`] for [`execute`].
    pub fn accounts(&self) -> Result<impl AccountReader + '_, StoreError> {
        Ok(self.txn.open_table(ACCOUNTS)?)
    }

    /// Every account, in address order (for `db check`).
    pub fn all_accounts(&self) -> Result<Vec<(Address, Account)>, StoreError> {
        let t = self.txn.open_table(ACCOUNTS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push((Address(*k.value()), Account::from_bytes(v.value())));
        }
        Ok(out)
    }
}

/// The one write transaction. Dropping it without [`WriteView::commit`] aborts everything in it.
pub struct WriteView {
    txn: WriteTransaction,
}

impl WriteView {
    read_methods!();

    /// Stores a block (header, work, status and body) without touching the state.
    pub fn put_block(&self, block: &Block, meta: &BlockMeta) -> Result<(), StoreError> {
        let hash = block.hash();
        self.txn.open_table(BLOCKS)?.insert(&hash.0, meta.encode().as_slice())?;
        let mut w = Writer::default();
        Block::write_body(&block.transactions, &mut w);
        self.txn.open_table(BODIES)?.insert(&hash.0, w.finish().as_slice())?;
        self.put_side(&hash, &meta.header)
    }

    /// Stores a block's header, work and status without a body (a block found invalid).
    pub fn put_meta(&self, hash: &Hash, meta: &BlockMeta) -> Result<(), StoreError> {
        self.txn.open_table(BLOCKS)?.insert(&hash.0, meta.encode().as_slice())?;
        self.put_side(hash, &meta.header)
    }

    /// Lists a stored block in the `side` index (it is not canonical).
    fn put_side(&self, hash: &Hash, header: &BlockHeader) -> Result<(), StoreError> {
        self.txn.open_table(SIDE)?.insert(&side_key(header.height, hash), &header.parent.0)?;
        Ok(())
    }

    /// Drops a stored block's body, keeping its header.
    pub fn remove_body(&self, hash: &Hash) -> Result<(), StoreError> {
        self.txn.open_table(BODIES)?.remove(&hash.0)?;
        Ok(())
    }

    /// Forgets a stored block (header and body). The caller keeps the invariants: never a
    /// canonical block, never a block with stored children left behind.
    pub fn remove_block(&self, hash: &Hash) -> Result<(), StoreError> {
        if let Some(meta) = self.block_meta(hash)? {
            self.txn.open_table(SIDE)?.remove(&side_key(meta.header.height, hash))?;
        }
        self.txn.open_table(BLOCKS)?.remove(&hash.0)?;
        self.txn.open_table(BODIES)?.remove(&hash.0)?;
        Ok(())
    }

    /// Changes a stored block's status.
    pub fn set_status(&self, hash: &Hash, status: BlockStatus) -> Result<(), StoreError> {
        if let Some(mut meta) = self.block_meta(hash)? {
            meta.status = status;
            self.txn.open_table(BLOCKS)?.insert(&hash.0, meta.encode().as_slice())?;
        }
        Ok(())
    }

    /// Runs [`execute`] for `block` against the tip state inside this transaction.
    pub fn execute(&self, params: &ChainParams, block: &Block) -> Result<StateDiff, ExecError> {
        let accounts = self.txn.open_table(ACCOUNTS).map_err(StoreError::from)?;
        execute(&accounts, params, &block.transactions, &block.header.miner)
    }

    /// Makes `block` (a child of the tip, whose `diff` was computed against the tip state and whose
    /// state root was checked) the new tip: writes accounts, undo data, indexes, canon and meta.
    pub fn connect(&self, block: &Block, diff: &StateDiff, new_lthash: &LtHash) -> Result<(), StoreError> {
        let hash = block.hash();
        let height = block.header.height;
        let prev = self.lthash()?;
        // Undo: previous accumulator, then every touched account's previous value.
        let mut undo = Writer::with_capacity(lthash::LTHASH_BYTES + 4 + diff.changes.len() * 56);
        undo.bytes(&prev.to_bytes());
        undo.u32(diff.changes.len() as u32);
        {
            let mut accounts = self.txn.open_table(ACCOUNTS)?;
            for (addr, (old, new)) in &diff.changes {
                undo.bytes(addr.as_bytes());
                undo.u128(old.balance);
                undo.u64(old.nonce);
                if new.is_empty() {
                    accounts.remove(addr.as_bytes())?;
                } else {
                    accounts.insert(addr.as_bytes(), &new.to_bytes())?;
                }
            }
        }
        self.txn.open_table(UNDO)?.insert(&hash.0, undo.finish().as_slice())?;
        {
            // Both indexes are keyed by hashes (transaction ids, addresses): inserted in key order,
            // consecutive inserts walk the B-tree's pages in order instead of at random.
            let n = block.transactions.len();
            let mut by_id: Vec<([u8; 32], [u8; 36])> = Vec::with_capacity(n);
            let mut by_account: Vec<([u8; 44], usize)> = Vec::with_capacity(2 * n);
            let encoded: Vec<Vec<u8>> = block.transactions.iter().map(Transaction::encode).collect();
            for (i, tx) in block.transactions.iter().enumerate() {
                let id = tx.id();
                let mut loc = [0u8; 36];
                loc[..32].copy_from_slice(&hash.0);
                loc[32..].copy_from_slice(&(i as u32).to_le_bytes());
                by_id.push((id.0, loc));
                by_account.push((account_tx_key(tx.from.as_bytes(), height, i as u32), i));
                let (to, _) = tx.transfer();
                if to != tx.from {
                    by_account.push((account_tx_key(to.as_bytes(), height, i as u32), i));
                }
            }
            by_id.sort_unstable_by_key(|e| e.0);
            by_account.sort_unstable_by_key(|e| e.0);
            let mut idx = self.txn.open_table(TX_INDEX)?;
            for (id, loc) in &by_id {
                idx.insert(id, loc)?;
            }
            let mut by_acct = self.txn.open_table(ACCOUNT_TXS)?;
            for (key, i) in &by_account {
                by_acct.insert(key, encoded[*i].as_slice())?;
            }
        }
        self.txn.open_table(CANON)?.insert(height, &hash.0)?;
        self.txn.open_table(SIDE)?.remove(&side_key(height, &hash))?;
        let mut meta = self.txn.open_table(META)?;
        meta.insert(META_TIP, hash.0.as_slice())?;
        meta.insert(META_LTHASH, new_lthash.to_bytes().as_slice())?;
        drop(meta);
        self.set_status(&hash, BlockStatus::Connected)
    }

    /// Reverts the tip block through its undo data; its parent becomes the tip, and the block stays
    /// stored as a side-chain block. Returns it by reference: its body is read here (to remove its
    /// transactions from the indexes) and dropped, so that a deep reorganisation holds one body at
    /// a time.
    pub fn disconnect_tip(&self) -> Result<BlockRef, StoreError> {
        let hash = self.tip_hash()?;
        let block = self.block(&hash)?.ok_or_else(|| StoreError::Corrupt(format!("tip {hash} not stored")))?;
        if block.header.height == 0 {
            return Err(StoreError::Corrupt("asked to revert genesis".into()));
        }
        let undo_bytes = {
            let t = self.txn.open_table(UNDO)?;
            let g = t.get(&hash.0)?.ok_or_else(|| StoreError::Corrupt(format!("no undo data for {hash}")))?;
            g.value().to_vec()
        };
        let corrupt = |e: vision_primitives::encoding::DecodeError| StoreError::Corrupt(format!("undo of {hash}: {e}"));
        let mut r = Reader::new(&undo_bytes);
        let prev = LtHash::from_bytes(r.take(lthash::LTHASH_BYTES).map_err(corrupt)?)
            .ok_or_else(|| StoreError::Corrupt("undo lthash".into()))?;
        let n = r.u32().map_err(corrupt)?;
        {
            let mut accounts = self.txn.open_table(ACCOUNTS)?;
            for _ in 0..n {
                let addr: [u8; 32] = r.array().map_err(corrupt)?;
                let old = Account { balance: r.u128().map_err(corrupt)?, nonce: r.u64().map_err(corrupt)? };
                if old.is_empty() {
                    accounts.remove(&addr)?;
                } else {
                    accounts.insert(&addr, &old.to_bytes())?;
                }
            }
        }
        r.finish().map_err(corrupt)?;
        {
            let mut idx = self.txn.open_table(TX_INDEX)?;
            let mut by_acct = self.txn.open_table(ACCOUNT_TXS)?;
            let height = block.header.height;
            for (i, tx) in block.transactions.iter().enumerate() {
                idx.remove(&tx.id().0)?;
                by_acct.remove(&account_tx_key(tx.from.as_bytes(), height, i as u32))?;
                let (to, _) = tx.transfer();
                by_acct.remove(&account_tx_key(to.as_bytes(), height, i as u32))?;
            }
        }
        self.txn.open_table(UNDO)?.remove(&hash.0)?;
        self.txn.open_table(CANON)?.remove(block.header.height)?;
        self.put_side(&hash, &block.header)?;
        let mut meta = self.txn.open_table(META)?;
        meta.insert(META_TIP, block.header.parent.0.as_slice())?;
        meta.insert(META_LTHASH, prev.to_bytes().as_slice())?;
        Ok(BlockRef { hash, header: block.header, tx_count: block.transactions.len() })
    }

    /// Commits: everything in this transaction becomes visible and durable at once.
    pub fn commit(self) -> Result<(), StoreError> {
        self.txn.commit()?;
        Ok(())
    }

    /// Makes the commit of this transaction atomic and visible but not yet durable: it reaches
    /// the disk with the next durable commit (no fsync of its own). A crash before then loses it
    /// and every deferred commit since the last durable one, all together: the database reopens
    /// at that durable commit, consistent. Sync uses this inside a batch of blocks it can fetch
    /// again (see `node::Core::import_batch`).
    pub fn defer_durability(&mut self) -> Result<(), StoreError> {
        self.txn.set_durability(redb::Durability::None).map_err(|e| StoreError::Db(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written by schema 1 (no `side` index) is migrated on open: the index lists
    /// exactly the stored blocks that are not canonical, and the schema reads 2.
    #[test]
    fn schema_1_database_is_migrated_to_2_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = Genesis::devnet();
        let g = genesis.block();
        let side = Block {
            header: BlockHeader {
                height: 1,
                parent: g.hash(),
                timestamp_ms: g.header.timestamp_ms + 1_000,
                ..g.header
            },
            transactions: Vec::new(),
        };
        {
            let store = Store::open(dir.path(), &genesis).unwrap();
            let w = store.write().unwrap();
            let meta = BlockMeta { header: side.header, total_work: 2, status: BlockStatus::HeaderValid };
            w.put_block(&side, &meta).unwrap();
            // What schema 1 wrote: no side index, version 1.
            w.txn.open_table(SIDE).unwrap().remove(&side_key(1, &side.hash())).unwrap();
            w.txn.open_table(META).unwrap().insert(META_SCHEMA, 1u32.to_le_bytes().as_slice()).unwrap();
            w.commit().unwrap();
            let r = store.read().unwrap();
            assert_eq!(r.schema_version().unwrap(), 1);
            assert!(r.side_blocks_from(0, 10).unwrap().is_empty());
        }
        let store = Store::open(dir.path(), &genesis).unwrap();
        let r = store.read().unwrap();
        assert_eq!(r.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(r.side_blocks_from(0, 10).unwrap(), vec![(1, side.hash(), g.hash())]);
        // A version this node does not know is refused, with the version named.
        drop(r);
        let w = store.write().unwrap();
        w.txn.open_table(META).unwrap().insert(META_SCHEMA, 9u32.to_le_bytes().as_slice()).unwrap();
        w.commit().unwrap();
        drop(store);
        assert_eq!(Store::open(dir.path(), &genesis).unwrap_err(), StoreError::Schema { found: 9 });
    }

    fn params() -> ChainParams {
        Genesis::devnet().params()
    }

    fn transfer(
        from: &vision_primitives::keys::Keypair,
        to: Address,
        amount: u128,
        fee: u128,
        nonce: u64,
    ) -> Transaction {
        let devnet = vision_primitives::genesis::Genesis::devnet();
        vision_primitives::keys::signed_transfer(from, to, amount, fee, nonce, devnet.chain_id, &devnet.hash())
    }

    #[test]
    fn execute_applies_nonce_balance_and_rewards() {
        let p = params();
        let alice = vision_primitives::keys::Keypair::from_seed(&[1; 32]);
        let bob = Address([2; 32]);
        let miner = Address([3; 32]);
        let mut state = std::collections::HashMap::new();
        state.insert(alice.address(), Account { balance: 10_000, nonce: 0 });
        let txs = [transfer(&alice, bob, 100, 1_000, 0), transfer(&alice, bob, 50, 1_000, 1)];
        let diff = execute(&state, &p, &txs, &miner).unwrap();
        assert_eq!(diff.changes[&alice.address()].1, Account { balance: 10_000 - 2_150, nonce: 2 });
        assert_eq!(diff.changes[&bob].1, Account { balance: 150, nonce: 0 });
        assert_eq!(diff.changes[&miner].1.balance, p.block_reward + 2_000);
        assert_eq!(diff.fees, 2_000);
    }

    #[test]
    fn execute_rejects_each_stateful_rule() {
        let p = params();
        let alice = vision_primitives::keys::Keypair::from_seed(&[1; 32]);
        let bob = Address([2; 32]);
        let miner = Address([3; 32]);
        let mut state = std::collections::HashMap::new();
        state.insert(alice.address(), Account { balance: 5_000, nonce: 3 });
        let run = |txs: &[Transaction]| execute(&state, &p, txs, &miner).unwrap_err();
        assert_eq!(
            run(&[transfer(&alice, bob, 1, 1_000, 2)]),
            ExecError::Tx { index: 0, error: TxError::NonceTooLow { expected: 3, got: 2 } }
        );
        assert_eq!(
            run(&[transfer(&alice, bob, 1, 1_000, 4)]),
            ExecError::Tx { index: 0, error: TxError::NonceGap { expected: 3, got: 4 } }
        );
        assert_eq!(
            run(&[transfer(&alice, bob, 4_001, 1_000, 3)]),
            ExecError::Tx { index: 0, error: TxError::InsufficientBalance { need: 5_001, have: 5_000 } }
        );
        // The second spends what the first left: 5_000 - 3_000 = 2_000 < 2_500.
        assert_eq!(
            run(&[transfer(&alice, bob, 2_000, 1_000, 3), transfer(&alice, bob, 1_500, 1_000, 4)]),
            ExecError::Tx { index: 1, error: TxError::InsufficientBalance { need: 2_500, have: 2_000 } }
        );
        let mut rich = std::collections::HashMap::new();
        rich.insert(alice.address(), Account { balance: u128::MAX, nonce: 0 });
        rich.insert(bob, Account { balance: u128::MAX, nonce: 0 });
        assert_eq!(
            execute(&rich, &p, &[transfer(&alice, bob, 1, 1_000, 0)], &miner).unwrap_err(),
            ExecError::Tx { index: 0, error: TxError::BalanceOverflow }
        );
    }

    #[test]
    fn connect_then_disconnect_restores_everything() {
        let g = Genesis::devnet();
        let p = g.params();
        let store = Store::in_memory(&g).unwrap();
        let alice = vision_primitives::genesis::dev_keypair(0);
        let bob = Address([9; 32]);
        let genesis = g.block();
        let txs = vec![transfer(&alice, bob, 77, 1_000, 0)];
        let mut block = Block {
            header: BlockHeader {
                height: 1,
                parent: genesis.hash(),
                tx_root: vision_primitives::types::tx_root(&txs),
                ..genesis.header
            },
            transactions: txs,
        };
        let before_root = store.read().unwrap().lthash().unwrap().root();
        let w = store.write().unwrap();
        let diff = w.execute(&p, &block).unwrap();
        let lt = diff.apply_to(&w.lthash().unwrap());
        block.header.state_root = lt.root();
        w.put_block(&block, &BlockMeta { header: block.header, total_work: 2, status: BlockStatus::HeaderValid })
            .unwrap();
        w.connect(&block, &diff, &lt).unwrap();
        w.commit().unwrap();
        let r = store.read().unwrap();
        assert_eq!(r.tip_hash().unwrap(), block.hash());
        assert_eq!(r.account(&bob).unwrap().balance, 77);
        assert_eq!(r.tx_location(&block.transactions[0].id()).unwrap(), Some((block.hash(), 0)));
        assert_eq!(r.account_txs(&bob, 10, None).unwrap().len(), 1);
        assert_eq!(r.body_tx(&block.hash(), 0).unwrap(), Some(block.transactions[0]));
        assert_eq!(r.body_tx(&block.hash(), 1).unwrap(), None);
        assert_eq!(r.lthash().unwrap().root(), block.header.state_root);
        drop(r);

        let w = store.write().unwrap();
        let reverted = w.disconnect_tip().unwrap();
        assert_eq!(reverted, BlockRef { hash: block.hash(), header: block.header, tx_count: 1 });
        assert_eq!(w.side_blocks_from(0, 10).unwrap(), vec![(1, block.hash(), genesis.hash())]);
        w.commit().unwrap();
        let r = store.read().unwrap();
        assert_eq!(r.tip_hash().unwrap(), genesis.hash());
        assert_eq!(r.account(&bob).unwrap(), Account::default());
        assert_eq!(r.account(&alice.address()).unwrap().balance, vision_primitives::genesis::DEV_BALANCE);
        assert_eq!(r.tx_location(&block.transactions[0].id()).unwrap(), None);
        assert!(r.account_txs(&bob, 10, None).unwrap().is_empty());
        assert_eq!(r.lthash().unwrap().root(), before_root);
        assert_eq!(r.canonical_hash(1).unwrap(), None);
    }

    /// A schema 2 database (account index of tx ids, `account-txs-1`) is migrated on open: the
    /// new index holds every canonical transaction of both parties, the old table is gone, and
    /// the schema reads 3. Never an empty history.
    #[test]
    fn schema_2_account_index_is_rebuilt_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let g = Genesis::devnet();
        let p = g.params();
        let alice = vision_primitives::genesis::dev_keypair(0);
        let bob = Address([9; 32]);
        let txs = vec![transfer(&alice, bob, 77, 1_000, 0), transfer(&alice, bob, 78, 1_000, 1)];
        let genesis = g.block();
        let mut block = Block {
            header: BlockHeader {
                height: 1,
                parent: genesis.hash(),
                tx_root: vision_primitives::types::tx_root(&txs),
                ..genesis.header
            },
            transactions: txs.clone(),
        };
        {
            let store = Store::open(dir.path(), &g).unwrap();
            let w = store.write().unwrap();
            let diff = w.execute(&p, &block).unwrap();
            let lt = diff.apply_to(&w.lthash().unwrap());
            block.header.state_root = lt.root();
            let meta = BlockMeta { header: block.header, total_work: 2, status: BlockStatus::HeaderValid };
            w.put_block(&block, &meta).unwrap();
            w.connect(&block, &diff, &lt).unwrap();
            // What schema 2 wrote: ids in `account-txs-1`, no `account-txs-2`.
            w.txn.delete_table(ACCOUNT_TXS).unwrap();
            let mut old = w.txn.open_table(ACCOUNT_TXS_1).unwrap();
            for (i, tx) in txs.iter().enumerate() {
                old.insert(&account_tx_key(alice.address().as_bytes(), 1, i as u32), &tx.id().0).unwrap();
                old.insert(&account_tx_key(bob.as_bytes(), 1, i as u32), &tx.id().0).unwrap();
            }
            drop(old);
            w.txn.open_table(META).unwrap().insert(META_SCHEMA, 2u32.to_le_bytes().as_slice()).unwrap();
            w.commit().unwrap();
        }
        let store = Store::open(dir.path(), &g).unwrap();
        let r = store.read().unwrap();
        assert_eq!(r.schema_version().unwrap(), SCHEMA_VERSION);
        let want: Vec<(u64, u32, Transaction)> = vec![(1, 1, txs[1]), (1, 0, txs[0])];
        assert_eq!(r.account_txs(&bob, 10, None).unwrap(), want);
        assert_eq!(r.account_txs(&alice.address(), 10, None).unwrap(), want);
        assert_eq!(r.account_txs(&bob, 10, Some((1, 1))).unwrap(), want[1..].to_vec());
        assert!(matches!(r.txn.open_table(ACCOUNT_TXS_1), Err(redb::TableError::TableDoesNotExist(_))));
    }

    #[test]
    fn an_aborted_write_leaves_nothing() {
        let g = Genesis::devnet();
        let store = Store::in_memory(&g).unwrap();
        let w = store.write().unwrap();
        w.txn.open_table(ACCOUNTS).unwrap().insert(&[5; 32], &Account { balance: 1, nonce: 1 }.to_bytes()).unwrap();
        drop(w);
        assert_eq!(store.read().unwrap().account(&Address([5; 32])).unwrap(), Account::default());
    }

    #[test]
    fn peers_anchors_and_bans_persist() {
        let dir = tempfile::tempdir().unwrap();
        let g = Genesis::devnet();
        {
            let s = Store::open(dir.path(), &g).unwrap();
            let put = |peer: &[u8], record: &[u8]| PeerBookChange::Put { peer: peer.to_vec(), record: record.to_vec() };
            let ban = |peer: &[u8], until_ms| PeerBookChange::Ban { peer: peer.to_vec(), until_ms };
            // Applied in order, in one transaction: peer-d's ban is lifted after it is recorded,
            // peer-e forgotten after it is written.
            let stored = s
                .save_peer_book(&[
                    put(b"peer-a", b"record-a"),
                    put(b"peer-e", b"record-e"),
                    ban(b"peer-c", 1234),
                    ban(b"peer-d", 99),
                    PeerBookChange::Unban { peer: b"peer-d".to_vec() },
                    PeerBookChange::Forget { peer: b"peer-e".to_vec() },
                    PeerBookChange::Anchors { peers: vec![b"peer-a".to_vec(), b"peer-b".to_vec()] },
                    put(b"peer-x", &vec![0; MAX_PEER_RECORD_BYTES + 1]),
                ])
                .unwrap();
            assert_eq!(stored, 1, "the oversized record is not written");
            assert_eq!(s.save_peer_book(&[put(b"peer-b", b"record-b")]).unwrap(), 2);
        }
        let s = Store::open(dir.path(), &g).unwrap();
        let mut book = s.load_peer_book().unwrap();
        book.sort();
        assert_eq!(book, vec![(b"peer-a".to_vec(), b"record-a".to_vec()), (b"peer-b".to_vec(), b"record-b".to_vec())]);
        assert_eq!(s.load_anchors().unwrap(), vec![b"peer-a".to_vec(), b"peer-b".to_vec()]);
        assert_eq!(s.load_bans().unwrap(), vec![(b"peer-c".to_vec(), 1234)]);
    }

    #[test]
    fn the_peer_book_holds_at_most_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &Genesis::devnet()).unwrap();
        let changes: Vec<PeerBookChange> = (0..MAX_STORED_PEERS as u32 + 10)
            .map(|i| PeerBookChange::Put { peer: i.to_le_bytes().to_vec(), record: vec![1] })
            .collect();
        assert_eq!(s.save_peer_book(&changes).unwrap(), MAX_STORED_PEERS as u64);
        // A stored peer's record is still replaced when full.
        let again = [PeerBookChange::Put { peer: 0u32.to_le_bytes().to_vec(), record: vec![2] }];
        assert_eq!(s.save_peer_book(&again).unwrap(), MAX_STORED_PEERS as u64);
    }

    #[test]
    fn legacy_peers_are_read_then_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &Genesis::devnet()).unwrap();
        {
            let tx = s.write().unwrap();
            {
                let mut t = tx.txn.open_table(PEERS).unwrap();
                let mut v = 77u64.to_le_bytes().to_vec();
                v.extend_from_slice(&1u16.to_le_bytes());
                v.extend_from_slice(&5u16.to_le_bytes());
                v.extend_from_slice(b"addr1");
                t.insert(b"old-peer".as_slice(), v.as_slice()).unwrap();
            }
            tx.commit().unwrap();
        }
        assert_eq!(s.load_legacy_peers().unwrap(), vec![(b"old-peer".to_vec(), vec![b"addr1".to_vec()], 77)]);
        s.save_peer_book(&[PeerBookChange::DropLegacyPeers]).unwrap();
        assert!(s.load_legacy_peers().unwrap().is_empty());
    }

    #[test]
    fn another_genesis_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let g = Genesis::devnet();
        drop(Store::open(dir.path(), &g).unwrap());
        let mut other = g.clone();
        other.chain_id = 5;
        assert!(matches!(Store::open(dir.path(), &other), Err(StoreError::GenesisMismatch { .. })));
    }
}
