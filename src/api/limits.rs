//! Limits of the public API under load (issue #15): a token bucket per client address, a cap on
//! requests in flight, a timeout per request, and a small pool of store readers off the async
//! runtime.
//!
//! What a request meets, in order (outermost first; `rate_limit` and `in_flight_and_timeout` below):
//!
//! 1. **Per-client rate** ([`RateLimiter`]): a token bucket per source address (IPv4 address,
//!    IPv6 /64), `--api-rate-per-ip` tokens a second up to `--api-burst-per-ip`. Out of tokens: 429
//!    `rate_limited` with `Retry-After`, before any other work. 127.0.0.1 and ::1 (the host's own
//!    processes: the wallet, the CLI, a local reverse proxy) are not limited, as for inbound peer
//!    connections (`p2p::ip_limits`). At most [`MAX_RATE_CLIENTS`] clients are tracked; while the
//!    table is full of active clients, new ones share one bucket.
//! 2. **In flight** (`--api-max-in-flight`): requests past the rate check being served at once,
//!    over every client; one more is answered 503 `busy` with `Retry-After` at once (load is shed,
//!    never queued without bound).
//! 3. **Timeout** (`--api-timeout-secs`): a request not answered in time gets 503 `timeout`.
//!
//! The WebSocket path only meets the rate check: its connections are long-lived and capped by
//! `ws::MAX_CLIENTS`.
//!
//! Store reads ([`super::AppState::read`]) run on tokio's blocking pool, never on the runtime
//! threads the swarm task and the connections share, at most `--api-store-readers` at once
//! ([`API_READERS`]); a read abandoned by its timeout keeps its reader until it ends, so abandoned
//! reads cannot pile up past the cap either.
//!
//! The admin API (its own listener) meets none of these: a flood of the public API cannot lock the
//! operator out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::Semaphore;

use super::ApiError;
use crate::bounds::{Bounds, Resource};

/// Default sustained requests per second of one client address.
pub const DEFAULT_RATE_PER_IP: u32 = 50;
/// Default burst of one client address (requests it may send at once after being idle).
pub const DEFAULT_BURST_PER_IP: u32 = 100;
/// Default cap of public requests being served at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 128;
/// Default time a public request may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default store reads at once (threads of the blocking pool the API may hold for reads).
pub const DEFAULT_STORE_READERS: usize = 4;
/// Most client addresses whose buckets are kept (about 64 bytes each).
pub const MAX_RATE_CLIENTS: usize = 16_384;
/// Oldest a full table gets before it is swept of idle clients again.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Public requests being served, in the resource registry.
pub const API_IN_FLIGHT: Resource =
    Resource::new("api_in_flight", "api::limits::DEFAULT_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT);
/// Store reads of the API running at once, in the resource registry.
pub const API_READERS: Resource =
    Resource::new("api_readers", "api::limits::DEFAULT_STORE_READERS", DEFAULT_STORE_READERS);
/// Client addresses tracked by the rate limiter, in the resource registry.
pub const API_RATE_CLIENTS: Resource =
    Resource::new("api_rate_clients", "api::limits::MAX_RATE_CLIENTS", MAX_RATE_CLIENTS);

/// The API's resources, for the registry.
pub const RESOURCES: [Resource; 3] = [API_IN_FLIGHT, API_READERS, API_RATE_CLIENTS];

/// The public API's limits (flags `--api-rate-per-ip`, `--api-burst-per-ip`,
/// `--api-max-in-flight`, `--api-timeout-secs`, `--api-store-readers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sustained requests per second of one client address.
    pub rate_per_ip: u32,
    /// Requests one client address may send at once.
    pub burst_per_ip: u32,
    /// Requests served at once, over all clients.
    pub max_in_flight: usize,
    /// Longest time a request may take.
    pub timeout: Duration,
    /// Store reads at once.
    pub store_readers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rate_per_ip: DEFAULT_RATE_PER_IP,
            burst_per_ip: DEFAULT_BURST_PER_IP,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            timeout: DEFAULT_TIMEOUT,
            store_readers: DEFAULT_STORE_READERS,
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Reason {
    /// Over its client's rate (429).
    RateLimited,
    /// Too many requests in flight (503).
    Busy,
    /// Not answered in time (503).
    Timeout,
}

/// Label of [`Metrics::refused`].
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: Reason,
}

/// The API's metrics, under `vision_api_`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Public requests refused by a limit, by reason.
    pub refused: Family<ReasonLabels, Counter>,
}

impl Metrics {
    /// Registers the metrics in `registry` (give it the `vision_api` prefix).
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Arc<Self> {
        let m = Self::default();
        registry.register("requests_refused", "Public API requests refused by a limit, by reason", m.refused.clone());
        Arc::new(m)
    }

    fn count(&self, reason: Reason) {
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets by client address.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    cap: usize,
    inner: Mutex<Clients>,
}

#[derive(Debug)]
struct Clients {
    buckets: HashMap<IpAddr, Bucket>,
    /// Shared by new clients while the table is full.
    overflow: Bucket,
    last_sweep: Option<Instant>,
}

/// The key of a client: its IPv4 address, or the /64 of its IPv6 address (one host's usual
/// allocation); an IPv4-mapped IPv6 address is its IPv4 address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Whether `ip` is the host itself on the loopback address (not rate limited).
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => {
            v6 == std::net::Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    }
}

impl RateLimiter {
    /// `rate` tokens a second up to `burst`, for at most `cap` clients.
    pub fn new(rate: u32, burst: u32, cap: usize) -> Self {
        let now = Instant::now();
        RateLimiter {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            cap: cap.max(1),
            inner: Mutex::new(Clients {
                buckets: HashMap::new(),
                overflow: Bucket { tokens: f64::from(burst.max(1)), last: now },
                last_sweep: None,
            }),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let dt = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + dt * self.rate).min(self.burst);
        b.last = now;
    }

    /// Takes a token of `ip`'s bucket at `now`; `Err(wait)` when it has none, with the time until
    /// it has one.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = client_key(ip);
        let mut c = self.inner.lock();
        if !c.buckets.contains_key(&key) && c.buckets.len() >= self.cap {
            // Forget the clients whose bucket is full again (idle for burst / rate seconds): they
            // lose nothing. At most once a second, so that a churn of addresses cannot make every
            // request walk the table.
            if c.last_sweep.is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_INTERVAL) {
                c.last_sweep = Some(now);
                let idle = Duration::from_secs_f64(self.burst / self.rate);
                c.buckets.retain(|_, b| now.saturating_duration_since(b.last) < idle);
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        let bucket = if c.buckets.contains_key(&key) || c.buckets.len() < self.cap {
            c.buckets.entry(key).or_insert(Bucket { tokens: burst, last: now })
        } else {
            &mut c.overflow
        };
        let mut b = *bucket;
        self.refill(&mut b, now);
        let result = if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        };
        *bucket = b;
        result
    }

    /// Client addresses tracked now.
    pub fn clients(&self) -> usize {
        self.inner.lock().buckets.len()
    }
}

/// The limits in force on one public listener, shared by its requests.
#[derive(Debug)]
pub struct Gate {
    limits: Limits,
    rate: RateLimiter,
    in_flight: Arc<Semaphore>,
    readers: Arc<Semaphore>,
    bounds: Arc<Bounds>,
    metrics: Arc<Metrics>,
}

impl Gate {
    /// The gate for `limits`; registers the caps in `bounds`.
    pub fn new(limits: Limits, bounds: Arc<Bounds>, metrics: Arc<Metrics>) -> Arc<Self> {
        let limits =
            Limits { max_in_flight: limits.max_in_flight.max(1), store_readers: limits.store_readers.max(1), ..limits };
        bounds.set_cap(API_IN_FLIGHT, limits.max_in_flight);
        bounds.set_cap(API_READERS, limits.store_readers);
        bounds.register(API_RATE_CLIENTS);
        Arc::new(Gate {
            rate: RateLimiter::new(limits.rate_per_ip, limits.burst_per_ip, MAX_RATE_CLIENTS),
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            readers: Arc::new(Semaphore::new(limits.store_readers)),
            limits,
            bounds,
            metrics,
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn refuse(&self, reason: Reason) {
        self.metrics.count(reason);
    }

    /// Runs `f` on the blocking pool once one of the store readers is free, and returns what it
    /// returned. The reader stays taken until `f` ends, even when the request waiting for it has
    /// timed out.
    pub(super) async fn blocking_read<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit =
            self.readers.clone().acquire_owned().await.map_err(|_| ApiError::internal("API readers closed"))?;
        self.bounds.record(API_READERS, self.limits.store_readers - self.readers.available_permits());
        tokio::task::spawn_blocking(move || {
            let _reader = permit;
            f()
        })
        .await
        .map_err(|e| ApiError::internal(format!("store read failed: {e}")))?
    }
}

/// The per-client rate check, on every public request (the WebSocket upgrade too).
pub(super) async fn rate_limit(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Some(ip) = ip.filter(|ip| !is_local(*ip)) {
        let checked = gate.rate.check(ip, Instant::now());
        gate.bounds.record(API_RATE_CLIENTS, gate.rate.clients());
        if let Err(wait) = checked {
            gate.refuse(Reason::RateLimited);
            let l = gate.limits;
            return ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "over this address's request rate ({} a second, bursts of {}); retry after the Retry-After seconds",
                    l.rate_per_ip, l.burst_per_ip
                ),
            )
            .retry_after(wait.as_secs_f64().ceil() as u64)
            .into_response();
        }
    }
    next.run(req).await
}

/// The in-flight cap and the timeout, on every public request but the WebSocket's.
pub(super) async fn in_flight_and_timeout(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let Ok(permit) = gate.in_flight.clone().try_acquire_owned() else {
        gate.refuse(Reason::Busy);
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "the node is serving {} requests already; retry after the Retry-After seconds",
                gate.limits.max_in_flight
            ),
        )
        .retry_after(1)
        .into_response();
    };
    gate.bounds.record(API_IN_FLIGHT, gate.limits.max_in_flight - gate.in_flight.available_permits());
    let timeout = gate.limits.timeout;
    let res = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            gate.refuse(Reason::Timeout);
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "not answered within {} s (--api-timeout-secs); the node is loaded, retry later",
                    timeout.as_secs_f64()
                ),
            )
            .retry_after(1)
            .into_response()
        }
    };
    drop(permit);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let r = RateLimiter::new(10, 5, 100);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(r.check(ip, t0).is_ok());
        }
        let wait = r.check(ip, t0).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "{wait:?}");
        // Another client has its own bucket.
        assert!(r.check("10.0.0.2".parse().unwrap(), t0).is_ok());
        // 100 ms later one more token.
        let t1 = t0 + Duration::from_millis(100);
        assert!(r.check(ip, t1).is_ok());
        assert!(r.check(ip, t1).is_err());
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let r = RateLimiter::new(1, 1, 100);
        let t0 = Instant::now();
        assert!(r.check("2001:db8:1:2::1".parse().unwrap(), t0).is_ok());
        assert!(r.check("2001:db8:1:2::ffff".parse().unwrap(), t0).is_err(), "same /64, same bucket");
        assert!(r.check("2001:db8:1:3::1".parse().unwrap(), t0).is_ok());
        assert_eq!(client_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
        assert!(is_local("127.0.0.1".parse().unwrap()) && is_local("::1".parse().unwrap()));
        assert!(!is_local("127.0.0.2".parse().unwrap()));
    }

    /// A full table of active clients: new ones share one bucket, the table never grows past its
    /// cap; once the old clients are idle they are swept and new ones get buckets again.
    #[test]
    fn full_table_shares_an_overflow_bucket() {
        let r = RateLimiter::new(1, 2, 3);
        let t0 = Instant::now();
        for i in 1..=3 {
            assert!(r.check(IpAddr::from([10, 0, 0, i]), t0).is_ok());
        }
        assert_eq!(r.clients(), 3);
        assert!(r.check(IpAddr::from([10, 0, 1, 1]), t0).is_ok());
        assert!(r.check(IpAddr::from([10, 0, 1, 2]), t0).is_ok());
        assert!(r.check(IpAddr::from([10, 0, 1, 3]), t0).is_err(), "the overflow bucket is spent");
        assert_eq!(r.clients(), 3);
        let later = t0 + Duration::from_secs(5);
        assert!(r.check(IpAddr::from([10, 0, 1, 3]), later).is_ok());
        assert_eq!(r.clients(), 1, "idle clients swept");
    }
}
