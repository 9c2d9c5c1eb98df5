//! The generator of the golden vectors that carry signed transactions, for a deliberate change of
//! the signing message (a consensus change: `protocols/encoding.md`, "Signing message"). It is run
//! on purpose, never by the suite:
//!
//! ```sh
//! VISION_WRITE_VECTORS=1 cargo test --release --test it vector_regen -- --ignored
//! ```
//!
//! then the diff is reviewed and committed with the change; `vectors` and `protocol_vectors` check
//! the result as they check every vector. Every transaction in the files below is re-signed by its
//! key (a published dev account, or the vector's `secret_key`) for the devnet genesis, and every
//! value derived from it follows by substitution: witness hashes, transactions roots, headers, the
//! proof-of-work nonce of a block that met its difficulty (searched again from 0), block hashes,
//! blocks, payloads and frames; gossip message ids are recomputed from their payloads. Nothing
//! else changes (ids, state roots and encodings of unsigned data do not cover the signature).

use std::collections::BTreeMap;

use vision_node::chain::consensus::meets_difficulty;
use vision_node::chain::genesis::{DEV_ACCOUNTS, Genesis, dev_keypair};
use vision_node::chain::types::{Block, Hash, Transaction, tx_root};
use vision_node::p2p::gossip::{decode_tx_batch, message_id};
use vision_node::wallet::Keypair;

use crate::vector_file::vectors_dir;

/// The vector files that hold signed transactions, and the key of their primary binary value.
const FILES: [(&str, &str); 8] = [
    ("tx-transfer-signed.txt", "hex"),
    ("tx-transfer-extremes.txt", "hex"),
    ("block-3-txs.txt", "hex"),
    ("gossip-tx-batch.txt", "payload"),
    ("gossip-block.txt", "payload"),
    ("sync-response-blocks.txt", "frame"),
    ("state-transition-block-1.txt", "block"),
    ("state-transition-nonce-gap.txt", "block"),
];

/// One line group of a vector file: a comment or blank line, or a field (its value joined).
enum Entry {
    Text(String),
    Field { key: String, value: String, wrapped: bool },
}

fn parse(text: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t'])
            && !line.trim().is_empty()
            && let Some(Entry::Field { value, wrapped, .. }) = out.last_mut()
        {
            value.push_str(line.trim());
            *wrapped = true;
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) if !line.starts_with('#') && !line.trim().is_empty() => {
                out.push(Entry::Field { key: k.trim().to_string(), value: v.trim().to_string(), wrapped: false })
            }
            _ => out.push(Entry::Text(line.to_string())),
        }
    }
    out
}

fn render(entries: &[Entry]) -> String {
    let mut s = String::new();
    for e in entries {
        match e {
            Entry::Text(t) => s.push_str(t),
            Entry::Field { key, value, wrapped: false } => s.push_str(&format!("{key}: {value}")),
            Entry::Field { key, value, wrapped: true } => {
                s.push_str(&format!("{key}:"));
                for chunk in value.as_bytes().chunks(64) {
                    s.push_str("\n  ");
                    s.push_str(std::str::from_utf8(chunk).expect("hex is ASCII"));
                }
            }
        }
        s.push('\n');
    }
    s
}

/// Re-signs transactions and blocks, recording every old value -> new value (as hex).
struct Resigner {
    genesis_hash: Hash,
    keys: Vec<Keypair>,
    subs: BTreeMap<String, String>,
}

impl Resigner {
    fn tx(&mut self, tx: &Transaction) -> Transaction {
        let Some(key) = self.keys.iter().find(|k| k.address() == tx.from) else {
            return *tx; // not ours to sign (an invalid-signature vector): left as it is
        };
        if vision_node::verify::verify_signature(tx.from.as_bytes(), &old_signing_bytes(tx), &tx.signature).is_err() {
            return *tx; // a deliberately broken signature stays broken
        }
        let mut new = *tx;
        key.sign_tx(&mut new, &self.genesis_hash);
        self.subs.insert(hex::encode(tx.encode()), hex::encode(new.encode()));
        self.subs.insert(hex::encode(tx.signature), hex::encode(new.signature));
        self.subs.insert(tx.witness_hash().to_string(), new.witness_hash().to_string());
        new
    }

    fn block(&mut self, block: &Block) -> Block {
        let mut new =
            Block { header: block.header, transactions: block.transactions.iter().map(|t| self.tx(t)).collect() };
        if new.transactions == block.transactions {
            return new; // nothing re-signed: the block stays as it is
        }
        new.header.tx_root = tx_root(&new.transactions);
        if meets_difficulty(&block.hash(), block.header.difficulty) {
            new.header.nonce = (0..)
                .find(|n| {
                    let mut h = new.header;
                    h.nonce = *n;
                    meets_difficulty(&h.hash(), h.difficulty)
                })
                .expect("a nonce");
        } else {
            new.header.nonce = block.header.nonce;
        }
        self.subs.insert(block.header.tx_root.to_string(), new.header.tx_root.to_string());
        self.subs.insert(hex::encode(block.header.encode()), hex::encode(new.header.encode()));
        self.subs.insert(block.hash().to_string(), new.hash().to_string());
        new
    }
}

/// The signing message before the genesis hash was bound: the unsigned encoding.
fn old_signing_bytes(tx: &Transaction) -> Vec<u8> {
    let full = tx.encode();
    full[..full.len() - 64].to_vec()
}

/// Blocks in a sync `Blocks` frame: u32 LE frame length, 0x82, u32 LE count, (u32 LE len ‖ block)*.
fn frame_blocks(frame: &[u8]) -> Vec<Block> {
    let payload = &frame[4..];
    assert_eq!(payload[0], 0x82, "a Blocks response");
    let count = u32::from_le_bytes(payload[1..5].try_into().unwrap()) as usize;
    let mut at = 5;
    (0..count)
        .map(|_| {
            let len = u32::from_le_bytes(payload[at..at + 4].try_into().unwrap()) as usize;
            let b = Block::decode(&payload[at + 4..at + 4 + len]).unwrap();
            at += 4 + len;
            b
        })
        .collect()
}

#[test]
#[ignore = "writes protocols/vectors: run on purpose with VISION_WRITE_VECTORS=1"]
fn vector_regen() {
    if std::env::var_os("VISION_WRITE_VECTORS").is_none() {
        eprintln!("set VISION_WRITE_VECTORS=1 to rewrite the vectors");
        return;
    }
    let mut keys: Vec<Keypair> = (0..DEV_ACCOUNTS).map(dev_keypair).collect();
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    keys.push(Keypair::from_seed(&seed)); // tx-transfer-signed's secret_key
    let genesis_hash = Genesis::devnet().hash();
    let mut all_subs: BTreeMap<String, String> = BTreeMap::new();
    for (name, primary) in FILES {
        let path = vectors_dir().join(name);
        let mut entries = parse(&std::fs::read_to_string(&path).unwrap());
        let field = |entries: &[Entry], k: &str| {
            entries.iter().find_map(|e| match e {
                Entry::Field { key, value, .. } if key == k => Some(value.clone()),
                _ => None,
            })
        };
        let bytes = hex::decode(field(&entries, primary).unwrap()).unwrap();
        let mut r = Resigner { genesis_hash, keys: keys.clone(), subs: BTreeMap::new() };
        let mut nonce = None;
        let mut signing = None;
        match field(&entries, "type").unwrap().as_str() {
            "tx" => {
                let tx = Transaction::decode(&bytes).unwrap();
                let new = r.tx(&tx);
                signing = Some(hex::encode(new.signing_bytes(&genesis_hash)));
            }
            "block" | "gossip-block" | "state-transition" => {
                let new = r.block(&Block::decode(&bytes).unwrap());
                nonce = Some(new.header.nonce.to_string());
            }
            "gossip-tx-batch" => {
                for tx in decode_tx_batch(&bytes).unwrap() {
                    r.tx(&tx);
                }
            }
            "sync-response" => {
                for b in frame_blocks(&bytes) {
                    r.block(&b);
                }
            }
            other => panic!("{name}: type {other}"),
        }
        all_subs.extend(r.subs.iter().map(|(a, b)| (a.clone(), b.clone())));
        let subs = ordered(r.subs);
        for e in entries.iter_mut() {
            if let Entry::Field { key, value, .. } = e {
                for (old, new) in &subs {
                    *value = value.replace(old.as_str(), new);
                }
                if key == "header.nonce" {
                    *value = nonce.clone().expect("a block");
                }
                if key == "signing_bytes" {
                    *value = signing.clone().expect("a transaction");
                }
            }
        }
        recompute_message_id(&mut entries);
        // Transaction vectors name the genesis their signature is for.
        if field(&entries, "type").as_deref() == Some("tx") && field(&entries, "genesis_hash").is_none() {
            let at = entries
                .iter()
                .position(|e| matches!(e, Entry::Field { key, .. } if key == "signing_bytes"))
                .expect("signing_bytes");
            entries.insert(
                at,
                Entry::Field { key: "genesis_hash".into(), value: genesis_hash.to_string(), wrapped: false },
            );
        }
        std::fs::write(&path, render(&entries)).unwrap();
        eprintln!("{name}: {} values replaced", subs.len());
    }
    // Every other vector that quotes a changed value (a block hash in a status, a header in a
    // headers response, ...) follows.
    let subs = ordered(all_subs);
    let mut names: Vec<_> = std::fs::read_dir(vectors_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for path in names {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".txt") || FILES.iter().any(|(f, _)| *f == name) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut entries = parse(&text);
        let mut changed = 0;
        for e in entries.iter_mut() {
            if let Entry::Field { value, .. } = e {
                for (old, new) in &subs {
                    if value.contains(old.as_str()) {
                        *value = value.replace(old.as_str(), new);
                        changed += 1;
                    }
                }
            }
        }
        if changed > 0 {
            recompute_message_id(&mut entries);
            std::fs::write(&path, render(&entries)).unwrap();
            eprintln!("{name}: {changed} values replaced");
        }
    }
}

/// Substitutions without the unchanged ones, longest first (a value containing another is
/// replaced whole).
fn ordered(subs: BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut subs: Vec<(String, String)> = subs.into_iter().filter(|(a, b)| a != b).collect();
    subs.sort_by_key(|(a, _)| std::cmp::Reverse(a.len()));
    subs
}

/// Gossip message ids follow their payloads.
fn recompute_message_id(entries: &mut [Entry]) {
    let payload = entries.iter().find_map(|e| match e {
        Entry::Field { key, value, .. } if key == "payload" => Some(value.clone()),
        _ => None,
    });
    let Some(payload) = payload else { return };
    let Ok(bytes) = hex::decode(payload) else { return };
    let id = hex::encode(message_id(&bytes).0);
    for e in entries.iter_mut() {
        if let Entry::Field { key, value, .. } = e
            && key == "message_id"
        {
            *value = id.clone();
        }
    }
}
