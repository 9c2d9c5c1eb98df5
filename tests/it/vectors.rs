//! Golden vectors for the canonical encoding (`protocols/encoding.md`).
//!
//! Every `*.txt` file in `protocols/vectors/` is one vector: `key: value` lines, `#` comments, and
//! long hex values continued on following lines that start with whitespace. The values were
//! generated once and checked in; this module only reads them, so it fails whenever an encoding, a
//! hash, an address string or a decoder's error changes. Each vector is checked in both directions:
//! the value built from the listed fields must encode to the listed bytes, and the bytes must decode
//! to that value. Every key in a file must be checked by the code below (an unread key fails), and
//! the set of files must match the list in `protocols/encoding.md` (a deleted or unlisted file fails).
//!
//! The consensus vectors (`retarget-*.txt`, `state-transition-*.txt`, listed in
//! `protocols/consensus.md`) are checked the same way: each retarget vector against the library and
//! against a second, independent implementation of the spec's formula written here; each state
//! transition by executing its block over its pre-state and by importing it into a devnet node.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use vision_node::chain::ImportOutcome;
use vision_node::chain::consensus::{
    BlockError, ChainParams, HeaderContext, TxError, check_header_context, meets_difficulty, next_difficulty,
    pow_target,
};
use vision_node::chain::encoding::DecodeError;
use vision_node::chain::genesis::{Genesis, dev_keypair};
use vision_node::chain::types::{
    Address, AddressError, Block, BlockHeader, ENCODING_VERSION, HEADER_LEN, HEADER_NONCE_OFFSET, Hash,
    MAX_BLOCK_BYTES, TRANSFER_TX_LEN, Transaction, TxKind, merkle_root, tx_root,
};
use vision_node::node::{BlockSource, Node, NodeConfig};
use vision_node::state::lthash::{LTHASH_BYTES, LtHash};
use vision_node::state::{Account, ExecError, ImportError, execute};
use vision_node::verify::verify_tx;

use crate::vector_file::{Vector, assert_same_files, check_all, decode_error_fields, vectors_dir};
use vision_node::wallet::Keypair;

fn spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("protocols/encoding.md")
}

fn consensus_spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("protocols/consensus.md")
}

/// Vectors of `protocols/consensus.md` rather than `encoding.md`.
fn is_consensus_vector(name: &str) -> bool {
    name.starts_with("retarget-") || name.starts_with("state-transition-")
}

fn blake3(parts: &[&[u8]]) -> Hash {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p);
    }
    Hash(*h.finalize().as_bytes())
}

/// The signature check of `tx` on the network of `genesis_hash`.
fn signature_result(tx: &Transaction, genesis_hash: &Hash) -> String {
    match verify_tx(tx, genesis_hash) {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{e:?}"),
    }
}

fn check_tx(v: &Vector) {
    let name = &v.name;
    let bytes = v.hex("hex");
    assert_eq!(v.num::<usize>("encoded_len"), bytes.len(), "{name}: encoded_len");
    assert_eq!(v.str("kind"), "transfer", "{name}: only transfers exist in v1");
    let built = Transaction {
        chain_id: v.num("chain_id"),
        from: v.address("from"),
        nonce: v.num("nonce"),
        fee: v.num("fee"),
        kind: TxKind::Transfer { to: v.address("to"), amount: v.num("amount") },
        signature: v.hex("signature").try_into().expect("signature is 64 bytes"),
    };
    assert_eq!(v.hex("from_hex"), built.from.as_bytes(), "{name}: from_hex");
    assert_eq!(v.hex("to_hex"), built.transfer().0.as_bytes(), "{name}: to_hex");

    // Both directions, byte for byte.
    assert_eq!(hex::encode(built.encode()), hex::encode(&bytes), "{name}: encoding of the listed fields");
    let decoded = Transaction::decode(&bytes).unwrap_or_else(|e| panic!("{name}: decode: {e}"));
    assert_eq!(decoded, built, "{name}: decoded fields");
    assert_eq!(decoded.encode(), bytes, "{name}: re-encoding");
    assert_eq!(bytes.len(), TRANSFER_TX_LEN, "{name}: transfer length");
    assert_eq!(decoded.encoded_len(), bytes.len(), "{name}: encoded_len()");

    assert_eq!(v.num::<u8>("version"), bytes[0], "{name}: version byte");
    assert_eq!(bytes[0], ENCODING_VERSION, "{name}: version byte");
    assert_eq!(v.num::<u8>("kind_tag"), bytes[1], "{name}: kind tag byte");
    assert_eq!(decoded.kind.tag(), bytes[1], "{name}: kind tag");

    // The signature covers the unsigned prefix followed by the genesis hash of the network it is
    // for; the id hashes the unsigned prefix alone, the witness hash all bytes.
    let genesis_hash = v.hash("genesis_hash");
    assert_eq!(genesis_hash, Genesis::devnet().hash(), "{name}: the transaction vectors are for the devnet");
    let signing = v.hex("signing_bytes");
    let unsigned = &signing[..signing.len() - 32];
    assert_eq!(unsigned, &bytes[..bytes.len() - 64], "{name}: signing bytes start with the unsigned prefix");
    assert_eq!(signing[signing.len() - 32..], genesis_hash.0, "{name}: signing bytes end with the genesis hash");
    assert_eq!(decoded.signing_bytes(&genesis_hash), signing, "{name}: signing_bytes()");
    assert_eq!(bytes[bytes.len() - 64..], decoded.signature, "{name}: signature is the last 64 bytes");
    let id = v.hash("id");
    assert_eq!(decoded.id(), id, "{name}: id");
    assert_eq!(blake3(&[unsigned]), id, "{name}: id = BLAKE3(unsigned encoding)");
    let witness = v.hash("witness_hash");
    assert_eq!(decoded.witness_hash(), witness, "{name}: witness hash");
    assert_eq!(blake3(&[&bytes]), witness, "{name}: witness hash = BLAKE3(full encoding)");

    assert_eq!(signature_result(&decoded, &genesis_hash), v.str("signature_check"), "{name}: signature check");
    if v.str("signature_check") == "ok" {
        // Bound to its genesis: the same bytes fail on another network with the same chain id.
        let mut other = Genesis::devnet();
        other.timestamp_ms += 1;
        assert_eq!(signature_result(&decoded, &other.hash()), "Mismatch", "{name}: replay on another genesis");
    }
    if v.has("secret_key") {
        let seed: [u8; 32] = v.hex("secret_key").try_into().expect("secret key is 32 bytes");
        let key = Keypair::from_seed(&seed);
        assert_eq!(key.address(), decoded.from, "{name}: the secret key's address is `from`");
        let mut resigned = decoded;
        resigned.signature = [0; 64];
        key.sign_tx(&mut resigned, &genesis_hash);
        assert_eq!(resigned.signature, decoded.signature, "{name}: ed25519 signing is deterministic");
    }
}

/// Checks the header fields listed under `prefix` against `header`, and returns the listed encoding.
fn check_header_fields(v: &Vector, prefix: &str, header: &BlockHeader) -> Vec<u8> {
    let name = &v.name;
    let k = |s: &str| format!("{prefix}{s}");
    let built = BlockHeader {
        version: v.num(&k("version")),
        height: v.num(&k("height")),
        parent: v.hash(&k("parent")),
        timestamp_ms: v.num(&k("timestamp_ms")),
        difficulty: v.num(&k("difficulty")),
        miner: v.address(&k("miner")),
        tx_root: v.hash(&k("tx_root")),
        state_root: v.hash(&k("state_root")),
        nonce: v.num(&k("nonce")),
    };
    assert_eq!(&built, header, "{name}: {prefix}fields");
    let bytes = v.hex(&k("hex"));
    assert_eq!(bytes.len(), HEADER_LEN, "{name}: header length");
    assert_eq!(hex::encode(built.encode()), hex::encode(&bytes), "{name}: {prefix}encoding of the listed fields");
    assert_eq!(BlockHeader::decode(&bytes), Ok(built), "{name}: {prefix}decode");
    assert_eq!(bytes[HEADER_NONCE_OFFSET..], built.nonce.to_le_bytes(), "{name}: nonce is the last 8 bytes");
    let hash = built.hash();
    assert_eq!(blake3(&[&bytes]), hash, "{name}: block hash = BLAKE3(header)");

    let target = pow_target(built.difficulty);
    assert_eq!(v.str(&k("pow_target")), format!("{target:032x}"), "{name}: {prefix}pow_target");
    assert_eq!(target, u128::MAX / u128::from(built.difficulty), "{name}: target = floor((2^128-1)/difficulty)");
    let meets = v.bool(&k("meets_difficulty"));
    assert_eq!(meets_difficulty(&hash, built.difficulty), meets, "{name}: {prefix}meets_difficulty");
    let first16 = u128::from_be_bytes(hash.0[..16].try_into().unwrap());
    assert_eq!(first16 <= target, meets, "{name}: PoW rule on the first 16 bytes, big-endian");
    bytes
}

fn check_header(v: &Vector) {
    let bytes = v.hex("hex");
    let header = BlockHeader::decode(&bytes).unwrap_or_else(|e| panic!("{}: decode: {e}", v.name));
    assert_eq!(check_header_fields(v, "", &header), bytes);
    assert_eq!(header.hash(), v.hash("hash"), "{}: hash", v.name);
}

fn check_block(v: &Vector) -> Block {
    let name = &v.name;
    let bytes = v.hex("hex");
    let block = Block::decode(&bytes).unwrap_or_else(|e| panic!("{name}: decode: {e}"));
    assert_eq!(block.encode(), bytes, "{name}: re-encoding");
    assert_eq!(v.num::<usize>("encoded_len"), bytes.len(), "{name}: encoded_len");
    assert_eq!(block.encoded_len(), bytes.len(), "{name}: encoded_len()");
    assert_eq!(block.hash(), v.hash("hash"), "{name}: block hash");

    let header_bytes = check_header_fields(v, "header.", &block.header);
    assert_eq!(bytes[..HEADER_LEN], header_bytes, "{name}: the block starts with its header");

    let count: usize = v.num("tx_count");
    assert_eq!(block.transactions.len(), count, "{name}: tx_count");
    assert_eq!(bytes[HEADER_LEN..HEADER_LEN + 4], (count as u32).to_le_bytes(), "{name}: u32 LE count");
    // Walk the body by hand: u32 LE length, then exactly that transaction's bytes.
    let mut at = HEADER_LEN + 4;
    let mut leaves = Vec::new();
    for (i, tx) in block.transactions.iter().enumerate() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        assert_eq!(len, tx.encoded_len(), "{name}: tx {i} length prefix");
        assert_eq!(bytes[at + 4..at + 4 + len], tx.encode(), "{name}: tx {i} bytes");
        at += 4 + len;
        assert_eq!(tx.id(), v.hash(&format!("tx.{i}.id")), "{name}: tx {i} id");
        assert_eq!(tx.witness_hash(), v.hash(&format!("tx.{i}.witness_hash")), "{name}: tx {i} witness hash");
        assert_eq!(
            signature_result(tx, &Genesis::devnet().hash()),
            v.str(&format!("tx.{i}.signature_check")),
            "{name}: tx {i} signature"
        );
        leaves.push(tx.witness_hash());
    }
    assert_eq!(at, bytes.len(), "{name}: nothing after the last transaction");
    let root = v.hash("tx_root");
    assert_eq!(tx_root(&block.transactions), root, "{name}: tx_root");
    assert_eq!(merkle_root(&leaves), root, "{name}: tx_root = Merkle root of witness hashes");
    assert_eq!(block.header.tx_root, root, "{name}: header commits to the body");
    block
}

fn check_merkle(v: &Vector) {
    let leaves: Vec<Hash> = v.indexed("leaf.", "").iter().map(|k| v.hash(k)).collect();
    assert_eq!(merkle_root(&leaves), v.hash("root"), "{}: root", v.name);
}

fn check_genesis(v: &Vector) {
    let name = &v.name;
    assert_eq!(v.str("network"), "devnet", "{name}: only the devnet genesis is embedded");
    let g = Genesis::devnet();
    assert_eq!(v.num::<u32>("chain_id"), g.chain_id, "{name}: chain_id");
    assert_eq!(v.num::<u64>("timestamp_ms"), g.timestamp_ms, "{name}: timestamp_ms");
    assert_eq!(v.num::<u64>("initial_difficulty"), g.initial_difficulty, "{name}: initial_difficulty");
    assert_eq!(v.num::<u64>("target_block_time_ms"), g.target_block_time_ms, "{name}: target_block_time_ms");
    assert_eq!(v.num::<u128>("block_reward"), g.block_reward, "{name}: block_reward");
    assert_eq!(v.num::<u128>("min_fee"), g.min_fee, "{name}: min_fee");

    let mut listed = Vec::new();
    for k in v.indexed("allocation.", "") {
        let (addr, balance) = v.str(&k).split_once(' ').expect("allocation is `address balance`");
        let a: Address = addr.parse().unwrap();
        assert_eq!(a.to_string(), addr, "{name}: {k} prints back");
        listed.push((a, balance.parse::<u128>().unwrap()));
    }
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "{name}: allocations are listed in address order");
    let mut actual: Vec<(Address, u128)> = g.allocations.iter().map(|a| (a.address, a.balance)).collect();
    actual.sort();
    assert_eq!(listed, actual, "{name}: allocations");
    let dev: BTreeSet<Address> = (0..4).map(|i| dev_keypair(i).address()).collect();
    assert_eq!(listed.iter().map(|a| a.0).collect::<BTreeSet<_>>(), dev, "{name}: the four dev accounts");

    let params = v.hex("params_hex");
    assert_eq!(hex::encode(g.encode_params()), hex::encode(&params), "{name}: params encoding");
    // The parameter encoding, rebuilt from the listed values by the rules of the spec.
    let mut expect = vec![ENCODING_VERSION];
    expect.extend(v.num::<u32>("chain_id").to_le_bytes());
    expect.extend(v.num::<u64>("timestamp_ms").to_le_bytes());
    expect.extend(v.num::<u64>("initial_difficulty").to_le_bytes());
    expect.extend(v.num::<u64>("target_block_time_ms").to_le_bytes());
    expect.extend(v.num::<u128>("block_reward").to_le_bytes());
    expect.extend(v.num::<u128>("min_fee").to_le_bytes());
    expect.extend((listed.len() as u32).to_le_bytes());
    for (a, b) in &listed {
        expect.extend(a.as_bytes());
        expect.extend(b.to_le_bytes());
    }
    assert_eq!(hex::encode(&expect), hex::encode(&params), "{name}: params layout");

    let block = check_block(v);
    assert_eq!(block, g.block(), "{name}: Genesis::devnet().block()");
    assert_eq!(g.hash(), v.hash("hash"), "{name}: Genesis::devnet().hash() is the network id");
    let h = &block.header;
    assert_eq!(h.parent, blake3(&[b"vision/genesis/v1", &params]), "{name}: parent = BLAKE3(domain || params)");
    assert_eq!((h.height, h.nonce), (0, 0), "{name}: height and nonce");
    assert_eq!(h.miner, Address([0; 32]), "{name}: miner is all zeros");
    assert_eq!(h.timestamp_ms, g.timestamp_ms, "{name}: timestamp");
    assert_eq!(h.difficulty, g.initial_difficulty, "{name}: difficulty");
    let mut lt = LtHash::default();
    for (a, b) in &listed {
        lt.insert(a, *b, 0);
    }
    assert_eq!(h.state_root, lt.root(), "{name}: state root of the allocations");
}

fn check_dev_account(v: &Vector) {
    let name = &v.name;
    let key = dev_keypair(v.num("index"));
    let secret = v.hex("secret_key");
    assert_eq!(key.secret_bytes().as_slice(), secret, "{name}: secret key");
    let mut h = blake3::Hasher::new();
    h.update(b"vision devnet dev account");
    h.update(&[v.num::<u8>("index")]);
    assert_eq!(h.finalize().as_bytes().as_slice(), secret, "{name}: secret = BLAKE3(domain || index)");
    let public = v.hex("public_key");
    assert_eq!(key.address().as_bytes().as_slice(), public, "{name}: public key");
    assert_eq!(Keypair::from_seed(&key.secret_bytes()).address(), key.address(), "{name}: from_seed");
    assert_eq!(v.address("address"), key.address(), "{name}: address string");
    let upper = v.str("address_uppercase");
    assert_eq!(upper, v.str("address").to_uppercase(), "{name}: address_uppercase");
    assert_eq!(upper.parse::<Address>(), Ok(key.address()), "{name}: an all-upper-case address is accepted");
}

fn check_lthash(v: &Vector) {
    let name = &v.name;
    let mut accounts = Vec::new();
    for k in v.indexed("account.", "") {
        let parts: Vec<&str> = v.str(&k).split(' ').collect();
        let [addr, balance, nonce] = parts[..] else { panic!("{name}: {k} is not `address balance nonce`") };
        let a: Address = addr.parse().unwrap();
        assert_eq!(a.to_string(), addr, "{name}: {k} prints back");
        accounts.push((a, balance.parse::<u128>().unwrap(), nonce.parse::<u64>().unwrap()));
    }
    let mut lt = LtHash::default();
    for (a, b, n) in &accounts {
        lt.insert(a, *b, *n);
    }
    let acc = v.hex("accumulator");
    assert_eq!(acc.len(), LTHASH_BYTES, "{name}: accumulator length");
    assert_eq!(hex::encode(lt.to_bytes()), hex::encode(&acc), "{name}: accumulator");
    let root = v.hash("root");
    assert_eq!(lt.root(), root, "{name}: root");
    assert_eq!(blake3(&[b"vision/state/v1", &acc]), root, "{name}: root = BLAKE3(domain || lanes)");
    assert_eq!(LtHash::from_bytes(&acc).map(|l| l.root()), Some(root), "{name}: from_bytes");

    // Order does not matter, and removing everything returns to the empty accumulator.
    let mut rev = LtHash::default();
    for (a, b, n) in accounts.iter().rev() {
        rev.insert(a, *b, *n);
    }
    assert_eq!(rev, lt, "{name}: insertion order");
    for (a, b, n) in &accounts {
        rev.remove(a, *b, *n);
    }
    assert_eq!(rev, LtHash::default(), "{name}: remove undoes insert");

    // One non-empty account: the accumulator is that account's element, the XOF output itself.
    let live: Vec<_> = accounts.iter().filter(|(_, b, n)| *b != 0 || *n != 0).collect();
    if let [(a, b, n)] = live[..] {
        let mut h = blake3::Hasher::new();
        h.update(b"vision/account/v1");
        h.update(a.as_bytes());
        h.update(&b.to_le_bytes());
        h.update(&n.to_le_bytes());
        let mut element = vec![0u8; LTHASH_BYTES];
        h.finalize_xof().fill(&mut element);
        assert_eq!(hex::encode(element), hex::encode(&acc), "{name}: element = BLAKE3 XOF");
    }
    if live.is_empty() {
        assert!(acc.iter().all(|b| *b == 0), "{name}: no accounts, all-zero lanes");
    }
}

/// The retarget of `protocols/consensus.md` §4, written again from the spec: (first and last height
/// of the window, solve times, weighted sum, difficulty sum, next difficulty).
fn spec_lwma(t: u64, initial: u64, blocks: &[(u64, u64, u64)]) -> Option<(u64, u64, Vec<u64>, u128, u128, u64)> {
    let window: Vec<(u64, u64, u64)> = blocks.iter().copied().filter(|b| b.0 >= 1).collect();
    let window = &window[window.len().saturating_sub(61)..];
    if window.len() < 2 {
        assert_eq!(initial, initial.max(1));
        return None;
    }
    let mut largest = window[0].1 as u128;
    let mut solve_times = Vec::new();
    let (mut weighted, mut sum) = (0u128, 0u128);
    for (j, b) in window[1..].iter().enumerate() {
        let counted = (b.1 as u128).max(largest + 1);
        let st = (counted - largest).min(6 * t as u128);
        largest = counted;
        solve_times.push(st as u64);
        weighted += (j as u128 + 1) * st;
        sum += b.2 as u128;
    }
    let n = solve_times.len() as u128;
    let next = (sum.saturating_mul(t as u128).saturating_mul(n + 1) / (2 * weighted)).clamp(1, u64::MAX as u128);
    Some((window[0].0, window[window.len() - 1].0, solve_times, weighted, sum, next as u64))
}

fn check_retarget(v: &Vector) {
    let name = &v.name;
    let params = ChainParams {
        target_block_time_ms: v.num("target_block_time_ms"),
        initial_difficulty: v.num("initial_difficulty"),
        ..Genesis::devnet().params()
    };
    assert_eq!(params.max_future_drift_ms(), v.num::<u64>("max_future_drift_ms"), "{name}: future limit");
    let blocks: Vec<(u64, u64, u64)> = v
        .indexed("block.", "")
        .iter()
        .map(|k| {
            let parts: Vec<u64> = v.str(k).split(' ').map(|x| x.parse().unwrap()).collect();
            let [h, ts, d] = parts[..] else { panic!("{name}: {k} is not `height timestamp_ms difficulty`") };
            (h, ts, d)
        })
        .collect();
    assert!(!blocks.is_empty(), "{name}: no blocks");
    for w in blocks.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "{name}: heights are consecutive");
    }
    let headers: Vec<BlockHeader> = blocks
        .iter()
        .map(|&(height, timestamp_ms, difficulty)| BlockHeader {
            version: ENCODING_VERSION,
            height,
            parent: Hash::ZERO,
            timestamp_ms,
            difficulty,
            miner: Address::default(),
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            nonce: 0,
        })
        .collect();
    let (parent, earlier) = headers.split_last().unwrap();
    let next: u64 = v.num("next_difficulty");
    assert_eq!(next_difficulty(&params, parent, earlier), next, "{name}: the library's next difficulty");

    // The spec's formula, step by step.
    match spec_lwma(params.target_block_time_ms, params.initial_difficulty, &blocks) {
        None => {
            assert_eq!(v.str("window"), "none", "{name}: no solve time in the window");
            assert_eq!(next, params.initial_difficulty, "{name}: no solve time: the initial difficulty");
        }
        Some((first, last, solve_times, weighted, sum, spec_next)) => {
            assert_eq!(v.str("window"), format!("{first} {last}"), "{name}: window");
            let listed: Vec<u64> = v.str("solve_times").split(',').map(|x| x.trim().parse().unwrap()).collect();
            assert_eq!(listed, solve_times, "{name}: solve times");
            assert_eq!(v.num::<u128>("weighted_solve_time"), weighted, "{name}: weighted solve time");
            assert_eq!(v.num::<u128>("sum_difficulty"), sum, "{name}: sum of difficulties");
            assert_eq!(spec_next, next, "{name}: the spec's formula");
        }
    }

    // The context check: exactly that difficulty, a timestamp above the median time past.
    let ctx = HeaderContext { parent, earlier };
    let mtp: u64 = v.num("median_time_past");
    assert_eq!(ctx.median_time_past(), mtp, "{name}: median time past");
    let child =
        |difficulty, timestamp_ms| BlockHeader { height: parent.height + 1, difficulty, timestamp_ms, ..*parent };
    assert_eq!(check_header_context(&params, &child(next, mtp + 1), &ctx), Ok(()), "{name}: a valid child");
    assert_eq!(
        check_header_context(&params, &child(next, mtp), &ctx),
        Err(BlockError::TimestampTooOld { timestamp_ms: mtp, median_ms: mtp }),
        "{name}: a child at the median time past"
    );
    for wrong in [next.wrapping_sub(1), next.wrapping_add(1)] {
        if wrong >= 1 {
            assert_eq!(
                check_header_context(&params, &child(wrong, mtp + 1), &ctx),
                Err(BlockError::WrongDifficulty { expected: next, got: wrong }),
                "{name}: a child with difficulty {wrong}"
            );
        }
    }
}

fn accounts(v: &Vector, prefix: &str) -> Vec<(Address, Account)> {
    v.indexed(prefix, "")
        .iter()
        .map(|k| {
            let parts: Vec<&str> = v.str(k).split(' ').collect();
            let [addr, balance, nonce] = parts[..] else { panic!("{}: {k} is not `address balance nonce`", v.name) };
            let a: Address = addr.parse().unwrap();
            assert_eq!(a.to_string(), addr, "{}: {k} prints back", v.name);
            (a, Account { balance: balance.parse().unwrap(), nonce: nonce.parse().unwrap() })
        })
        .collect()
}

fn check_state_transition(v: &Vector) {
    let name = &v.name;
    assert_eq!(v.str("network"), "devnet", "{name}: only devnet vectors");
    let genesis = Genesis::devnet();
    let params = genesis.params();
    let pre = accounts(v, "pre.");
    let mut expected_pre: Vec<(Address, Account)> =
        genesis.allocations.iter().map(|a| (a.address, Account { balance: a.balance, nonce: 0 })).collect();
    expected_pre.sort_by_key(|(a, _)| *a);
    assert_eq!(pre, expected_pre, "{name}: pre is the devnet genesis state, in address order");
    let bytes = v.hex("block");
    let block = Block::decode(&bytes).unwrap_or_else(|e| panic!("{name}: decode: {e}"));
    assert_eq!(block.encode(), bytes, "{name}: re-encoding");
    assert_eq!(block.hash(), v.hash("block_hash"), "{name}: block hash");
    assert_eq!(block.header.parent, genesis.hash(), "{name}: a child of the devnet genesis");

    let state: HashMap<Address, Account> = pre.iter().copied().collect();
    let result = execute(&state, &params, &block.transactions, &block.header.miner);
    let core = Node::open_core(&NodeConfig::devnet()).unwrap();
    let imported = core.import_block(&block, BlockSource::Network);
    if v.has("error") {
        let index: usize = v.num("error.index");
        let error = match v.str("error") {
            "NonceGap" => TxError::NonceGap { expected: v.num("error.expected"), got: v.num("error.got") },
            other => panic!("{name}: no check for error {other}"),
        };
        assert_eq!(result, Err(ExecError::Tx { index, error: error.clone() }), "{name}: execution fails");
        match imported {
            Err(ImportError::Block(BlockError::InvalidTransaction { index: i, error: e })) => {
                assert_eq!((i, e), (index, error), "{name}: import refuses the block for that transaction")
            }
            other => panic!("{name}: import: {other:?}"),
        }
        return;
    }
    let diff = result.unwrap_or_else(|e| panic!("{name}: execution: {e}"));
    assert_eq!(diff.fees, v.num::<u128>("fees"), "{name}: fees");
    assert_eq!(params.block_reward, v.num::<u128>("reward"), "{name}: block reward");
    let mut after = state.clone();
    for (a, (_, new)) in &diff.changes {
        after.insert(*a, *new);
    }
    let mut after: Vec<(Address, Account)> =
        after.into_iter().filter(|(_, a)| a.balance != 0 || a.nonce != 0).collect();
    after.sort_by_key(|(a, _)| *a);
    let post = accounts(v, "post.");
    assert_eq!(post, after, "{name}: post state");
    // Supply: the reward is the only new money.
    let total = |s: &[(Address, Account)]| s.iter().map(|(_, a)| a.balance).sum::<u128>();
    assert_eq!(total(&post), total(&pre) + params.block_reward, "{name}: supply grows by the reward");

    let root = v.hash("state_root");
    let mut lt = LtHash::default();
    for (a, acc) in &post {
        lt.insert(a, acc.balance, acc.nonce);
    }
    assert_eq!(lt.root(), root, "{name}: state root of the post accounts");
    assert_eq!(diff.apply_to(&genesis.lthash()).root(), root, "{name}: genesis accumulator plus the diff");
    assert_eq!(block.header.state_root, root, "{name}: the header commits to it");
    assert!(
        matches!(imported, Ok(ImportOutcome::NewTip { .. })),
        "{name}: a devnet node imports the block as its tip: {imported:?}"
    );
}

fn check_invalid(v: &Vector) {
    let name = &v.name;
    let bytes = v.hex("hex");
    let result = match v.str("decoder") {
        "tx" => Transaction::decode(&bytes).map(|_| ()),
        "header" => BlockHeader::decode(&bytes).map(|_| ()),
        "block" => Block::decode(&bytes).map(|_| ()),
        other => panic!("{name}: unknown decoder {other:?}"),
    };
    let Err(err) = result else { panic!("{name}: must not decode") };
    let (variant, fields) = decode_error_fields(&err);
    assert_eq!(variant, v.str("error"), "{name}: error variant ({err:?})");
    for (field, value) in fields {
        assert_eq!(v.str(&format!("error.{field}")), value, "{name}: error.{field} ({err:?})");
    }
}

fn check_invalid_address(v: &Vector) {
    let name = &v.name;
    let Err(err) = v.str("string").parse::<Address>() else { panic!("{name}: must not parse") };
    match &err {
        AddressError::Invalid { .. } => assert_eq!(v.str("error"), "Invalid", "{name}: {err:?}"),
        AddressError::WrongPrefix { hrp, .. } => {
            assert_eq!(v.str("error"), "WrongPrefix", "{name}: {err:?}");
            assert_eq!(v.str("error.hrp"), hrp, "{name}: error.hrp");
        }
        AddressError::WrongLength { len, .. } => {
            assert_eq!(v.str("error"), "WrongLength", "{name}: {err:?}");
            assert_eq!(v.num::<usize>("error.len"), *len, "{name}: error.len");
        }
    }
}

fn read_vectors() -> Vec<Vector> {
    read_family(false)
}

fn read_family(consensus: bool) -> Vec<Vector> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(vectors_dir()).expect("protocols/vectors exists") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("txt") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        // Network protocol vectors belong to `protocol_vectors.rs` and its specs; consensus
        // vectors to `protocols/consensus.md`.
        if name.starts_with("sync-") || name.starts_with("gossip-") || is_consensus_vector(&name) != consensus {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        out.push(Vector::parse(&name, &text));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// File names listed (in backticks) in the "Golden vectors" section of the spec.
fn vectors_listed_in_spec() -> BTreeSet<String> {
    vectors_listed_in(&spec_path())
}

fn vectors_listed_in(path: &Path) -> BTreeSet<String> {
    let spec = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = spec.find("\n## Golden vectors").expect("spec has a `## Golden vectors` section");
    let section = &spec[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.ends_with(".txt") && !s.contains('/'))
        .map(str::to_string)
        .collect()
}

#[test]
fn golden_vectors_decode_encode_and_hash_as_recorded() {
    let vectors = read_vectors();
    assert!(!vectors.is_empty(), "no vectors in {}", vectors_dir().display());
    let kinds = check_all(&vectors, |v: &Vector, kind: &str| match kind {
        "tx" => check_tx(v),
        "header" => {
            check_header(v);
        }
        "block" => {
            check_block(v);
        }
        "merkle" => check_merkle(v),
        "genesis" => check_genesis(v),
        "dev-account" => check_dev_account(v),
        "lthash" => check_lthash(v),
        "invalid" => check_invalid(v),
        "invalid-address" => check_invalid_address(v),
        other => panic!("{}: unknown vector type {other:?}", v.name),
    });
    let expected: BTreeSet<String> =
        ["tx", "header", "block", "merkle", "genesis", "dev-account", "lthash", "invalid", "invalid-address"]
            .map(String::from)
            .into();
    assert_eq!(kinds, expected, "every kind of vector is present");
}

#[test]
fn consensus_vectors_check_as_recorded() {
    let vectors = read_family(true);
    let kinds = check_all(&vectors, |v: &Vector, kind: &str| match kind {
        "retarget" => check_retarget(v),
        "state-transition" => check_state_transition(v),
        other => panic!("{}: unknown consensus vector type {other:?}", v.name),
    });
    let expected: BTreeSet<String> = ["retarget", "state-transition"].map(String::from).into();
    assert_eq!(kinds, expected, "every kind of consensus vector is present");
}

#[test]
fn consensus_vector_files_match_the_list_in_the_spec() {
    let on_disk: BTreeSet<String> = read_family(true).into_iter().map(|v| v.name).collect();
    assert_same_files("consensus.md", &vectors_listed_in(&consensus_spec_path()), &on_disk);
}

#[test]
fn vector_files_match_the_list_in_the_spec() {
    let on_disk: BTreeSet<String> = read_vectors().into_iter().map(|v| v.name).collect();
    assert!(!on_disk.is_empty(), "no vectors in {}", vectors_dir().display());
    assert_same_files("encoding.md", &vectors_listed_in_spec(), &on_disk);
}

#[test]
fn blocks_above_the_byte_cap_are_refused_before_parsing() {
    // Not a file: 4 MiB of hex would dwarf the other vectors. The bytes are valid-looking zeros.
    let bytes = vec![0u8; MAX_BLOCK_BYTES + 1];
    assert_eq!(
        Block::decode(&bytes),
        Err(DecodeError::TooLarge { what: "block size", got: MAX_BLOCK_BYTES as u64 + 1, cap: MAX_BLOCK_BYTES as u64 })
    );
}
