//! Golden vectors for the network protocols (`protocols/sync.md`, `protocols/gossip.md`).
//!
//! The `sync-*.txt` and `gossip-*.txt` files in `protocols/vectors/` use the format of the encoding
//! vectors (`key: value` lines, `#` comments, long hex continued on indented lines). They were
//! generated once from the implementation and checked in; this module only reads them. Every
//! accepted payload is decoded, compared with the listed fields, re-encoded byte for byte and walked
//! by hand by the layout of the spec; every frame goes through `read_frame` / `write_frame`; every
//! negative vector must fail with the listed error. Every key of a file must be read by a check, and
//! the `sync-*` / `gossip-*` files on disk must match the lists in the two specs.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use futures::executor::block_on;
use futures::io::Cursor;
use libp2p::gossipsub;
use libp2p::request_response::Codec as _;
use vision_node::chain::consensus::check_header_stateless;
use vision_node::chain::encoding::DecodeError;
use vision_node::chain::genesis::{Genesis, dev_keypair};
use vision_node::chain::types::{Block, HEADER_LEN, Hash, MAX_BLOCK_BYTES};
use vision_node::chain::{ImportOutcome, Transaction};
use vision_node::node::{BlockSource, Node, NodeConfig};
use vision_node::p2p::gossip::{
    self, MAX_MESSAGE_BYTES, MAX_TX_BATCH, Topics, decode_tx_batch, encode_tx_batch, message_id,
};
use vision_node::p2p::sync::{
    Codec, ErrorCode, MAX_BLOCKS_PER_REQUEST, MAX_ERROR_MESSAGE, MAX_HEADERS_PER_REQUEST, MAX_REQUEST_BYTES,
    MAX_RESPONSE_BYTES, PROTOCOL, PROTOCOL_V2, Request, Response, Status, read_frame, write_frame,
};
use vision_node::verify::verify_tx;

use crate::vector_file::{Vector, assert_same_files, check_all, decode_error_fields, vectors_dir};

fn is_protocol_vector(name: &str) -> bool {
    name.starts_with("sync-") || name.starts_with("gossip-")
}

fn read_vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(vectors_dir()).expect("protocols/vectors exists") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.extension().and_then(|e| e.to_str()) != Some("txt") || !is_protocol_vector(&name) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        out.push(Vector::parse(&name, &text));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn vector(name: &str) -> Vector {
    let text = std::fs::read_to_string(vectors_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    Vector::parse(name, &text)
}

/// File names listed (in backticks) in the "Golden vectors" section of `protocols/<spec>`.
fn vectors_listed_in(spec: &str) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocols").join(spec);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = text.find("\n## Golden vectors").unwrap_or_else(|| panic!("{spec} has no `## Golden vectors` section"));
    let section = &text[start + 1..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |i| i + 1)];
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.ends_with(".txt") && !s.contains('/'))
        .map(str::to_string)
        .collect()
}

// ----- helpers ---------------------------------------------------------------------------------

fn blake3(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// `read_frame` over an in-memory stream holding exactly `bytes`.
fn read_one_frame(bytes: &[u8], cap: usize) -> io::Result<Vec<u8>> {
    let mut io = Cursor::new(bytes.to_vec());
    block_on(read_frame(&mut io, cap))
}

/// What `write_frame` puts on the wire for `payload`.
fn written_frame(payload: &[u8]) -> Vec<u8> {
    let mut io = Cursor::new(Vec::new());
    block_on(write_frame(&mut io, payload)).expect("writing to memory");
    io.into_inner()
}

fn cap_of(direction: &str) -> usize {
    match direction {
        "request" => MAX_REQUEST_BYTES,
        "response" => MAX_RESPONSE_BYTES,
        other => panic!("unknown direction {other:?}"),
    }
}

/// Checks `frame` = `u32 LE length ‖ payload` both ways and returns the payload.
fn check_frame(v: &Vector, direction: &str) -> Vec<u8> {
    let name = &v.name;
    let frame = v.hex("frame");
    assert!(frame.len() >= 4, "{name}: a frame starts with a 4-byte length");
    let payload = read_one_frame(&frame, cap_of(direction)).unwrap_or_else(|e| panic!("{name}: read_frame: {e}"));
    assert_eq!(payload, frame[4..], "{name}: the payload is everything after the prefix");
    assert_eq!(frame[..4], (payload.len() as u32).to_le_bytes(), "{name}: u32 LE length prefix");
    assert_eq!(v.num::<usize>("payload_len"), payload.len(), "{name}: payload_len");
    assert!(payload.len() <= cap_of(direction), "{name}: payload within the {direction} cap");
    assert_eq!(hex::encode(written_frame(&payload)), hex::encode(&frame), "{name}: write_frame");
    // Bytes after the frame are not part of it: the reader stops at the declared length.
    let mut longer = frame.clone();
    longer.extend([0xee; 3]);
    assert_eq!(read_one_frame(&longer, cap_of(direction)).unwrap(), payload, "{name}: reader stops at the frame end");
    payload
}

fn status_from(v: &Vector) -> Status {
    Status { genesis: v.hash("genesis"), tip: v.hash("tip"), height: v.num("height"), total_work: v.num("total_work") }
}

/// The status layout of the spec: genesis (32) ‖ tip (32) ‖ height (u64 LE) ‖ total_work (u128 LE).
fn status_layout(tag: u8, s: &Status) -> Vec<u8> {
    let mut b = vec![tag];
    b.extend(s.genesis.0);
    b.extend(s.tip.0);
    b.extend(s.height.to_le_bytes());
    b.extend(s.total_work.to_le_bytes());
    b
}

fn error_code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidRequest => "InvalidRequest",
        ErrorCode::RateLimited => "RateLimited",
        ErrorCode::WrongNetwork => "WrongNetwork",
        ErrorCode::ServerError => "ServerError",
    }
}

fn check_decode_error(v: &Vector, err: &DecodeError) {
    let (variant, fields) = decode_error_fields(err);
    assert_eq!(variant, v.str("error"), "{}: error variant ({err:?})", v.name);
    for (field, value) in fields {
        assert_eq!(v.str(&format!("error.{field}")), value, "{}: error.{field} ({err:?})", v.name);
    }
}

fn devnet_topics() -> Topics {
    Topics::new(&Genesis::devnet().hash())
}

// ----- sync ------------------------------------------------------------------------------------

fn check_sync_request(v: &Vector) {
    let name = &v.name;
    let payload = check_frame(v, "request");
    let decoded = Request::decode(&payload).unwrap_or_else(|e| panic!("{name}: decode: {e}"));
    let (built, layout) = match v.str("request") {
        "status" => {
            let s = status_from(v);
            (Request::Status(s), status_layout(0x01, &s))
        }
        "blocks-by-range" => {
            let (start, count): (u64, u32) = (v.num("start"), v.num("count"));
            assert!((1..=MAX_BLOCKS_PER_REQUEST).contains(&count), "{name}: count in 1..=64");
            let mut b = vec![0x02];
            b.extend(start.to_le_bytes());
            b.extend(count.to_le_bytes());
            (Request::BlocksByRange { start, count }, b)
        }
        "headers-by-range" => {
            let (start, count): (u64, u32) = (v.num("start"), v.num("count"));
            assert!((1..=MAX_HEADERS_PER_REQUEST).contains(&count), "{name}: count in 1..=2000");
            let mut b = vec![0x04];
            b.extend(start.to_le_bytes());
            b.extend(count.to_le_bytes());
            (Request::HeadersByRange { start, count }, b)
        }
        "blocks-by-hash" => {
            let hashes: Vec<Hash> = v.indexed("hash.", "").iter().map(|k| v.hash(k)).collect();
            assert_eq!(v.num::<usize>("count"), hashes.len(), "{name}: count");
            let mut b = vec![0x03];
            b.extend((hashes.len() as u32).to_le_bytes());
            for h in &hashes {
                b.extend(h.0);
            }
            (Request::BlocksByHash(hashes), b)
        }
        other => panic!("{name}: unknown request {other:?}"),
    };
    assert_eq!(decoded, built, "{name}: decoded fields");
    assert_eq!(hex::encode(built.encode()), hex::encode(&payload), "{name}: encoding of the listed fields");
    assert_eq!(hex::encode(&layout), hex::encode(&payload), "{name}: layout of the spec");
    // The codec reads it the same way on version 2, and on version 1 unless it is a version-2 message.
    let mut io = Cursor::new(v.hex("frame"));
    assert_eq!(block_on(Codec.read_request(&PROTOCOL_V2, &mut io)).unwrap(), built, "{name}: Codec::read_request");
    let on_v1 = block_on(Codec.read_request(&PROTOCOL, &mut Cursor::new(v.hex("frame"))));
    if built.is_v2_only() {
        assert_eq!(on_v1.unwrap_err().kind(), io::ErrorKind::InvalidData, "{name}: not on /vision/sync/1");
    } else {
        assert_eq!(on_v1.unwrap(), built, "{name}: Codec::read_request on /vision/sync/1");
    }
}

fn check_sync_response(v: &Vector) {
    let name = &v.name;
    let payload = check_frame(v, "response");
    let decoded = Response::decode(&payload).unwrap_or_else(|e| panic!("{name}: decode: {e}"));
    assert_eq!(hex::encode(decoded.encode()), hex::encode(&payload), "{name}: re-encoding");
    match v.str("response") {
        "status" => {
            let s = status_from(v);
            assert_eq!(decoded, Response::Status(s), "{name}: decoded fields");
            assert_eq!(hex::encode(status_layout(0x81, &s)), hex::encode(&payload), "{name}: layout of the spec");
        }
        "blocks" => {
            let Response::Blocks(blocks) = &decoded else { panic!("{name}: not a Blocks response: {decoded:?}") };
            let count: usize = v.num("count");
            assert_eq!(blocks.len(), count, "{name}: count");
            assert!(count <= MAX_BLOCKS_PER_REQUEST as usize, "{name}: at most 64 blocks");
            // Walk the payload by hand: tag, u32 LE count, then (u32 LE length ‖ block)*.
            assert_eq!(payload[0], 0x82, "{name}: tag");
            assert_eq!(payload[1..5], (count as u32).to_le_bytes(), "{name}: u32 LE count");
            let mut at = 5;
            for (i, b) in blocks.iter().enumerate() {
                let k = |s: &str| format!("block.{i}.{s}");
                let len = u32::from_le_bytes(payload[at..at + 4].try_into().unwrap()) as usize;
                assert_eq!(len, v.num::<usize>(&k("encoded_len")), "{name}: block {i} length prefix");
                assert_eq!(b.encoded_len(), len, "{name}: block {i} encoded_len()");
                assert_eq!(payload[at + 4..at + 4 + len], b.encode(), "{name}: block {i} bytes");
                assert_eq!(Block::decode(&payload[at + 4..at + 4 + len]).as_ref(), Ok(b), "{name}: block {i} decodes");
                at += 4 + len;
                assert_eq!(b.hash(), v.hash(&k("hash")), "{name}: block {i} hash");
                assert_eq!(b.header.height, v.num::<u64>(&k("height")), "{name}: block {i} height");
                assert_eq!(b.transactions.len(), v.num::<usize>(&k("tx_count")), "{name}: block {i} tx_count");
                for tx in &b.transactions {
                    assert_eq!(
                        verify_tx(tx, &Genesis::devnet().hash()),
                        Ok(()),
                        "{name}: block {i}: signatures verify"
                    );
                }
            }
            assert_eq!(at, payload.len(), "{name}: nothing after the last block");
            assert_eq!(v.indexed("block.", ".hash").len(), count, "{name}: one block.N per block");
            if v.has("request_start") {
                // The answer to BlocksByRange { start, count }: consecutive heights from `start`,
                // at most `count` of them.
                let start: u64 = v.num("request_start");
                let asked: usize = v.num("request_count");
                assert!(count <= asked, "{name}: no more blocks than asked");
                for (i, b) in blocks.iter().enumerate() {
                    assert_eq!(b.header.height, start + i as u64, "{name}: heights are consecutive from start");
                    if i > 0 {
                        assert_eq!(b.header.parent, blocks[i - 1].hash(), "{name}: each block extends the previous");
                    }
                }
            }
        }
        "error" => {
            let Response::Error { code, message } = &decoded else { panic!("{name}: not an Error: {decoded:?}") };
            assert_eq!(*code as u8, v.num::<u8>("code"), "{name}: code");
            assert_eq!(error_code_name(*code), v.str("code_name"), "{name}: code_name");
            assert_eq!(message, v.str("message"), "{name}: message");
            assert!(message.len() <= MAX_ERROR_MESSAGE, "{name}: message within 256 bytes");
            let mut layout = vec![0xff, *code as u8];
            layout.extend((message.len() as u16).to_le_bytes());
            layout.extend(message.as_bytes());
            assert_eq!(hex::encode(&layout), hex::encode(&payload), "{name}: layout of the spec");
            if v.has("encoded_from") {
                // The encoder cuts a long message at a character boundary at or below 256 bytes.
                let long = v.str("encoded_from");
                assert!(long.len() > MAX_ERROR_MESSAGE, "{name}: encoded_from is above the cap");
                assert!(long.starts_with(message.as_str()), "{name}: the message is a prefix of encoded_from");
                assert!(!long.is_char_boundary(message.len() + 1), "{name}: cut at the last boundary");
                let res = Response::Error { code: *code, message: long.to_string() };
                assert_eq!(hex::encode(res.encode()), hex::encode(&payload), "{name}: encoding of encoded_from");
            } else {
                assert_eq!(Response::Error { code: *code, message: message.clone() }, decoded);
            }
        }
        "headers" => {
            let Response::Headers(headers) = &decoded else { panic!("{name}: not a Headers response: {decoded:?}") };
            let count: usize = v.num("count");
            assert_eq!(headers.len(), count, "{name}: count");
            assert!(count <= MAX_HEADERS_PER_REQUEST as usize, "{name}: at most 2000 headers");
            // Walk the payload by hand: tag, u32 LE count, then count × 161-byte header.
            assert_eq!(payload[0], 0x83, "{name}: tag");
            assert_eq!(payload[1..5], (count as u32).to_le_bytes(), "{name}: u32 LE count");
            assert_eq!(payload.len(), 5 + count * HEADER_LEN, "{name}: fixed-size headers");
            for (i, h) in headers.iter().enumerate() {
                let k = |s: &str| format!("header.{i}.{s}");
                let at = 5 + i * HEADER_LEN;
                assert_eq!(payload[at..at + HEADER_LEN], h.encode(), "{name}: header {i} bytes");
                assert_eq!(h.hash(), v.hash(&k("hash")), "{name}: header {i} hash");
                assert_eq!(h.height, v.num::<u64>(&k("height")), "{name}: header {i} height");
                assert_eq!(h.difficulty, v.num::<u64>(&k("difficulty")), "{name}: header {i} difficulty");
                if h.height > 0 {
                    let params = Genesis::devnet().params();
                    assert_eq!(
                        check_header_stateless(&params, h, u64::MAX / 2),
                        Ok(()),
                        "{name}: header {i} meets its work"
                    );
                }
            }
            assert_eq!(v.indexed("header.", ".hash").len(), count, "{name}: one header.N per header");
            if v.has("request_start") {
                let start: u64 = v.num("request_start");
                let asked: usize = v.num("request_count");
                assert!(count <= asked, "{name}: no more headers than asked");
                for (i, h) in headers.iter().enumerate() {
                    assert_eq!(h.height, start + i as u64, "{name}: heights are consecutive from start");
                    if i > 0 {
                        assert_eq!(h.parent, headers[i - 1].hash(), "{name}: each header extends the previous");
                    }
                }
            }
        }
        other => panic!("{name}: unknown response {other:?}"),
    }
    let mut io = Cursor::new(v.hex("frame"));
    assert_eq!(block_on(Codec.read_response(&PROTOCOL_V2, &mut io)).unwrap(), decoded, "{name}: Codec::read_response");
    let on_v1 = block_on(Codec.read_response(&PROTOCOL, &mut Cursor::new(v.hex("frame"))));
    if decoded.is_v2_only() {
        assert_eq!(on_v1.unwrap_err().kind(), io::ErrorKind::InvalidData, "{name}: not on /vision/sync/1");
    } else {
        assert_eq!(on_v1.unwrap(), decoded, "{name}: Codec::read_response on /vision/sync/1");
    }
}

fn check_sync_invalid(v: &Vector) {
    let name = &v.name;
    let payload = v.hex("payload");
    let direction = v.str("decoder");
    // On version 2 (a superset of version 1) unless the vector names a protocol.
    let protocol = if v.has("protocol") {
        [PROTOCOL, PROTOCOL_V2].into_iter().find(|p| p.as_ref() == v.str("protocol")).expect("a known protocol")
    } else {
        PROTOCOL_V2
    };
    let result = match direction {
        "request" => Request::decode_on(&protocol, &payload).map(|r| format!("{r:?}")),
        "response" => Response::decode_on(&protocol, &payload).map(|r| format!("{r:?}")),
        other => panic!("{name}: unknown decoder {other:?}"),
    };
    let err = result.expect_err(&format!("{name}: must not decode"));
    check_decode_error(v, &err);
    // Framed and read by the codec, it is an `InvalidData` error carrying the decode error.
    let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
    frame.extend(&payload);
    let mut io = Cursor::new(frame);
    let io_err = match direction {
        "request" => block_on(Codec.read_request(&protocol, &mut io)).map(|_| ()),
        _ => block_on(Codec.read_response(&protocol, &mut io)).map(|_| ()),
    }
    .expect_err("the codec refuses it");
    assert_eq!(io_err.kind(), io::ErrorKind::InvalidData, "{name}: codec error kind");
    assert_eq!(io_err.to_string(), err.to_string(), "{name}: codec error message");
}

fn check_sync_frame_invalid(v: &Vector) {
    let name = &v.name;
    let frame = v.hex("frame");
    let direction = v.str("direction");
    let err = read_one_frame(&frame, cap_of(direction)).expect_err(&format!("{name}: must not read"));
    assert_eq!(format!("{:?}", err.kind()), v.str("error_kind"), "{name}: error kind ({err})");
    if v.has("error_message") {
        assert_eq!(err.to_string(), v.str("error_message"), "{name}: error message");
    }
    let mut io = Cursor::new(frame);
    let codec_err = match direction {
        "request" => block_on(Codec.read_request(&PROTOCOL, &mut io)).map(|_| ()),
        _ => block_on(Codec.read_response(&PROTOCOL, &mut io)).map(|_| ()),
    }
    .expect_err("the codec refuses it");
    assert_eq!(codec_err.kind(), err.kind(), "{name}: codec error kind");
}

fn check_sync_constants(v: &Vector) {
    let name = &v.name;
    assert_eq!(PROTOCOL.as_ref(), v.str("protocol"), "{name}: protocol name");
    assert_eq!(PROTOCOL_V2.as_ref(), v.str("protocol_v2"), "{name}: protocol name of version 2");
    assert_eq!(MAX_HEADERS_PER_REQUEST, v.num::<u32>("max_headers_per_request"), "{name}: MAX_HEADERS_PER_REQUEST");
    const { assert!(1 + 4 + HEADER_LEN * MAX_HEADERS_PER_REQUEST as usize <= MAX_RESPONSE_BYTES) };
    assert_eq!(MAX_REQUEST_BYTES, v.num::<usize>("max_request_bytes"), "{name}: MAX_REQUEST_BYTES");
    assert_eq!(MAX_RESPONSE_BYTES, v.num::<usize>("max_response_bytes"), "{name}: MAX_RESPONSE_BYTES");
    assert_eq!(MAX_BLOCKS_PER_REQUEST, v.num::<u32>("max_blocks_per_request"), "{name}: MAX_BLOCKS_PER_REQUEST");
    assert_eq!(MAX_ERROR_MESSAGE, v.num::<usize>("max_error_message"), "{name}: MAX_ERROR_MESSAGE");
    // The caps fit the largest legal messages.
    const { assert!(1 + 4 + 32 * MAX_BLOCKS_PER_REQUEST as usize <= MAX_REQUEST_BYTES) };
    const { assert!(1 + 4 + 2 * (4 + MAX_BLOCK_BYTES) <= MAX_RESPONSE_BYTES) };
    const { assert!(1 + 1 + 2 + MAX_ERROR_MESSAGE <= MAX_RESPONSE_BYTES) };
}

// ----- gossip ----------------------------------------------------------------------------------

fn check_gossip_topics(v: &Vector) {
    let name = &v.name;
    let genesis = v.hash("genesis");
    assert_eq!(genesis, Genesis::devnet().hash(), "{name}: the devnet genesis hash");
    let net = v.str("net");
    assert_eq!(net, &genesis.to_string()[..8], "{name}: net = first 8 hex digits of the genesis hash");
    let topics = Topics::new(&genesis);
    assert_eq!(topics.blocks.to_string(), v.str("blocks"), "{name}: blocks topic");
    assert_eq!(topics.txs.to_string(), v.str("txs"), "{name}: txs topic");
    assert_eq!(v.str("blocks"), format!("/vision/{net}/blocks/1"), "{name}: blocks topic pattern");
    assert_eq!(v.str("txs"), format!("/vision/{net}/txs/1"), "{name}: txs topic pattern");
    // Identity topics: the topic hash on the wire is the topic string itself.
    assert_eq!(topics.blocks.hash().as_str(), v.str("blocks_hash"), "{name}: blocks topic hash");
    assert_eq!(topics.txs.hash().as_str(), v.str("txs_hash"), "{name}: txs topic hash");
    assert_eq!(v.str("blocks_hash"), v.str("blocks"), "{name}: identity hash");
    assert_eq!(v.str("txs_hash"), v.str("txs"), "{name}: identity hash");
}

fn check_message_id(v: &Vector, payload: &[u8], key: &str) {
    let id = v.hex(key);
    assert_eq!(id.len(), 20, "{}: {key} is 20 bytes", v.name);
    assert_eq!(id, blake3(payload)[..20], "{}: {key} = BLAKE3(payload)[..20]", v.name);
    assert_eq!(message_id(payload).0, id, "{}: {key} = message_id()", v.name);
    // The gossipsub configuration uses exactly this id, whoever published the message.
    let msg = gossipsub::Message {
        source: Some(libp2p::PeerId::random()),
        data: payload.to_vec(),
        sequence_number: Some(7),
        topic: devnet_topics().txs.hash(),
    };
    assert_eq!(gossip::config().unwrap().message_id(&msg).0, id, "{}: {key}: configured message id", v.name);
}

fn check_gossip_tx_batch(v: &Vector) {
    let name = &v.name;
    assert_eq!(v.str("topic"), devnet_topics().txs.to_string(), "{name}: topic");
    let payload = v.hex("payload");
    let txs = decode_tx_batch(&payload).unwrap_or_else(|e| panic!("{name}: decode: {e}"));
    assert_eq!(hex::encode(encode_tx_batch(&txs)), hex::encode(&payload), "{name}: re-encoding");
    let count: usize = v.num("count");
    assert_eq!(txs.len(), count, "{name}: count");
    assert!(count <= MAX_TX_BATCH, "{name}: within the cap");
    assert_eq!(payload[..4], (count as u32).to_le_bytes(), "{name}: u32 LE count");
    let mut at = 4;
    for (i, tx) in txs.iter().enumerate() {
        let k = |s: &str| format!("tx.{i}.{s}");
        let len = u32::from_le_bytes(payload[at..at + 4].try_into().unwrap()) as usize;
        assert_eq!(len, tx.encoded_len(), "{name}: tx {i} length prefix");
        assert_eq!(payload[at + 4..at + 4 + len], tx.encode(), "{name}: tx {i} bytes");
        assert_eq!(Transaction::decode(&payload[at + 4..at + 4 + len]).as_ref(), Ok(tx), "{name}: tx {i} decodes");
        at += 4 + len;
        assert_eq!(tx.id(), v.hash(&k("id")), "{name}: tx {i} id");
        assert_eq!(tx.witness_hash(), v.hash(&k("witness_hash")), "{name}: tx {i} witness hash");
        assert_eq!(tx.from, v.address(&k("from")), "{name}: tx {i} from");
        assert_eq!(tx.nonce, v.num::<u64>(&k("nonce")), "{name}: tx {i} nonce");
        assert_eq!(tx.chain_id, Genesis::devnet().chain_id, "{name}: tx {i} is for the devnet");
        assert_eq!(verify_tx(tx, &Genesis::devnet().hash()), Ok(()), "{name}: tx {i} signature");
        let key = dev_keypair(v.num(&k("dev_account")));
        assert_eq!(key.address(), tx.from, "{name}: tx {i} is signed by the listed dev account");
        let mut resigned = *tx;
        resigned.signature = [0; 64];
        key.sign_tx(&mut resigned, &Genesis::devnet().hash());
        assert_eq!(resigned.signature, tx.signature, "{name}: tx {i}: re-signing reproduces the signature");
    }
    assert_eq!(at, payload.len(), "{name}: nothing after the last transaction");
    check_message_id(v, &payload, "message_id");
}

fn check_gossip_block(v: &Vector) {
    let name = &v.name;
    assert_eq!(v.str("topic"), devnet_topics().blocks.to_string(), "{name}: topic");
    let payload = v.hex("payload");
    let block = Block::decode(&payload).unwrap_or_else(|e| panic!("{name}: decode: {e}"));
    assert_eq!(hex::encode(block.encode()), hex::encode(&payload), "{name}: re-encoding");
    assert_eq!(block.hash(), v.hash("hash"), "{name}: hash");
    assert_eq!(block.header.height, v.num::<u64>("height"), "{name}: height");
    assert_eq!(block.transactions.len(), v.num::<usize>("tx_count"), "{name}: tx_count");
    assert!(payload.len() <= MAX_BLOCK_BYTES, "{name}: within the block cap");
    // What a relay checks before Accept (at the block's own time, so the test does not depend on the clock).
    let params = Genesis::devnet().params();
    assert_eq!(
        check_header_stateless(&params, &block.header, block.header.timestamp_ms),
        Ok(()),
        "{name}: stateless checks"
    );
    check_message_id(v, &payload, "message_id");
}

fn check_gossip_message_id(v: &Vector) {
    let keys = v.indexed("payload.", "");
    assert!(!keys.is_empty(), "{}: no payloads", v.name);
    for i in 0..keys.len() {
        let payload = v.hex(&format!("payload.{i}"));
        assert_eq!(v.hex(&format!("blake3.{i}")), blake3(&payload), "{}: blake3.{i}", v.name);
        check_message_id(v, &payload, &format!("message_id.{i}"));
    }
}

fn check_gossip_invalid(v: &Vector) {
    assert_eq!(v.str("decoder"), "tx-batch", "{}: only tx batches have a gossip-specific decoder", v.name);
    let err = decode_tx_batch(&v.hex("payload")).expect_err(&format!("{}: must not decode", v.name));
    check_decode_error(v, &err);
}

fn check_gossip_constants(v: &Vector) {
    let name = &v.name;
    assert_eq!(MAX_TX_BATCH, v.num::<usize>("max_tx_batch"), "{name}: MAX_TX_BATCH");
    assert_eq!(MAX_MESSAGE_BYTES, v.num::<usize>("max_message_bytes"), "{name}: MAX_MESSAGE_BYTES");
    assert_eq!(message_id(b"").0.len(), v.num::<usize>("message_id_len"), "{name}: message id length");
    const { assert!(MAX_MESSAGE_BYTES >= MAX_BLOCK_BYTES) };
}

fn check_gossip_params(v: &Vector) {
    let name = &v.name;
    let c = gossip::config().unwrap();
    let th = gossip::score_thresholds();
    let topics = devnet_topics();
    let sp = gossip::score_params(&topics);
    let eq = |key: &str, actual: String| assert_eq!(actual, v.str(key), "{name}: {key}");
    eq("validation_mode", format!("{:?}", c.validation_mode()));
    eq("validate_messages", c.validate_messages().to_string());
    eq("max_transmit_size", c.max_transmit_size().to_string());
    eq("heartbeat_interval_ms", c.heartbeat_interval().as_millis().to_string());
    eq("duplicate_cache_time_ms", c.duplicate_cache_time().as_millis().to_string());
    eq("mesh_n", c.mesh_n().to_string());
    eq("mesh_n_low", c.mesh_n_low().to_string());
    eq("mesh_n_high", c.mesh_n_high().to_string());
    eq("mesh_outbound_min", c.mesh_outbound_min().to_string());
    eq("gossip_lazy", c.gossip_lazy().to_string());
    eq("history_length", c.history_length().to_string());
    eq("history_gossip", c.history_gossip().to_string());
    eq("fanout_ttl_ms", c.fanout_ttl().as_millis().to_string());
    eq("flood_publish", c.flood_publish().to_string());
    eq("do_px", c.do_px().to_string());
    eq("gossip_threshold", th.gossip_threshold.to_string());
    eq("publish_threshold", th.publish_threshold.to_string());
    eq("graylist_threshold", th.graylist_threshold.to_string());
    eq("accept_px_threshold", th.accept_px_threshold.to_string());
    eq("opportunistic_graft_threshold", th.opportunistic_graft_threshold.to_string());
    eq("topic_score_cap", sp.topic_score_cap.to_string());
    eq("app_specific_weight", sp.app_specific_weight.to_string());
    eq("ip_colocation_factor_weight", sp.ip_colocation_factor_weight.to_string());
    eq("ip_colocation_factor_threshold", sp.ip_colocation_factor_threshold.to_string());
    eq("behaviour_penalty_weight", sp.behaviour_penalty_weight.to_string());
    eq("behaviour_penalty_decay", sp.behaviour_penalty_decay.to_string());
    eq("decay_interval_ms", sp.decay_interval.as_millis().to_string());
    eq("decay_to_zero", sp.decay_to_zero.to_string());
    eq("retain_score_ms", sp.retain_score.as_millis().to_string());
    assert_eq!(sp.topics.len(), 2, "{name}: score parameters for exactly the two topics");
    for (topic, t) in [("blocks", &topics.blocks), ("txs", &topics.txs)] {
        let p = &sp.topics[&t.hash()];
        let k = |s: &str| format!("{topic}.{s}");
        eq(&k("topic_weight"), p.topic_weight.to_string());
        eq(&k("time_in_mesh_weight"), p.time_in_mesh_weight.to_string());
        eq(&k("time_in_mesh_quantum_ms"), p.time_in_mesh_quantum.as_millis().to_string());
        eq(&k("time_in_mesh_cap"), p.time_in_mesh_cap.to_string());
        eq(&k("first_message_deliveries_weight"), p.first_message_deliveries_weight.to_string());
        eq(&k("first_message_deliveries_decay"), p.first_message_deliveries_decay.to_string());
        eq(&k("first_message_deliveries_cap"), p.first_message_deliveries_cap.to_string());
        eq(&k("mesh_message_deliveries_weight"), p.mesh_message_deliveries_weight.to_string());
        eq(&k("mesh_failure_penalty_weight"), p.mesh_failure_penalty_weight.to_string());
        eq(&k("invalid_message_deliveries_weight"), p.invalid_message_deliveries_weight.to_string());
        eq(&k("invalid_message_deliveries_decay"), p.invalid_message_deliveries_decay.to_string());
    }
}

// ----- tests -----------------------------------------------------------------------------------

#[test]
fn protocol_vectors_decode_encode_and_frame_as_recorded() {
    let vectors = read_vectors();
    let kinds = check_all(&vectors, |v: &Vector, kind: &str| match kind {
        "sync-request" => check_sync_request(v),
        "sync-response" => check_sync_response(v),
        "sync-invalid" => check_sync_invalid(v),
        "sync-frame-invalid" => check_sync_frame_invalid(v),
        "sync-constants" => check_sync_constants(v),
        "gossip-topics" => check_gossip_topics(v),
        "gossip-tx-batch" => check_gossip_tx_batch(v),
        "gossip-block" => check_gossip_block(v),
        "gossip-message-id" => check_gossip_message_id(v),
        "gossip-invalid" => check_gossip_invalid(v),
        "gossip-constants" => check_gossip_constants(v),
        "gossip-params" => check_gossip_params(v),
        other => panic!("{}: unknown vector type {other:?}", v.name),
    });
    let expected: BTreeSet<String> = [
        "sync-request",
        "sync-response",
        "sync-invalid",
        "sync-frame-invalid",
        "sync-constants",
        "gossip-topics",
        "gossip-tx-batch",
        "gossip-block",
        "gossip-message-id",
        "gossip-invalid",
        "gossip-constants",
        "gossip-params",
    ]
    .map(String::from)
    .into();
    assert_eq!(kinds, expected, "every kind of protocol vector is present");
}

#[test]
fn protocol_vector_files_match_the_lists_in_the_specs() {
    let on_disk: BTreeSet<String> = read_vectors().into_iter().map(|v| v.name).collect();
    for (prefix, spec) in [("sync-", "sync.md"), ("gossip-", "gossip.md")] {
        let here: BTreeSet<String> = on_disk.iter().filter(|n| n.starts_with(prefix)).cloned().collect();
        assert!(!here.is_empty(), "no {prefix}* vectors in {}", vectors_dir().display());
        // Other files may be named in the section (cross-references); only this prefix is the spec's list.
        let listed: BTreeSet<String> = vectors_listed_in(spec).into_iter().filter(|n| n.starts_with(prefix)).collect();
        assert_same_files(spec, &listed, &here);
    }
}

/// The sync vectors describe one real chain: the devnet genesis and a block 1 that a devnet node
/// imports as its new tip; the listed status is that node's status.
#[test]
fn sync_vectors_describe_a_real_devnet_chain() {
    let blocks_vector = vector("sync-response-blocks.txt");
    let payload = blocks_vector.hex("frame")[4..].to_vec();
    let Ok(Response::Blocks(blocks)) = Response::decode(&payload) else { panic!("a Blocks response") };
    let genesis = Genesis::devnet();
    assert_eq!(blocks[0], genesis.block(), "block 0 is the devnet genesis block");
    let core = Node::open_core(&NodeConfig::devnet()).unwrap();
    for b in &blocks[1..] {
        let outcome = core.import_block(b, BlockSource::Network).expect("a valid devnet block");
        assert!(matches!(outcome, ImportOutcome::NewTip { .. }), "block {} becomes the tip", b.header.height);
    }
    let tip = core.chain().tip();
    let ours = Status { genesis: genesis.hash(), tip: tip.hash, height: tip.header.height, total_work: tip.total_work };
    for name in ["sync-request-status.txt", "sync-response-status.txt"] {
        let v = vector(name);
        assert_eq!(status_from(&v), ours, "{name}: the status of a devnet node holding these blocks");
    }
    // The block gossiped in gossip-block.txt is block 1, and BlocksByHash names the same blocks.
    let gossiped = Block::decode(&vector("gossip-block.txt").hex("payload")).unwrap();
    assert_eq!(&gossiped, blocks.last().unwrap(), "gossip-block.txt carries the last block");
    let by_hash = vector("sync-request-by-hash.txt");
    let hashes: Vec<Hash> = by_hash.indexed("hash.", "").iter().map(|k| by_hash.hash(k)).collect();
    assert_eq!(hashes, blocks.iter().map(Block::hash).collect::<Vec<_>>(), "BlocksByHash asks for these blocks");
    assert_eq!(HEADER_LEN + 4, blocks[0].encoded_len(), "the genesis block has an empty body");
}

/// Not files: a request frame one byte above its cap is refused on the prefix even when the payload
/// follows, and a response frame exactly at the cap is read.
#[test]
fn frame_caps_are_exact() {
    let mut over = ((MAX_REQUEST_BYTES + 1) as u32).to_le_bytes().to_vec();
    over.extend(vec![0u8; MAX_REQUEST_BYTES + 1]);
    assert_eq!(read_one_frame(&over, MAX_REQUEST_BYTES).unwrap_err().kind(), io::ErrorKind::InvalidData);
    let mut at_cap = (MAX_REQUEST_BYTES as u32).to_le_bytes().to_vec();
    at_cap.extend(vec![0u8; MAX_REQUEST_BYTES]);
    assert_eq!(read_one_frame(&at_cap, MAX_REQUEST_BYTES).unwrap().len(), MAX_REQUEST_BYTES);
    let mut at_cap = (MAX_RESPONSE_BYTES as u32).to_le_bytes().to_vec();
    at_cap.extend(vec![0u8; MAX_RESPONSE_BYTES]);
    assert_eq!(read_one_frame(&at_cap, MAX_RESPONSE_BYTES).unwrap().len(), MAX_RESPONSE_BYTES);
    // An empty frame is a frame; its empty payload is not a message.
    assert_eq!(read_one_frame(&[0, 0, 0, 0], MAX_REQUEST_BYTES).unwrap(), Vec::<u8>::new());
    assert_eq!(Request::decode(&[]), Err(DecodeError::UnexpectedEnd { offset: 0, needed: 1 }));
}

/// Not a file: a batch of exactly 1024 transfers is accepted and fits one gossip message.
#[test]
fn a_full_transaction_batch_is_accepted() {
    let v = vector("gossip-tx-batch.txt");
    let one = decode_tx_batch(&v.hex("payload")).unwrap()[0];
    let batch = vec![one; MAX_TX_BATCH];
    let bytes = encode_tx_batch(&batch);
    assert_eq!(decode_tx_batch(&bytes).map(|t| t.len()), Ok(MAX_TX_BATCH));
    assert!(bytes.len() <= MAX_MESSAGE_BYTES);
}
