//! Feeds arbitrary bytes to the inbound side of `/vision/sync/1` responses, two ways:
//! 1. as a payload to `Response::decode`: on `Ok`, `encode` gives back exactly the input, a
//!    `Blocks` response holds at most `MAX_BLOCKS_PER_REQUEST` blocks and an `Error` message at most
//!    `MAX_ERROR_MESSAGE` bytes;
//! 2. as a raw stream to the node's codec (`NodeCodec::read_response`, i.e. `read_frame` with the
//!    `MAX_RESPONSE_BYTES` cap, then `Response::decode`), via `futures::executor::block_on` on a
//!    `futures::io::Cursor`. Asserts that its verdict agrees with the frame's length prefix and a
//!    direct decode of the payload, and that writing a decoded response back gives the same frame.
#![no_main]

use std::io::ErrorKind;

use futures::executor::block_on;
use futures::io::Cursor;
use libfuzzer_sys::fuzz_target;
use libp2p::request_response::Codec as _;
use vision_node::p2p::sync::{
    MAX_BLOCKS_PER_REQUEST, MAX_ERROR_MESSAGE, MAX_HEADERS_PER_REQUEST, MAX_RESPONSE_BYTES, NodeCodec, PROTOCOL,
    PROTOCOL_V2, Response, read_frame,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(res) = Response::decode(data) {
        assert_eq!(res.encode(), data, "response encoding is not canonical");
        match &res {
            Response::Blocks(b) => assert!(b.len() <= MAX_BLOCKS_PER_REQUEST as usize),
            Response::Error { message, .. } => assert!(message.len() <= MAX_ERROR_MESSAGE),
            Response::Headers(h) => assert!(h.len() <= MAX_HEADERS_PER_REQUEST as usize),
            Response::Status(_) => {}
        }
    }

    let declared = (data.len() >= 4).then(|| u32::from_le_bytes(data[..4].try_into().unwrap()) as usize);
    // The frame layer alone.
    match block_on(read_frame(&mut Cursor::new(data), MAX_RESPONSE_BYTES)) {
        Ok(payload) => {
            let len = declared.expect("a frame was read from fewer than 4 bytes");
            assert_eq!(payload, data[4..4 + len]);
        }
        Err(e) => match e.kind() {
            ErrorKind::InvalidData => assert!(declared.is_some_and(|l| l > MAX_RESPONSE_BYTES)),
            ErrorKind::UnexpectedEof => {
                assert!(declared.is_none_or(|l| l <= MAX_RESPONSE_BYTES && data.len() < 4 + l))
            }
            _ => panic!("unexpected I/O error {e}"),
        },
    }
    // The codec: frame, then payload decode.
    // On both protocol versions: the header messages exist only on the second.
    for protocol in [PROTOCOL, PROTOCOL_V2] {
        match block_on(NodeCodec.read_response(&protocol, &mut Cursor::new(data))) {
            Ok(res) => {
                let len = declared.expect("a response was read from fewer than 4 bytes");
                let frame = &data[..4 + len];
                assert_eq!(Response::decode_on(&protocol, &frame[4..]).as_ref(), Ok(&res));
                let mut out = Cursor::new(Vec::new());
                block_on(NodeCodec.write_response(&protocol, &mut out, res)).expect("writing to memory");
                assert_eq!(out.into_inner(), frame, "re-written frame differs");
            }
            Err(e) if e.kind() == ErrorKind::InvalidData => {
                let len = declared.expect("a frame was refused from fewer than 4 bytes");
                assert!(len > MAX_RESPONSE_BYTES || Response::decode_on(&protocol, &data[4..4 + len]).is_err());
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "unexpected I/O error {e}"),
        }
    }
});
