//! The sync protocol, `/vision/sync/1` and `/vision/sync/2`: request-response messages, their byte
//! encoding and the length-prefixed codec with hard size caps. Specified in `protocols/sync.md`.
//!
//! Version 2 is version 1 plus one request and one response, `HeadersByRange` → `Headers`, for
//! headers-first sync. Nodes serve both names; requests prefer version 2. On a version-1 stream the
//! header messages do not exist: their tags are unknown to the decoder, and the encoder refuses to
//! write them (an `Unsupported` I/O error: the peer only speaks version 1).
//!
//! Every frame is `u32 LE length ‖ payload`. A reader refuses a length above the cap for its
//! direction ([`MAX_REQUEST_BYTES`], [`MAX_RESPONSE_BYTES`]) before reading or allocating the
//! payload, so a peer cannot make us buffer more than the cap. A payload that does not decode is an
//! `InvalidData` I/O error; the swarm task turns it into a penalty for the sender.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

use vision_primitives::encoding::{DecodeError, Reader, Writer};
use vision_primitives::types::{Block, BlockHeader, HEADER_LEN, Hash, MAX_BLOCK_BYTES};

/// Protocol name of version 1 (status, blocks by range and by hash).
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/vision/sync/1");
/// Protocol name of version 2: version 1 plus headers by range.
pub const PROTOCOL_V2: StreamProtocol = StreamProtocol::new("/vision/sync/2");
/// Most headers one `HeadersByRange` may ask for (a full answer is 5 + 2 000 × 161 = 322 005 bytes).
pub const MAX_HEADERS_PER_REQUEST: u32 = 2_000;
/// Largest request frame payload: a `BlocksByHash` of [`MAX_BLOCKS_PER_REQUEST`] hashes fits.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024;
/// Largest response frame payload: room for two maximum-size blocks.
pub const MAX_RESPONSE_BYTES: usize = 2 * MAX_BLOCK_BYTES + 1024;
/// Most blocks one request may ask for.
pub const MAX_BLOCKS_PER_REQUEST: u32 = 64;
/// Longest error message in an `Error` response.
pub const MAX_ERROR_MESSAGE: usize = 256;

const TAG_STATUS: u8 = 0x01;
const TAG_BY_RANGE: u8 = 0x02;
const TAG_BY_HASH: u8 = 0x03;
const TAG_HEADERS_BY_RANGE: u8 = 0x04;
const TAG_STATUS_RESPONSE: u8 = 0x81;
const TAG_BLOCKS: u8 = 0x82;
const TAG_HEADERS: u8 = 0x83;
const TAG_ERROR: u8 = 0xff;

/// A node's view of its chain, exchanged on connect and refreshed periodically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Genesis hash: peers on another network are disconnected.
    pub genesis: Hash,
    /// Canonical tip.
    pub tip: Hash,
    /// Tip height.
    pub height: u64,
    /// Cumulative work of the tip.
    pub total_work: u128,
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Our status; the answer is theirs.
    Status(Status),
    /// Canonical blocks `start .. start + count`.
    BlocksByRange {
        /// First height.
        start: u64,
        /// How many (1 ..= [`MAX_BLOCKS_PER_REQUEST`]).
        count: u32,
    },
    /// Stored blocks by hash (any chain), at most [`MAX_BLOCKS_PER_REQUEST`].
    BlocksByHash(Vec<Hash>),
    /// Canonical headers `start .. start + count` (version 2 only).
    HeadersByRange {
        /// First height.
        start: u64,
        /// How many (1 ..= [`MAX_HEADERS_PER_REQUEST`]).
        count: u32,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorCode {
    /// The request breaks the protocol's rules (e.g. count out of range).
    InvalidRequest = 1,
    /// Too many requests; slow down.
    RateLimited = 2,
    /// Another genesis: the peers are on different networks.
    WrongNetwork = 3,
    /// The responder failed.
    ServerError = 4,
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The responder's status.
    Status(Status),
    /// Blocks in ascending height (range) or request order (hash); may be fewer than asked.
    Blocks(Vec<Block>),
    /// The request was refused.
    Error {
        /// Why.
        code: ErrorCode,
        /// Human-readable detail (at most [`MAX_ERROR_MESSAGE`] bytes).
        message: String,
    },
    /// Canonical headers in ascending height from the requested start, each the parent of the
    /// next; may be fewer than asked (version 2 only).
    Headers(Vec<BlockHeader>),
}

fn write_status(w: &mut Writer, s: &Status) {
    w.bytes(&s.genesis.0);
    w.bytes(&s.tip.0);
    w.u64(s.height);
    w.u128(s.total_work);
}

fn read_status(r: &mut Reader<'_>) -> Result<Status, DecodeError> {
    Ok(Status { genesis: Hash(r.array()?), tip: Hash(r.array()?), height: r.u64()?, total_work: r.u128()? })
}

fn bad_tag(what: &'static str, tag: u8) -> DecodeError {
    DecodeError::UnknownVersion { what, version: tag }
}

impl Request {
    /// Payload encoding (without the length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Request::Status(s) => {
                w.u8(TAG_STATUS);
                write_status(&mut w, s);
            }
            Request::BlocksByRange { start, count } => {
                w.u8(TAG_BY_RANGE);
                w.u64(*start);
                w.u32(*count);
            }
            Request::BlocksByHash(hashes) => {
                w.u8(TAG_BY_HASH);
                w.u32(hashes.len() as u32);
                for h in hashes {
                    w.bytes(&h.0);
                }
            }
            Request::HeadersByRange { start, count } => {
                w.u8(TAG_HEADERS_BY_RANGE);
                w.u64(*start);
                w.u32(*count);
            }
        }
        w.finish()
    }

    /// Whether the message exists only in version 2.
    pub fn is_v2_only(&self) -> bool {
        matches!(self, Request::HeadersByRange { .. })
    }

    /// Decodes a payload received on `protocol`: on version 1 the version-2 tags are unknown.
    pub fn decode_on(protocol: &StreamProtocol, bytes: &[u8]) -> Result<Self, DecodeError> {
        if *protocol != PROTOCOL_V2 && bytes.first() == Some(&TAG_HEADERS_BY_RANGE) {
            return Err(bad_tag("sync request tag", TAG_HEADERS_BY_RANGE));
        }
        Self::decode(bytes)
    }

    /// Decodes a payload; counts above [`MAX_BLOCKS_PER_REQUEST`] and zero counts are refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let req = match r.u8()? {
            TAG_STATUS => Request::Status(read_status(&mut r)?),
            TAG_BY_RANGE => {
                let start = r.u64()?;
                let count = r.u32()?;
                check_count(count)?;
                Request::BlocksByRange { start, count }
            }
            TAG_BY_HASH => {
                let count = r.u32()?;
                check_count(count)?;
                let mut hashes = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    hashes.push(Hash(r.array()?));
                }
                Request::BlocksByHash(hashes)
            }
            TAG_HEADERS_BY_RANGE => {
                let start = r.u64()?;
                let count = r.u32()?;
                if count == 0 || count > MAX_HEADERS_PER_REQUEST {
                    return Err(DecodeError::TooLarge {
                        what: "requested header count (must be 1..=2000)",
                        got: u64::from(count),
                        cap: u64::from(MAX_HEADERS_PER_REQUEST),
                    });
                }
                Request::HeadersByRange { start, count }
            }
            tag => return Err(bad_tag("sync request tag", tag)),
        };
        r.finish()?;
        Ok(req)
    }
}

fn check_count(count: u32) -> Result<(), DecodeError> {
    if count == 0 || count > MAX_BLOCKS_PER_REQUEST {
        return Err(DecodeError::TooLarge {
            what: "requested block count (must be 1..=64)",
            got: u64::from(count),
            cap: u64::from(MAX_BLOCKS_PER_REQUEST),
        });
    }
    Ok(())
}

impl Response {
    /// Payload encoding (without the length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Response::Status(s) => {
                w.u8(TAG_STATUS_RESPONSE);
                write_status(&mut w, s);
            }
            Response::Blocks(blocks) => {
                w.u8(TAG_BLOCKS);
                w.u32(blocks.len() as u32);
                for b in blocks {
                    let bytes = b.encode();
                    w.u32(bytes.len() as u32);
                    w.bytes(&bytes);
                }
            }
            Response::Error { code, message } => {
                w.u8(TAG_ERROR);
                w.u8(*code as u8);
                let mut end = message.len().min(MAX_ERROR_MESSAGE);
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                w.bytes(&(end as u16).to_le_bytes());
                w.bytes(&message.as_bytes()[..end]);
            }
            Response::Headers(headers) => {
                w.u8(TAG_HEADERS);
                w.u32(headers.len() as u32);
                for h in headers {
                    h.write(&mut w);
                }
            }
        }
        w.finish()
    }

    /// Whether the message exists only in version 2.
    pub fn is_v2_only(&self) -> bool {
        matches!(self, Response::Headers(_))
    }

    /// Decodes a payload received on `protocol`: on version 1 the version-2 tags are unknown.
    pub fn decode_on(protocol: &StreamProtocol, bytes: &[u8]) -> Result<Self, DecodeError> {
        if *protocol != PROTOCOL_V2 && bytes.first() == Some(&TAG_HEADERS) {
            return Err(bad_tag("sync response tag", TAG_HEADERS));
        }
        Self::decode(bytes)
    }

    /// Decodes a payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let res = match r.u8()? {
            TAG_STATUS_RESPONSE => Response::Status(read_status(&mut r)?),
            TAG_BLOCKS => {
                let count = r.u32()?;
                check_count(count).or_else(|e| if count == 0 { Ok(()) } else { Err(e) })?;
                let mut blocks = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    blocks.push(Block::decode(r.length_prefixed(MAX_BLOCK_BYTES, "block length")?)?);
                }
                Response::Blocks(blocks)
            }
            TAG_ERROR => {
                let code = match r.u8()? {
                    1 => ErrorCode::InvalidRequest,
                    2 => ErrorCode::RateLimited,
                    3 => ErrorCode::WrongNetwork,
                    4 => ErrorCode::ServerError,
                    c => return Err(bad_tag("sync error code", c)),
                };
                let len = u16::from_le_bytes(r.array()?) as usize;
                if len > MAX_ERROR_MESSAGE {
                    return Err(DecodeError::TooLarge {
                        what: "error message",
                        got: len as u64,
                        cap: MAX_ERROR_MESSAGE as u64,
                    });
                }
                let message = String::from_utf8(r.take(len)?.to_vec()).map_err(|_| DecodeError::TooLarge {
                    what: "error message (not UTF-8)",
                    got: len as u64,
                    cap: MAX_ERROR_MESSAGE as u64,
                })?;
                Response::Error { code, message }
            }
            TAG_HEADERS => {
                let count = r.u32()?;
                if count > MAX_HEADERS_PER_REQUEST {
                    return Err(DecodeError::TooLarge {
                        what: "header count (must be 0..=2000)",
                        got: u64::from(count),
                        cap: u64::from(MAX_HEADERS_PER_REQUEST),
                    });
                }
                let bytes = r.take(count as usize * HEADER_LEN)?;
                let mut hr = Reader::new(bytes);
                let mut headers = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    headers.push(BlockHeader::read(&mut hr)?);
                }
                Response::Headers(headers)
            }
            tag => return Err(bad_tag("sync response tag", tag)),
        };
        r.finish()?;
        Ok(res)
    }
}

/// Reads one length-prefixed frame of at most `cap` payload bytes.
pub async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, cap: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the cap of {cap}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Writes one length-prefixed frame.
pub async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, payload: &[u8]) -> io::Result<()> {
    io.write_all(&(payload.len() as u32).to_le_bytes()).await?;
    io.write_all(payload).await?;
    io.close().await
}

fn invalid(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// A version-2 message on a stream that negotiated an older version: the peer does not speak it.
fn unsupported(p: &StreamProtocol) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, format!("headers are not part of {p}"))
}

/// The request-response codec of `/vision/sync/1`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Codec;

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        Request::decode_on(p, &read_frame(io, MAX_REQUEST_BYTES).await?).map_err(invalid)
    }

    async fn read_response<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        Response::decode_on(p, &read_frame(io, MAX_RESPONSE_BYTES).await?).map_err(invalid)
    }

    async fn write_request<T>(&mut self, p: &StreamProtocol, io: &mut T, req: Request) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if req.is_v2_only() && *p != PROTOCOL_V2 {
            return Err(unsupported(p));
        }
        write_frame(io, &req.encode()).await
    }

    async fn write_response<T>(&mut self, p: &StreamProtocol, io: &mut T, res: Response) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if res.is_v2_only() && *p != PROTOCOL_V2 {
            return Err(unsupported(p));
        }
        write_frame(io, &res.encode()).await
    }
}

/// A codec that sends raw bytes as requests on the same protocol (test peers use it to send
/// garbage and oversized frames; it reads responses as raw frames).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl libp2p::request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_RESPONSE_BYTES).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_RESPONSE_BYTES).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        // Raw: the caller controls the length prefix too.
        io.write_all(&req).await?;
        io.close().await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res).await
    }
}

/// Why an inbound request frame was refused: its length prefix is above [`MAX_REQUEST_BYTES`] or its
/// payload does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// The codec the node's swarm runs: [`Codec`]'s frames, except that a refused inbound request is
/// handed up as `Err(Refused)` instead of failing the stream. libp2p's request-response drops a stream
/// whose request cannot be read without telling the behaviour which peer sent it, so with [`Codec`]
/// garbage and oversized frames would cost their sender nothing; this way the swarm task answers
/// `InvalidRequest` and penalises the sender. Outbound requests are always `Ok`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeCodec;

impl libp2p::request_response::Codec for NodeCodec {
    type Protocol = StreamProtocol;
    type Request = Result<Request, Refused>;
    type Response = Response;

    async fn read_request<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<Self::Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        match <Codec as libp2p::request_response::Codec>::read_request(&mut Codec, p, io).await {
            Ok(req) => Ok(Ok(req)),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(Err(Refused(e.to_string()))),
            Err(e) => Err(e),
        }
    }

    async fn read_response<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        <Codec as libp2p::request_response::Codec>::read_response(&mut Codec, p, io).await
    }

    async fn write_request<T>(&mut self, p: &StreamProtocol, io: &mut T, req: Self::Request) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            Ok(req) => <Codec as libp2p::request_response::Codec>::write_request(&mut Codec, p, io, req).await,
            Err(Refused(why)) => {
                Err(io::Error::new(io::ErrorKind::InvalidInput, format!("a refused request is not sent: {why}")))
            }
        }
    }

    async fn write_response<T>(&mut self, p: &StreamProtocol, io: &mut T, res: Response) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        <Codec as libp2p::request_response::Codec>::write_response(&mut Codec, p, io, res).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status() -> Status {
        Status { genesis: Hash([1; 32]), tip: Hash([2; 32]), height: 7, total_work: 1 << 100 }
    }

    proptest! {
        #[test]
        fn requests_round_trip(start in any::<u64>(), count in 1u32..=64, n in 1usize..=64, seed in any::<u8>()) {
            for req in [
                Request::Status(status()),
                Request::BlocksByRange { start, count },
                Request::BlocksByHash((0..n).map(|i| Hash([seed.wrapping_add(i as u8); 32])).collect()),
                Request::HeadersByRange { start, count: count * 31 },
            ] {
                let bytes = req.encode();
                prop_assert!(bytes.len() <= MAX_REQUEST_BYTES);
                prop_assert_eq!(Request::decode(&bytes).unwrap(), req);
            }
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
        }
    }

    #[test]
    fn responses_round_trip() {
        let g = vision_primitives::genesis::Genesis::devnet().block();
        for res in [
            Response::Status(status()),
            Response::Blocks(vec![]),
            Response::Blocks(vec![g.clone(), g]),
            Response::Error { code: ErrorCode::RateLimited, message: "slow down".into() },
            Response::Headers(vec![]),
        ] {
            assert_eq!(Response::decode(&res.encode()).unwrap(), res);
        }
    }

    proptest! {
        #[test]
        fn headers_round_trip(n in 0usize..=40, height in any::<u64>(), nonce in any::<u64>()) {
            let mut h = vision_primitives::genesis::Genesis::devnet().block().header;
            h.height = height;
            h.nonce = nonce;
            let res = Response::Headers(vec![h; n]);
            let bytes = res.encode();
            prop_assert_eq!(bytes.len(), 5 + n * HEADER_LEN);
            prop_assert_eq!(Response::decode(&bytes).unwrap(), res.clone());
            prop_assert_eq!(Response::decode_on(&PROTOCOL_V2, &bytes).unwrap(), res);
        }
    }

    #[test]
    fn a_full_headers_answer_fits_the_response_cap() {
        let h = vision_primitives::genesis::Genesis::devnet().block().header;
        let res = Response::Headers(vec![h; MAX_HEADERS_PER_REQUEST as usize]);
        assert!(res.encode().len() <= MAX_RESPONSE_BYTES);
        let mut over = res.encode();
        over[1..5].copy_from_slice(&(MAX_HEADERS_PER_REQUEST + 1).to_le_bytes());
        assert!(matches!(Response::decode(&over), Err(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn header_messages_do_not_exist_on_version_1() {
        let req = Request::HeadersByRange { start: 1, count: 10 }.encode();
        assert!(Request::decode_on(&PROTOCOL_V2, &req).is_ok());
        assert_eq!(
            Request::decode_on(&PROTOCOL, &req),
            Err(DecodeError::UnknownVersion { what: "sync request tag", version: 4 })
        );
        let res = Response::Headers(vec![]).encode();
        assert!(Response::decode_on(&PROTOCOL, &res).is_err());
        let mut io = futures::io::Cursor::new(Vec::new());
        let err = futures::executor::block_on(<Codec as libp2p::request_response::Codec>::write_request(
            &mut Codec,
            &PROTOCOL,
            &mut io,
            Request::HeadersByRange { start: 1, count: 1 },
        ))
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(io.into_inner().is_empty(), "nothing written");
    }

    #[test]
    fn counts_out_of_range_are_refused() {
        let zero = Request::BlocksByRange { start: 1, count: 0 }.encode();
        assert!(Request::decode(&zero).is_err());
        let big = Request::BlocksByRange { start: 1, count: 65 }.encode();
        assert!(Request::decode(&big).is_err());
        assert!(Request::decode(&Request::HeadersByRange { start: 1, count: 0 }.encode()).is_err());
        assert!(Request::decode(&Request::HeadersByRange { start: 1, count: 2001 }.encode()).is_err());
        assert!(Request::decode(&[0x77]).is_err());
    }

    #[test]
    fn oversized_frames_are_refused_before_reading() {
        let mut frame = ((MAX_REQUEST_BYTES + 1) as u32).to_le_bytes().to_vec();
        frame.extend(vec![0u8; 16]);
        let mut io = futures::io::Cursor::new(frame);
        let err = futures::executor::block_on(read_frame(&mut io, MAX_REQUEST_BYTES)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
