//! Stateful target: interprets the input as a sequence of peer messages and feeds them to an
//! in-memory node core `A` (`Node::open_core` on `testkit::genesis_with_accounts(2, 1e9)`,
//! difficulty 1, so any header meets its proof of work), next to a second core `B` that plays an
//! honest peer mining its own branch, so that forks, reorganisations and the reorg limit are
//! reachable.
//!
//! Each message is `selector u8 ‖ length u16 LE ‖ payload` (a short input is padded with zeros);
//! `selector % 10` picks:
//! 0. gossip block: `Block::decode(payload)`, then `A.import_block(.., Network)`;
//! 1. gossip transaction batch: `decode_tx_batch(payload)`, then `A.submit_transactions(.., Network)`;
//! 2. sync request: `Request::decode(payload)`, served from A's store the way the swarm task does;
//! 3. sync response: `Response::decode(payload)`; the blocks of a `Blocks` response are imported
//!    into A in order until the first refusal;
//! 4. A mines a valid block from its pool (`miner::build_template` + `solve`), one payload-chosen
//!    byte of its encoding is XORed with a payload-chosen mask (0: unchanged), then decode + import
//!    into A: this reaches the deep import paths (execution, state root, invalid marking);
//! 5. B mines 1-4 valid blocks on its own tip;
//! 6. A syncs from B: B's canonical blocks that A lacks (at most 64, from the fork point) travel as
//!    an encoded `Response::Blocks`, optionally with one byte mutated, and are imported into A;
//! 7. B syncs from A (unmutated);
//! 8. signed transfers from the funded test keys with payload-chosen nonce offset, amount, fee,
//!    recipient and chain id, as a gossip batch (optionally mutated) to A, and optionally to B;
//! 9. gossip of B's canonical block at a payload-chosen height to A (orphans, out-of-order).
//!
//! Asserted after every message, for both cores: no panic; the tip's cumulative work never
//! decreases and its height never drops by more than the reorg limit; the tip block is readable
//! from `chain.read()` with the cached header, and is canonical at its height. Also: a served sync
//! response re-decodes to itself and its blocks are the ones asked for; a block A mines on its own
//! tip, unmutated, imports as a plain extension (same for B); a block that is valid on one core is
//! never refused by the other except for the reorg limit or an unknown parent. After the
//! sequence: `chain::check::check` (the replay `vision-node db check` runs) passes on both stores
//! and reports their tips.
//!
//! Both cores are opened afresh for every input (a few ms for the pair with ASan), so that every
//! input is a self-contained, reproducible sequence and coverage feedback is stable; measured with
//! ASan this also runs faster than sharing them (the chains stay short). `VISION_FUZZ_SHARED=1`
//! instead builds them once per process and keeps them across inputs (state only grows; they are
//! rebuilt when either chain reaches `RESET_HEIGHT` blocks, and the full check then runs on a
//! doubling schedule of inputs so its cost stays linear); a crash found that way may need the
//! inputs before it to reproduce.
//!
//! `VISION_FUZZ_TRACE=1` prints every message and what became of each block and transaction.
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use vision_node::chain::check::check;
use vision_node::chain::consensus::BlockError;
use vision_node::chain::import::Tip;
use vision_node::chain::types::{Address, Block, Transaction, TxKind};
use vision_node::chain::{ImportError, ImportOutcome};
use vision_node::mempool::Limits;
use vision_node::miner::{build_template, solve};
use vision_node::node::{BlockSource, Core, Node, NodeConfig, TxSource};
use vision_node::p2p::gossip::{decode_tx_batch, encode_tx_batch};
use vision_node::p2p::service::serve_blocks;
use vision_node::p2p::sync::{MAX_BLOCKS_PER_REQUEST, MAX_RESPONSE_BYTES, Request, Response, Status};
use vision_node::testkit::{genesis_with_accounts, test_key};
use vision_node::wallet::Keypair;

/// Deepest reorg followed (small, so that the limit is reachable by short inputs).
const MAX_REORG_DEPTH: u64 = 16;
/// With shared cores: either chain this high, both are rebuilt.
const RESET_HEIGHT: u64 = 1_000;
/// Most messages interpreted from one input.
const MAX_MESSAGES: usize = 256;

struct Net {
    a: Core,
    b: Core,
    miner_a: Address,
    miner_b: Address,
    /// Funded keys (0, 1) and two unfunded recipients (2, 3).
    keys: Vec<Keypair>,
    /// Inputs run on these cores, and the count at which the next full check runs (after inputs
    /// 1, 2, 4, 8, ...; with fresh cores, after every input).
    runs: u64,
    next_check: u64,
}

impl Net {
    fn open() -> Net {
        let (genesis, _) = genesis_with_accounts(2, 1_000_000_000);
        let config = NodeConfig {
            genesis,
            max_reorg_depth: MAX_REORG_DEPTH,
            // A small pool, so that eviction and replacement are reachable.
            mempool: Limits { max_txs: 64, ..Limits::default() },
            ..NodeConfig::devnet()
        };
        let a = Node::open_core(&config).expect("open core A");
        let b = Node::open_core(&config).expect("open core B");
        let keys: Vec<Keypair> = (0..4).map(test_key).collect();
        Net { a, b, miner_a: Address([0xaa; 32]), miner_b: Address([0xbb; 32]), keys, runs: 0, next_check: 1 }
    }
}

/// Reads parameters from a payload; missing bytes read as zero.
struct Params<'a>(&'a [u8]);

impl Params<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

/// XORs one byte of `bytes` (position and mask from `p`; mask 0 leaves it unchanged). Returns
/// whether anything changed.
fn mutate(bytes: &mut [u8], p: &mut Params<'_>) -> bool {
    let pos = p.u32() as usize;
    let mask = p.u8();
    if mask == 0 || bytes.is_empty() {
        return false;
    }
    let n = bytes.len();
    bytes[pos % n] ^= mask;
    true
}

fn is_reorg_limit_or_orphan(e: &ImportError) -> bool {
    matches!(e, ImportError::Block(BlockError::ReorgTooDeep { .. } | BlockError::UnknownParent(_)))
}

/// `VISION_FUZZ_TRACE=1`: print every message and what became of it (to read a crash input).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("VISION_FUZZ_TRACE").is_some_and(|v| v != "0"))
}

/// `core.import_block`, traced.
fn import(core: &Core, who: &str, block: &Block, source: BlockSource) -> Result<ImportOutcome, ImportError> {
    let result = core.import_block(block, source);
    if trace() {
        let h = &block.header;
        let outcome = match &result {
            Ok(ImportOutcome::NewTip { reverted, applied }) => {
                format!("new tip (reverted {}, applied {})", reverted.len(), applied.len())
            }
            Ok(o) => format!("{o:?}"),
            Err(e) => format!("refused: {e}"),
        };
        eprintln!(
            "    {who} import height {} {} ({} txs): {outcome}",
            h.height,
            block.hash().short(),
            block.transactions.len()
        );
    }
    result
}

/// `core.submit_transactions`, traced.
fn submit(core: &Core, who: &str, txs: &[Transaction], source: TxSource) {
    let results = core.submit_transactions(txs, source);
    assert_eq!(results.len(), txs.len());
    if trace() {
        for (tx, r) in txs.iter().zip(&results) {
            let r = match r {
                Ok(_) => "pooled".to_string(),
                Err(e) => format!("refused: {e}"),
            };
            eprintln!("    {who} submit nonce {} fee {}: {r}", tx.nonce, tx.fee);
        }
    }
}

/// Imports blocks in order until the first refusal (what sync does with a response).
fn import_all(core: &Core, who: &str, blocks: &[Block]) -> Option<ImportError> {
    for b in blocks {
        if let Err(e) = import(core, who, b, BlockSource::Network) {
            return Some(e);
        }
    }
    None
}

/// Mines one block on `core`'s tip from its pool, timestamped one target block time after the
/// parent (so the difficulty stays 1).
fn mine(core: &Core, miner: Address, max_txs: usize) -> Block {
    let t = build_template(core.chain(), core.mempool(), miner, max_txs).expect("template");
    let parent_ts = core.chain().tip().header.timestamp_ms;
    solve(&t, parent_ts + core.chain().params().target_block_time_ms)
}

fn assert_extends(core: &Core, block: &Block, who: &str) {
    let parent = core.chain().tip();
    match import(core, who, block, BlockSource::Miner) {
        Ok(ImportOutcome::NewTip { reverted, applied }) => {
            assert!(reverted.is_empty(), "{who}: own block reverted {} blocks", reverted.len());
            assert!(applied.len() == 1 && applied[0].hash == block.hash(), "{who}: applied {applied:?}");
        }
        other => panic!("{who}: own block on tip {} refused or not a new tip: {other:?}", parent.hash),
    }
}

/// Canonical blocks of `from` that `to` does not have, oldest first, at most `max`.
fn missing(from: &Core, to: &Core, max: usize) -> Vec<Block> {
    let rf = from.chain().read().expect("read");
    let rt = to.chain().read().expect("read");
    let mut height = from.chain().tip().header.height;
    // Walk down to the highest block `to` knows.
    while height > 0 {
        let h = rf.canonical_hash(height).expect("canonical").expect("canonical below tip");
        if rt.block_meta(&h).expect("meta").is_some() {
            break;
        }
        height -= 1;
    }
    let mut out = Vec::new();
    for h in height + 1..=from.chain().tip().header.height {
        if out.len() >= max {
            break;
        }
        let hash = rf.canonical_hash(h).expect("canonical").expect("canonical below tip");
        out.push(rf.block(&hash).expect("block").expect("canonical block stored"));
    }
    out
}

/// Answers a sync request from `core` with the node's own `serve_blocks` and checks what it serves.
fn serve(core: &Core, req: Request) -> Response {
    let tip = core.chain().tip();
    let what = match req {
        Request::Status(_) => {
            return Response::Status(Status {
                genesis: core.chain().params().genesis_hash,
                tip: tip.hash,
                height: tip.header.height,
                total_work: tip.total_work,
            });
        }
        Request::BlocksByRange { start, count } => {
            assert!((1..=MAX_BLOCKS_PER_REQUEST).contains(&count));
            Err((start, count))
        }
        Request::BlocksByHash(ref hashes) => Ok(hashes.clone()),
        Request::HeadersByRange { start, count } => {
            let headers = vision_node::p2p::service::serve_headers(core, start, count).expect("serve headers");
            assert!(headers.len() <= count as usize, "more headers than asked");
            for (i, h) in headers.iter().enumerate() {
                assert_eq!(h.height, start + i as u64, "canonical header at the wrong height");
            }
            return Response::Headers(headers);
        }
    };
    let blocks = serve_blocks(core, what.clone()).expect("serve from the store");
    let size: usize = blocks.iter().map(|b| b.encoded_len() + 4).sum();
    assert!(size <= MAX_RESPONSE_BYTES - 5, "response over the byte budget");
    match what {
        Err((start, _)) => {
            let r = core.chain().read().expect("read");
            for (i, b) in blocks.iter().enumerate() {
                assert_eq!(b.header.height, start + i as u64, "canonical block at the wrong height");
                assert_eq!(r.canonical_hash(b.header.height).expect("canonical"), Some(b.hash()));
            }
            for w in blocks.windows(2) {
                assert_eq!(w[1].header.parent, w[0].hash(), "canonical range does not link");
            }
        }
        Ok(hashes) => {
            for b in &blocks {
                assert!(hashes.contains(&b.hash()), "served a block that was not asked for");
            }
        }
    }
    Response::Blocks(blocks)
}

fn check_tip(core: &Core, before: &Tip, who: &str) {
    let tip = core.chain().tip();
    assert!(
        tip.total_work >= before.total_work,
        "{who}: tip work fell from {} to {}",
        before.total_work,
        tip.total_work
    );
    assert!(
        tip.header.height + MAX_REORG_DEPTH >= before.header.height,
        "{who}: tip height fell from {} to {}, more than the reorg limit",
        before.header.height,
        tip.header.height
    );
    let r = core.chain().read().expect("read");
    assert_eq!(r.tip_hash().expect("tip hash"), tip.hash, "{who}: stored tip differs from the cached tip");
    let block = r.block(&tip.hash).expect("block").expect("tip block stored");
    assert_eq!(block.header, tip.header, "{who}: stored tip header differs");
    assert_eq!(r.canonical_hash(tip.header.height).expect("canonical"), Some(tip.hash), "{who}: tip not canonical");
}

fn full_check(core: &Core, who: &str) {
    let chain = core.chain();
    let report = check(chain.store(), chain.genesis(), chain.verifier())
        .unwrap_or_else(|e| panic!("{who}: db check failed: {e}"));
    let tip = chain.tip();
    assert_eq!((report.height, report.tip), (tip.header.height, tip.hash), "{who}: check saw another tip");
}

fn transfers(net: &Net, p: &mut Params<'_>) -> Vec<Transaction> {
    let key = &net.keys[usize::from(p.u8() % 2)];
    let count = 1 + usize::from(p.u8() % 4);
    let offset = p.u8() as i8;
    let amount = u128::from(p.u32() >> 8);
    let fee = u128::from(p.u8());
    let to = net.keys[usize::from(p.u8() % 4)].address();
    let flags = p.u8();
    let chain_id = if flags & 1 != 0 { p.u32() } else { net.a.chain().params().chain_id };
    // Signed for our network, or (flag bit 1) for another genesis with the same chain id.
    let genesis_hash =
        if flags & 2 != 0 { vision_node::chain::types::Hash([p.u8(); 32]) } else { net.a.chain().params().genesis_hash };
    let from = key.address();
    let state_nonce = net.a.chain().read().and_then(|r| r.account(&from)).expect("account").nonce;
    let base = net.a.mempool().pending_nonce(&from, state_nonce).saturating_add_signed(i64::from(offset));
    (0..count as u64)
        .map(|i| {
            let mut tx = Transaction {
                chain_id,
                from,
                nonce: base.saturating_add(i),
                fee,
                kind: TxKind::Transfer { to, amount },
                signature: [0; 64],
            };
            key.sign_tx(&mut tx, &genesis_hash);
            tx
        })
        .collect()
}

fn message(net: &Net, selector: u8, payload: &[u8]) {
    let a = &net.a;
    let b = &net.b;
    let mut p = Params(payload);
    match selector % 10 {
        0 => {
            if let Ok(block) = Block::decode(payload) {
                let _ = import(a, "A", &block, BlockSource::Network);
            }
        }
        1 => {
            if let Ok(txs) = decode_tx_batch(payload) {
                submit(a, "A", &txs, TxSource::Network);
            }
        }
        2 => {
            if let Ok(req) = Request::decode(payload) {
                let asked = req.clone();
                let res = serve(a, req);
                if let (Request::BlocksByHash(h), Response::Blocks(bs)) = (&asked, &res) {
                    assert!(bs.len() <= h.len());
                }
                let bytes = res.encode();
                assert_eq!(Response::decode(&bytes).as_ref(), Ok(&res), "served response does not re-decode");
            }
        }
        3 => {
            if let Ok(Response::Blocks(blocks)) = Response::decode(payload) {
                import_all(a, "A", &blocks);
            }
        }
        4 => {
            let max_txs = usize::from(p.u8());
            let block = mine(a, net.miner_a, max_txs);
            let mut bytes = block.encode();
            if !mutate(&mut bytes, &mut p) {
                assert_eq!(Block::decode(&bytes).as_ref(), Ok(&block));
                assert_extends(a, &block, "A");
            } else if let Ok(block) = Block::decode(&bytes) {
                let _ = import(a, "A", &block, BlockSource::Network);
            }
        }
        5 => {
            let n = 1 + p.u8() % 4;
            let max_txs = usize::from(p.u8());
            for _ in 0..n {
                let block = mine(b, net.miner_b, max_txs);
                assert_extends(b, &block, "B");
            }
        }
        6 => {
            let blocks = missing(b, a, MAX_BLOCKS_PER_REQUEST as usize);
            let mut bytes = Response::Blocks(blocks.clone()).encode();
            if !mutate(&mut bytes, &mut p) {
                if let Some(e) = import_all(a, "A", &blocks) {
                    assert!(is_reorg_limit_or_orphan(&e), "A refused a block B accepted: {e}");
                }
            } else if let Ok(Response::Blocks(blocks)) = Response::decode(&bytes) {
                import_all(a, "A", &blocks);
            }
        }
        7 => {
            let blocks = missing(a, b, MAX_BLOCKS_PER_REQUEST as usize);
            if let Some(e) = import_all(b, "B", &blocks) {
                assert!(is_reorg_limit_or_orphan(&e), "B refused a block A accepted: {e}");
            }
        }
        8 => {
            let txs = transfers(net, &mut p);
            let flags = p.u8();
            let mut bytes = encode_tx_batch(&txs);
            let source = if flags & 1 != 0 { TxSource::Api } else { TxSource::Network };
            if !mutate(&mut bytes, &mut p) {
                assert_eq!(decode_tx_batch(&bytes).as_ref(), Ok(&txs));
                submit(a, "A", &txs, source);
            } else if let Ok(txs) = decode_tx_batch(&bytes) {
                submit(a, "A", &txs, source);
            }
            if flags & 2 != 0 {
                submit(b, "B", &txs, TxSource::Network);
            }
        }
        9 => {
            let r = b.chain().read().expect("read");
            let height = u64::from(p.u32()) % (b.chain().tip().header.height + 1);
            let hash = r.canonical_hash(height).expect("canonical").expect("canonical below tip");
            let block = r.block(&hash).expect("block").expect("canonical block stored");
            drop(r);
            if let Err(e) = import(a, "A", &block, BlockSource::Network) {
                assert!(is_reorg_limit_or_orphan(&e), "A refused a block B accepted: {e}");
            }
        }
        _ => unreachable!(),
    }
}

fn run(net: &mut Net, data: &[u8]) {
    let mut rest = data;
    let mut messages = 0;
    while !rest.is_empty() && messages < MAX_MESSAGES {
        let mut header = Params(rest);
        let selector = header.u8();
        let len = usize::from(header.u16());
        let body = &rest[rest.len().min(3)..];
        let (payload, tail) = body.split_at(len.min(body.len()));
        rest = tail;
        messages += 1;

        let (tip_a, tip_b) = (net.a.chain().tip(), net.b.chain().tip());
        if trace() {
            const NAMES: [&str; 10] = [
                "gossip block",
                "gossip tx batch",
                "sync request",
                "sync response",
                "A mines",
                "B mines",
                "A syncs from B",
                "B syncs from A",
                "signed transfers",
                "gossip B's block",
            ];
            eprintln!(
                "message {messages}: selector {selector} ({}), {} payload bytes; tips A {} B {}",
                NAMES[usize::from(selector % 10)],
                payload.len(),
                tip_a.header.height,
                tip_b.header.height
            );
        }
        message(net, selector, payload);
        check_tip(&net.a, &tip_a, "A");
        check_tip(&net.b, &tip_b, "B");
    }
    net.runs += 1;
    if net.runs >= net.next_check {
        full_check(&net.a, "A");
        full_check(&net.b, "B");
        net.next_check = net.runs * 2;
    }
}

static NET: OnceLock<Mutex<Net>> = OnceLock::new();

fn shared() -> bool {
    static SHARED: OnceLock<bool> = OnceLock::new();
    *SHARED.get_or_init(|| std::env::var_os("VISION_FUZZ_SHARED").is_some_and(|v| v != "0"))
}

fuzz_target!(|data: &[u8]| {
    if !shared() {
        run(&mut Net::open(), data);
        return;
    }
    let mut guard = NET.get_or_init(|| Mutex::new(Net::open())).lock().unwrap_or_else(|e| e.into_inner());
    let net = &mut *guard;
    if net.a.chain().tip().header.height >= RESET_HEIGHT || net.b.chain().tip().header.height >= RESET_HEIGHT {
        *net = Net::open();
    }
    run(net, data);
});
