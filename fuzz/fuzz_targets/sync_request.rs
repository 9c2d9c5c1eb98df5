//! Feeds arbitrary bytes to the inbound side of `/vision/sync/1` and `/vision/sync/2` requests, two ways:
//! 1. as a payload to `Request::decode`: on `Ok`, `encode` gives back exactly the input;
//! 2. as a raw stream to the codec the node's swarm runs (`NodeCodec::read_request`, i.e.
//!    `read_frame` with the `MAX_REQUEST_BYTES` cap, then `Request::decode_on` the stream's protocol), via
//!    `futures::executor::block_on` on a `futures::io::Cursor`. Asserts that its verdict agrees with
//!    the frame's length prefix and a direct decode of the payload: a decoded request equals
//!    `Request::decode(payload)` and writing it back gives the same frame; a refused frame is
//!    oversized or does not decode; an I/O error is only a stream that ends early.
#![no_main]

use std::io::ErrorKind;

use futures::executor::block_on;
use futures::io::Cursor;
use libfuzzer_sys::fuzz_target;
use libp2p::request_response::Codec as _;
use vision_node::p2p::sync::{MAX_REQUEST_BYTES, NodeCodec, PROTOCOL, PROTOCOL_V2, Refused, Request};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::decode(data) {
        assert_eq!(req.encode(), data, "request encoding is not canonical");
    }

    let declared = (data.len() >= 4).then(|| u32::from_le_bytes(data[..4].try_into().unwrap()) as usize);
    // On both protocol versions: the header messages exist only on the second.
    for protocol in [PROTOCOL, PROTOCOL_V2] {
        let read = block_on(NodeCodec.read_request(&protocol, &mut Cursor::new(data)));
        match read {
            Ok(Ok(req)) => {
                let len = declared.expect("a request was read from fewer than 4 bytes");
                assert!(len <= MAX_REQUEST_BYTES);
                let frame = &data[..4 + len];
                assert_eq!(Request::decode_on(&protocol, &frame[4..]).as_ref(), Ok(&req));
                let mut out = Cursor::new(Vec::new());
                block_on(NodeCodec.write_request(&protocol, &mut out, Ok(req))).expect("writing to memory");
                assert_eq!(out.into_inner(), frame, "re-written frame differs");
            }
            Ok(Err(Refused(why))) => {
                let len = declared.expect("a frame was refused from fewer than 4 bytes");
                assert!(
                    len > MAX_REQUEST_BYTES || Request::decode_on(&protocol, &data[4..4 + len]).is_err(),
                    "frame refused ({why}) although it is within the cap and decodes"
                );
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "unexpected I/O error {e}");
                match declared {
                    None => {}
                    Some(len) => assert!(len <= MAX_REQUEST_BYTES && data.len() < 4 + len, "EOF on a complete frame"),
                }
            }
        }
    }
});
