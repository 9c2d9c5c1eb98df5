//! `vision-node bench load`: an end-to-end load generator.
//!
//! Two modes:
//!
//! 1. `--write-genesis FILE --accounts N` writes a genesis that funds N deterministic bench accounts
//!    (key `i` is `BLAKE3("vision bench account" || i as u32 LE)`; public, like the devnet keys) and
//!    exits. The cluster under test runs on that genesis.
//! 2. `--api URL[,URL..] (--keys-from-genesis FILE | --accounts N) --tps R --duration S` derives the
//!    same keys, reads each account's next nonce from the node it will send to, **pre-signs** all
//!    `R × S` transfers (before the clock starts), then sends them on a fixed schedule (transfer `k`
//!    is due at `k / R` seconds) from `--senders` threads, each with one keep-alive HTTP connection,
//!    spread over the API URLs. Every account is bound to one sender thread and one node, so its
//!    nonces arrive in order. A poller thread scans every new canonical block of the first URL
//!    (`GET /v1/blocks/{height}`, following reorganisations) for the transaction ids, so inclusion is
//!    found without per-transaction polling. After the send window the poller keeps going until
//!    every accepted transfer is included or `--drain-timeout` passes.
//!
//! By default every transfer is one `POST /v1/txs`. With `--batch B` (B > 1) each sender thread
//! sends its transfers in groups of B through `POST /v1/txs/batch`, each group when its last transfer
//! is due (so a transfer waits at most B / (rate per thread) for its group), and counts every
//! transfer's own result.
//!
//! The report is a markdown table: offered (sent) tx/s, accepted tx/s, rejections by the API's error
//! code, included tx/s (during the send window and up to the last inclusion), inclusion latency
//! (send → first seen in a canonical block; the poll period adds up to `--poll-ms`), submit latency,
//! blocks, and the CPU used over the send window by the machine, this process, the `--pid` processes
//! and everything else. A `RESULT key=value ...` line follows for scripts.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use rayon::prelude::*;
use serde::Deserialize;

use super::{ApiUrl, BenchError, CpuWindow, HttpConn, Millis, Table, fetch_status, fmt_cores};
use vision_node::chain::genesis::{Allocation, Genesis, UNITS_PER_VIS};
use vision_node::chain::types::{Address, Hash, TRANSFER_TX_LEN, Transaction, TxKind};
use vision_node::wallet::Keypair;

/// Most transfers one run pre-signs and keeps in memory (~215 bytes each).
pub const MAX_PLANNED_TXS: u64 = 3_000_000;
/// Most bench accounts.
pub const MAX_ACCOUNTS: u32 = 1_000_000;
/// Most sender threads (each holds one connection).
pub const MAX_SENDERS: usize = 1024;
/// Most scanned blocks the poller keeps (for reorganisations and the block statistics).
pub const MAX_SCANNED_BLOCKS: usize = 100_000;
/// Amount of every bench transfer, in base units.
pub const TRANSFER_AMOUNT: u128 = 1;

/// Flags of `vision-node bench load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Node API URLs (comma-separated or repeated); accounts are spread over them.
    #[arg(long, value_name = "URL[,URL..]", value_delimiter = ',', default_value = "http://127.0.0.1:7070")]
    pub api: Vec<String>,
    /// Write a genesis funding --accounts bench accounts to FILE and exit (the nodes then run on it).
    #[arg(long, value_name = "FILE")]
    pub write_genesis: Option<PathBuf>,
    /// Send from the bench accounts this genesis file funds (the genesis the nodes run).
    #[arg(long, value_name = "FILE", conflicts_with = "write_genesis")]
    pub keys_from_genesis: Option<PathBuf>,
    /// Bench accounts: how many to fund (--write-genesis) or to send from (bench keys 0..N).
    #[arg(long, value_name = "N")]
    pub accounts: Option<u32>,
    /// Target transfers per second, over all URLs.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub tps: u32,
    /// Length of the send window in seconds.
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub duration: u64,
    /// Sender threads, each with one keep-alive connection.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub senders: usize,
    /// Transfers per request: 1 sends each with `POST /v1/txs`; more sends groups of this many with
    /// `POST /v1/txs/batch` (at most `api::MAX_BATCH_TXS`).
    #[arg(long, value_name = "B", default_value_t = 1)]
    pub batch: usize,
    /// After the send window, wait at most this many seconds for the accepted transfers' inclusion.
    #[arg(long, value_name = "S", default_value_t = 30)]
    pub drain_timeout: u64,
    /// How often the poller checks for new blocks, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub poll_ms: u64,
    /// Fee per transfer in base units [default: the node's current entry fee].
    #[arg(long, value_name = "N")]
    pub fee: Option<u128>,
    /// Processes (the nodes, on this machine) whose CPU (per thread name) and RSS to report,
    /// comma-separated.
    #[arg(long, value_name = "PID[,PID..]", value_delimiter = ',')]
    pub pid: Vec<String>,
    /// The nodes' metrics URLs (`http://HOST:PORT`, serving /metrics), comma-separated: the report
    /// adds what each node did during the send window (blocks, import times, template rebuilds).
    #[arg(long, value_name = "URL[,URL..]", value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// --write-genesis: chain id.
    #[arg(long, default_value_t = 4242)]
    pub chain_id: u32,
    /// --write-genesis: target block time in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    pub target_block_time_ms: u64,
    /// --write-genesis: difficulty of the first block.
    #[arg(long, default_value_t = 1 << 16)]
    pub initial_difficulty: u64,
    /// --write-genesis: balance of each bench account in base units.
    #[arg(long, default_value_t = 1_000_000 * UNITS_PER_VIS)]
    pub balance: u128,
    /// --write-genesis: minimum fee in base units.
    #[arg(long, default_value_t = 1)]
    pub min_fee: u128,
}

/// Bench account `i`: secret key `BLAKE3("vision bench account" || i as u32 LE)`. Public keys for
/// benchmarks only; never fund them where value is at stake.
pub fn bench_keypair(i: u32) -> Keypair {
    let mut h = blake3::Hasher::new();
    h.update(b"vision bench account");
    h.update(&i.to_le_bytes());
    Keypair::from_seed(h.finalize().as_bytes())
}

/// A genesis funding bench accounts `0..accounts` with `balance` each.
pub fn bench_genesis(args: &LoadArgs, accounts: u32) -> Genesis {
    let allocations: Vec<Allocation> = (0..accounts)
        .into_par_iter()
        .map(|i| Allocation { address: bench_keypair(i).address(), balance: args.balance })
        .collect();
    Genesis {
        chain_id: args.chain_id,
        timestamp_ms: vision_node::chain::consensus::now_ms(),
        initial_difficulty: args.initial_difficulty,
        target_block_time_ms: args.target_block_time_ms,
        block_reward: 50 * UNITS_PER_VIS,
        min_fee: args.min_fee,
        allocations,
    }
}

/// Runs `bench load`.
pub fn run(args: LoadArgs) -> Result<(), BenchError> {
    if let Some(out) = &args.write_genesis {
        return write_genesis(&args, out);
    }
    if args.tps == 0 || args.duration == 0 {
        return Err(BenchError::Usage("--tps and --duration must be at least 1".into()));
    }
    if args.senders == 0 || args.senders > MAX_SENDERS {
        return Err(BenchError::Usage(format!("--senders must be 1..={MAX_SENDERS}")));
    }
    if args.batch == 0 || args.batch > vision_node::api::MAX_BATCH_TXS {
        return Err(BenchError::Usage(format!("--batch must be 1..={}", vision_node::api::MAX_BATCH_TXS)));
    }
    let total = u64::from(args.tps) * args.duration;
    if total > MAX_PLANNED_TXS {
        return Err(BenchError::Usage(format!(
            "--tps × --duration = {total} transfers; at most {MAX_PLANNED_TXS} are pre-signed per run"
        )));
    }
    if args.keys_from_genesis.is_none() && args.accounts.is_none() {
        return Err(no_accounts());
    }
    let urls = ApiUrl::parse_list(&args.api)?;
    let metrics_urls = if args.metrics.is_empty() { Vec::new() } else { ApiUrl::parse_list(&args.metrics)? };
    let pids = super::parse_pids(&args.pid)?;
    if !pids.is_empty() && !urls.iter().all(ApiUrl::is_loopback) {
        return Err(BenchError::Usage("--pid only makes sense for nodes on this machine (loopback --api)".into()));
    }

    // The nodes: reachable, on one network.
    let mut statuses = Vec::new();
    for u in &urls {
        statuses.push(fetch_status(&mut HttpConn::new(u))?);
    }
    let genesis_hash = statuses[0].genesis_hash;
    if let Some((u, s)) = urls.iter().zip(&statuses).find(|(_, s)| s.genesis_hash != genesis_hash) {
        return Err(BenchError::Setup(format!(
            "{} runs genesis {} but {} runs {genesis_hash}: all --api nodes must be on one network",
            u.text, s.genesis_hash, urls[0].text
        )));
    }
    let chain_id = statuses[0].chain_id;

    // The accounts.
    let keys = select_keys(&args, &genesis_hash)?;
    let n = keys.len();
    let fee = match args.fee {
        Some(f) => f,
        None => {
            let parse = |s: &str| {
                s.parse::<u128>().map_err(|_| BenchError::Protocol {
                    url: urls[0].text.clone(),
                    message: format!("fee {s:?} is not a number"),
                })
            };
            parse(&statuses[0].min_fee)?.max(parse(&statuses[0].min_fee_to_enter)?)
        }
    };
    let senders = args.senders.min(n);
    // Account a is sent by thread a % senders, which talks to URL (a % senders) % urls.
    let url_of_thread = |t: usize| t % urls.len();
    let per_account = total.div_ceil(n as u64);
    eprintln!(
        "bench load: {} node(s), {n} accounts, {senders} senders, {} tx/s for {} s = {total} transfers \
         ({per_account} per account), fee {fee}",
        urls.len(),
        args.tps,
        args.duration
    );
    let batch_note = batch_endpoint_note(&urls[0], args.batch);

    // Nonces and balances, from the node each account sends to.
    let nonces = fetch_nonces(&keys, senders, &urls, url_of_thread, per_account, fee)?;

    // Pre-sign everything.
    let t_sign = Instant::now();
    let planned: Vec<Planned> = (0..total)
        .into_par_iter()
        .map(|k| {
            let a = (k % n as u64) as usize;
            let tx = sign_transfer(
                &keys[a],
                keys[(a + 1) % n].address(),
                fee,
                nonces[a] + k / n as u64,
                chain_id,
                &genesis_hash,
            );
            let mut bytes = [0u8; TRANSFER_TX_LEN];
            bytes.copy_from_slice(&tx.encode());
            Planned { k, id: tx.id(), bytes }
        })
        .collect();
    let ours: Arc<HashSet<Hash>> = Arc::new(planned.iter().map(|p| p.id).collect());
    let mut plans: Vec<Vec<Planned>> = (0..senders).map(|_| Vec::with_capacity(planned.len() / senders + 1)).collect();
    for p in planned {
        let a = (p.k % n as u64) as usize;
        plans[a % senders].push(p);
    }
    eprintln!("bench load: signed {total} transfers in {:.1} s; sending", t_sign.elapsed().as_secs_f64());

    // The poller starts first so it knows the height before the first transfer.
    let stop = Arc::new(AtomicBool::new(false));
    let included = Arc::new(AtomicU64::new(0));
    let poll_conn = HttpConn::new(&urls[0]);
    let start_tip = fetch_status(&mut HttpConn::new(&urls[0]))?;
    let poller = {
        let (stop, included, ours) = (stop.clone(), included.clone(), ours.clone());
        let period = Duration::from_millis(args.poll_ms.max(1));
        std::thread::Builder::new()
            .name("bench-poller".into())
            .spawn(move || {
                Poller::new(poll_conn, start_tip.height, start_tip.tip_hash, ours).run(&stop, &included, period)
            })
            .map_err(|e| BenchError::Io(format!("cannot start the poller thread: {e}")))?
    };

    let t0 = Instant::now() + Duration::from_millis(100);
    let deadline = t0 + Duration::from_secs(args.duration);
    let mut metric_conns: Vec<HttpConn> = metrics_urls.iter().map(HttpConn::new).collect();
    let metrics_before: Vec<_> = metric_conns.iter_mut().map(super::scrape_metrics).collect();
    let cpu = CpuWindow::start(&pids);
    let rss_before: Vec<Option<u64>> = pids.iter().map(|p| super::proc_rss_kib(*p)).collect();
    let tps = f64::from(args.tps);
    let batch = args.batch;
    let handles: Vec<_> = plans
        .into_iter()
        .enumerate()
        .map(|(t, plan)| {
            let conn = HttpConn::new(&urls[url_of_thread(t)]);
            std::thread::Builder::new()
                .name(format!("bench-send-{t}"))
                .spawn(move || send_plan(conn, plan, t0, tps, deadline, batch))
                .map_err(|e| BenchError::Io(format!("cannot start sender thread {t}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let mut sent = SendResult::default();
    for h in handles {
        let r = h.join().map_err(|_| BenchError::Io("a sender thread panicked".into()))?;
        sent.merge(r);
    }
    let send_end = Instant::now();
    let cpu_use = cpu.finish();
    let rss_after: Vec<Option<u64>> = pids.iter().map(|p| super::proc_rss_kib(*p)).collect();
    let window = send_end.duration_since(t0).as_secs_f64();
    let accepted = sent.accepted.len() as u64;
    eprintln!(
        "bench load: sent {} in {window:.1} s ({} accepted); waiting up to {} s for inclusion",
        sent.sent, accepted, args.drain_timeout
    );

    // Drain: until every accepted transfer is seen in a block, or the timeout.
    let drain_deadline = send_end + Duration::from_secs(args.drain_timeout);
    while included.load(Ordering::Relaxed) < accepted && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let drain = send_end.elapsed().as_secs_f64();
    let metrics_after: Vec<_> = metric_conns.iter_mut().map(super::scrape_metrics).collect();
    let scan = poller.join().map_err(|_| BenchError::Io("the poller thread panicked".into()))?;

    let report = Report {
        args: &args,
        urls: &urls,
        n,
        senders,
        total,
        fee,
        batch_note,
        t0,
        send_end,
        window,
        drain,
        sent,
        scan,
        cpu: cpu_use,
        pids: &pids,
        rss_before,
        rss_after,
        metrics: metrics_urls
            .iter()
            .zip(metrics_before)
            .zip(metrics_after)
            .map(|((u, b), a)| (u.host.clone(), b, a))
            .collect(),
    };
    report.print();
    Ok(())
}

fn write_genesis(args: &LoadArgs, out: &std::path::Path) -> Result<(), BenchError> {
    let n = args.accounts.unwrap_or(1_000);
    if n == 0 || n > MAX_ACCOUNTS {
        return Err(BenchError::Usage(format!("--accounts must be 1..={MAX_ACCOUNTS}")));
    }
    if out.exists() {
        return Err(BenchError::Usage(format!("{} already exists; choose another --write-genesis", out.display())));
    }
    let g = bench_genesis(args, n);
    g.validate()?;
    g.save(out)?;
    println!("{}", g.hash());
    eprintln!(
        "wrote {}: chain id {}, {n} bench accounts with {} each, target block time {} ms, initial difficulty {}",
        out.display(),
        g.chain_id,
        args.balance,
        g.target_block_time_ms,
        g.initial_difficulty
    );
    Ok(())
}

/// The bench accounts to send from.
fn select_keys(args: &LoadArgs, genesis_hash: &Hash) -> Result<Vec<Keypair>, BenchError> {
    let keys: Vec<Keypair> = match (&args.keys_from_genesis, args.accounts) {
        (Some(path), limit) => {
            let g = Genesis::load(path)?;
            if g.hash() != *genesis_hash {
                return Err(BenchError::Setup(format!(
                    "{} has genesis hash {} but the node runs {genesis_hash}: start the nodes with --genesis {}",
                    path.display(),
                    g.hash(),
                    path.display()
                )));
            }
            let funded: HashSet<Address> = g.allocations.iter().map(|a| a.address).collect();
            let mut keys: Vec<Keypair> = (0..g.allocations.len() as u32)
                .into_par_iter()
                .map(bench_keypair)
                .filter(|k| funded.contains(&k.address()))
                .collect();
            if keys.is_empty() {
                return Err(BenchError::Setup(format!(
                    "{} funds no bench account; write one with `vision-node bench load --write-genesis FILE --accounts N`",
                    path.display()
                )));
            }
            if let Some(limit) = limit {
                if limit as usize > keys.len() {
                    return Err(BenchError::Usage(format!(
                        "--accounts {limit}: {} funds only {} bench accounts",
                        path.display(),
                        keys.len()
                    )));
                }
                keys.truncate(limit as usize);
            }
            keys
        }
        (None, Some(n)) if n > 0 && n <= MAX_ACCOUNTS => (0..n).into_par_iter().map(bench_keypair).collect(),
        (None, Some(_)) => return Err(BenchError::Usage(format!("--accounts must be 1..={MAX_ACCOUNTS}"))),
        (None, None) => return Err(no_accounts()),
    };
    Ok(keys)
}

fn no_accounts() -> BenchError {
    BenchError::Usage(
        "bench load needs funded accounts: --keys-from-genesis FILE (the genesis the nodes run) or --accounts N \
         (bench accounts 0..N, funded by a genesis from `bench load --write-genesis FILE`)"
            .into(),
    )
}

/// How transfers are submitted, and what `/v1/openapi.json` says about batch submission.
fn batch_endpoint_note(url: &ApiUrl, batch: usize) -> String {
    if batch > 1 {
        return format!("{batch} txs per POST /v1/txs/batch");
    }
    match HttpConn::new(url).get_json::<serde_json::Value>("/v1/openapi.json") {
        Ok(doc) => {
            let batch: Vec<String> = doc["paths"]
                .as_object()
                .map(|p| p.keys().filter(|k| k.contains("batch")).cloned().collect())
                .unwrap_or_default();
            if batch.is_empty() {
                "one tx per POST /v1/txs (no batch endpoint in /v1/openapi.json)".into()
            } else {
                format!("one tx per POST /v1/txs (batch endpoints not used: {})", batch.join(", "))
            }
        }
        Err(_) => "one tx per POST /v1/txs".into(),
    }
}

/// Reads each account's next nonce (counting pooled transactions) from the node it will send to,
/// and checks its balance covers its share of the run.
fn fetch_nonces(
    keys: &[Keypair],
    senders: usize,
    urls: &[ApiUrl],
    url_of_thread: impl Fn(usize) -> usize + Sync,
    per_account: u64,
    fee: u128,
) -> Result<Vec<u64>, BenchError> {
    let need = (fee + TRANSFER_AMOUNT).saturating_mul(u128::from(per_account));
    let results: Vec<Result<Vec<(usize, u64)>, BenchError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..senders)
            .map(|t| {
                let url_of_thread = &url_of_thread;
                s.spawn(move || {
                    let mut conn = HttpConn::new(&urls[url_of_thread(t)]);
                    let mut out = Vec::new();
                    for a in (t..keys.len()).step_by(senders) {
                        let addr = keys[a].address();
                        let acct: vision_node::api::AccountJson = conn.get_json(&format!("/v1/accounts/{addr}"))?;
                        let balance: u128 = acct.balance.parse().unwrap_or(0);
                        if balance < need {
                            return Err(BenchError::Setup(format!(
                                "bench account {a} ({addr}) holds {balance}, less than the {need} its {per_account} \
                                 transfers cost: fund the accounts with more (--balance with --write-genesis) or \
                                 use more --accounts"
                            )));
                        }
                        out.push((a, acct.pending_nonce));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(BenchError::Io("thread panicked".into()))))
            .collect()
    });
    let mut nonces = vec![0; keys.len()];
    for r in results {
        for (a, nonce) in r? {
            nonces[a] = nonce;
        }
    }
    Ok(nonces)
}

/// A transfer signed for the network of `chain_id` and `genesis_hash` (the nodes' own: the load
/// generator is a benchmark tool and trusts the nodes it loads).
fn sign_transfer(
    from: &Keypair,
    to: Address,
    fee: u128,
    nonce: u64,
    chain_id: u32,
    genesis_hash: &Hash,
) -> Transaction {
    let mut tx = Transaction {
        chain_id,
        from: from.address(),
        nonce,
        fee,
        kind: TxKind::Transfer { to, amount: TRANSFER_AMOUNT },
        signature: [0; 64],
    };
    from.sign_tx(&mut tx, genesis_hash);
    tx
}

/// One pre-signed transfer: its place in the schedule, id and encoding.
struct Planned {
    k: u64,
    id: Hash,
    bytes: [u8; TRANSFER_TX_LEN],
}

/// What one sender thread did.
#[derive(Default)]
struct SendResult {
    sent: u64,
    unsent: u64,
    /// (id, when the request went out) of each accepted transfer.
    accepted: Vec<(Hash, Instant)>,
    /// Rejections by the API's error code (`connection_error` when no answer came back).
    rejected: HashMap<String, u64>,
    /// Request round trips in ms.
    latencies_ms: Millis,
    /// When the last request was answered.
    last_answer: Option<Instant>,
}

impl SendResult {
    fn merge(&mut self, o: SendResult) {
        self.sent += o.sent;
        self.unsent += o.unsent;
        self.accepted.extend(o.accepted);
        for (k, v) in o.rejected {
            *self.rejected.entry(k).or_default() += v;
        }
        self.latencies_ms.add(&o.latencies_ms);
        self.last_answer = self.last_answer.max(o.last_answer);
    }
}

/// Sends `plan` on schedule, in groups of `batch` (1: each transfer alone through `POST /v1/txs`;
/// more: through `POST /v1/txs/batch`), each group when its last transfer is due. Transfers still
/// unsent at `deadline` (the client fell behind) are counted, not sent.
fn send_plan(
    mut conn: HttpConn,
    plan: Vec<Planned>,
    t0: Instant,
    tps: f64,
    deadline: Instant,
    batch: usize,
) -> SendResult {
    let batched = batch > 1;
    let path = if batched { "/v1/txs/batch" } else { "/v1/txs" };
    let mut r = SendResult::default();
    let mut body = Vec::with_capacity(16 + batch * (4 + 2 * TRANSFER_TX_LEN));
    let total = plan.len() as u64;
    for group in plan.chunks(batch) {
        let last = group.last().map_or(0, |p| p.k);
        let due = t0 + Duration::from_secs_f64(last as f64 / tps);
        let now = Instant::now();
        if now >= deadline {
            r.unsent = total - r.sent;
            break;
        }
        if due > now {
            std::thread::sleep(due - now);
        }
        body.clear();
        body.extend_from_slice(if batched { b"{\"txs\":[" } else { b"{\"tx\":" });
        for (i, p) in group.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.push(b'"');
            body.extend_from_slice(hex::encode(p.bytes).as_bytes());
            body.push(b'"');
        }
        body.extend_from_slice(if batched { b"]}" } else { b"}" });
        let sent_at = Instant::now();
        let result = conn.request("POST", path, Some(&body));
        let done = Instant::now();
        r.sent += group.len() as u64;
        r.latencies_ms.record(done.duration_since(sent_at).as_secs_f64() * 1e3);
        r.last_answer = Some(done);
        let mut reject_all = |code: String| *r.rejected.entry(code).or_default() += group.len() as u64;
        match result {
            Ok(resp) if resp.status == 202 && !batched => r.accepted.extend(group.iter().map(|p| (p.id, sent_at))),
            Ok(resp) if resp.status == 200 && batched => {
                match serde_json::from_slice::<vision_node::api::SubmittedBatch>(&resp.body) {
                    Ok(answer) if answer.results.len() == group.len() => {
                        for (p, res) in group.iter().zip(answer.results) {
                            match (res.hash, res.error) {
                                (Some(_), _) => r.accepted.push((p.id, sent_at)),
                                (None, e) => {
                                    let code = e.map_or_else(|| "no_result".to_string(), |e| e.code);
                                    *r.rejected.entry(code).or_default() += 1;
                                }
                            }
                        }
                    }
                    _ => reject_all("bad_batch_answer".into()),
                }
            }
            Ok(resp) => reject_all(
                serde_json::from_slice::<vision_node::api::ErrorBody>(&resp.body)
                    .map(|b| b.error.code)
                    .unwrap_or_else(|_| format!("http_{}", resp.status)),
            ),
            Err(_) => reject_all("connection_error".into()),
        }
    }
    r
}

// ----- the poller --------------------------------------------------------------------------------

#[derive(Deserialize)]
struct BlockLite {
    hash: Hash,
    height: u64,
    parent: Hash,
    transactions: Vec<TxLite>,
}

#[derive(Deserialize)]
struct TxLite {
    hash: Hash,
}

/// A canonical block the poller has scanned.
struct Scanned {
    height: u64,
    hash: Hash,
    txs: usize,
    ours: Vec<Hash>,
    seen_at: Instant,
}

/// What the poller found: the scanned canonical blocks and when each of our transfers was first
/// seen in one of them.
struct ScanResult {
    blocks: Vec<Scanned>,
    seen: HashMap<Hash, Instant>,
    errors: u64,
}

struct Poller {
    conn: HttpConn,
    base_height: u64,
    base_hash: Hash,
    ours: Arc<HashSet<Hash>>,
    blocks: Vec<Scanned>,
    seen: HashMap<Hash, Instant>,
    errors: u64,
}

impl Poller {
    fn new(conn: HttpConn, base_height: u64, base_hash: Hash, ours: Arc<HashSet<Hash>>) -> Poller {
        Poller { conn, base_height, base_hash, ours, blocks: Vec::new(), seen: HashMap::new(), errors: 0 }
    }

    fn run(mut self, stop: &AtomicBool, included: &AtomicU64, period: Duration) -> ScanResult {
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            if self.poll().is_err() {
                self.errors += 1;
            }
            included.store(self.seen.len() as u64, Ordering::Relaxed);
            if let Some(rest) = period.checked_sub(started.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        ScanResult { blocks: self.blocks, seen: self.seen, errors: self.errors }
    }

    fn tip(&self) -> (u64, Hash) {
        self.blocks.last().map_or((self.base_height, self.base_hash), |b| (b.height, b.hash))
    }

    /// Drops the last scanned block (it left the canonical chain).
    fn pop(&mut self) {
        if let Some(b) = self.blocks.pop() {
            for id in b.ours {
                self.seen.remove(&id);
            }
        }
    }

    /// Scans the canonical blocks above the last scanned one, stepping back over reorganisations.
    fn poll(&mut self) -> Result<(), BenchError> {
        let status = fetch_status(&mut self.conn)?;
        loop {
            let (h, hash) = self.tip();
            if status.height < h && !self.blocks.is_empty() {
                self.pop();
                continue;
            }
            if status.height == h {
                if status.tip_hash != hash && !self.blocks.is_empty() {
                    self.pop();
                    continue;
                }
                return Ok(());
            }
            // An error (e.g. a 404: the tip moved back since the status) is counted; the next poll
            // starts again from the status.
            let block: BlockLite = self.conn.get_json(&format!("/v1/blocks/{}", h + 1))?;
            if block.parent != hash && !self.blocks.is_empty() {
                self.pop();
                continue;
            }
            let now = Instant::now();
            let ours: Vec<Hash> =
                block.transactions.iter().map(|t| t.hash).filter(|id| self.ours.contains(id)).collect();
            for id in &ours {
                self.seen.entry(*id).or_insert(now);
            }
            if self.blocks.len() >= MAX_SCANNED_BLOCKS {
                // Forget the oldest block (its transactions stay counted as seen).
                let old = self.blocks.remove(0);
                (self.base_height, self.base_hash) = (old.height, old.hash);
            }
            self.blocks.push(Scanned {
                height: block.height,
                hash: block.hash,
                txs: block.transactions.len(),
                ours,
                seen_at: now,
            });
        }
    }
}

// ----- the report --------------------------------------------------------------------------------

struct Report<'a> {
    args: &'a LoadArgs,
    urls: &'a [ApiUrl],
    n: usize,
    senders: usize,
    total: u64,
    fee: u128,
    batch_note: String,
    t0: Instant,
    send_end: Instant,
    window: f64,
    drain: f64,
    sent: SendResult,
    scan: ScanResult,
    cpu: super::CpuUse,
    pids: &'a [u32],
    rss_before: Vec<Option<u64>>,
    rss_after: Vec<Option<u64>>,
    /// Per metrics URL: its host and the samples at the start of the send window and the end of
    /// the drain.
    metrics: Vec<(String, Option<Samples>, Option<Samples>)>,
}

type Samples = HashMap<String, f64>;

/// Deltas of every series of `family` over the window, as `labels n` pairs (non-zero only).
fn label_deltas(before: &Samples, after: &Samples, family: &str) -> String {
    let prefix = format!("{family}{{");
    let mut v: Vec<(String, f64)> = after
        .iter()
        .filter_map(|(k, a)| {
            let labels = k.strip_prefix(&prefix)?.trim_end_matches('}');
            let d = a - before.get(k).copied().unwrap_or(0.0);
            (d > 0.0).then(|| (labels.replace('"', ""), d))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    if v.is_empty() {
        return "none".into();
    }
    v.iter().map(|(l, d)| format!("{l} {d:.0}")).collect::<Vec<_>>().join(", ")
}

/// Rows describing what one node did from the start of the send window to the end of the drain,
/// from its metrics.
fn metrics_rows(host: &str, before: &Samples, after: &Samples) -> Vec<(String, String)> {
    let d = |family: &str| super::metric_sum(after, family) - super::metric_sum(before, family);
    let per_block = |family: &str| {
        let n = d(&format!("{family}_count"));
        if n > 0.0 { format!("{:.1}", 1e3 * d(&format!("{family}_sum")) / n) } else { "-".into() }
    };
    let dropped_family = after
        .keys()
        .find_map(|k| k.find("dropped_messages_total{").map(|i| k[..i + "dropped_messages_total".len()].to_string()))
        .unwrap_or_else(|| "vision_p2p_dropped_messages_total".into());
    vec![
        (
            format!("{host}: blocks / txs imported, template rebuilds"),
            format!(
                "{:.0} / {:.0}, {:.0} template cache misses",
                d("vision_blocks_imported_total"),
                d("vision_transactions_imported_total"),
                d("vision_miner_template_cache_misses_total")
            ),
        ),
        (
            format!("{host}: ms per block: import / apply / commit"),
            format!(
                "{} / {} / {}",
                per_block("vision_block_import_duration_seconds"),
                per_block("vision_state_apply_duration_seconds"),
                per_block("vision_db_commit_duration_seconds")
            ),
        ),
        (
            format!("{host}: blocks by signature path"),
            label_deltas(before, after, "vision_signature_verification_duration_seconds_count"),
        ),
        (format!("{host}: txs submitted"), label_deltas(before, after, "vision_transactions_submitted_total")),
        (format!("{host}: work dropped (full queues)"), label_deltas(before, after, &dropped_family)),
        (
            format!("{host}: difficulty start → end, mempool peak"),
            format!(
                "{:.0} → {:.0}, peak {:.0} txs",
                super::metric_sum(before, "vision_chain_difficulty"),
                super::metric_sum(after, "vision_chain_difficulty"),
                after.get("vision_resource_peak{resource=\"mempool_txs\"}").copied().unwrap_or(0.0)
            ),
        ),
    ]
}

fn ms3(ms: &Millis) -> String {
    if ms.is_empty() {
        return "-".into();
    }
    format!("{:.1} / {:.1} / {:.1}", ms.percentile(50.0), ms.percentile(99.0), ms.max())
}

impl Report<'_> {
    fn print(self) {
        let window = self.window.max(1e-3);
        let accepted = self.sent.accepted.len() as u64;
        let rejected: u64 = self.sent.rejected.values().sum();
        // Inclusion latency of every accepted transfer that was seen in a block.
        let mut latencies = Millis::new();
        let mut in_window = 0u64;
        let mut last_inclusion = None;
        for (id, sent_at) in &self.sent.accepted {
            if let Some(seen) = self.scan.seen.get(id) {
                latencies.record(seen.saturating_duration_since(*sent_at).as_secs_f64() * 1e3);
                if *seen <= self.send_end {
                    in_window += 1;
                }
                last_inclusion = last_inclusion.max(Some(*seen));
            }
        }
        let included = latencies.len();
        let span = last_inclusion.map_or(0.0, |l| l.saturating_duration_since(self.t0).as_secs_f64());
        let included_tps = if span > 0.0 { included as f64 / span } else { 0.0 };
        // Blocks seen while sending.
        let window_blocks: Vec<&Scanned> =
            self.scan.blocks.iter().filter(|b| b.seen_at >= self.t0 && b.seen_at <= self.send_end).collect();
        let block_txs: Vec<usize> = window_blocks.iter().map(|b| b.txs).collect();
        let mean_txs =
            if block_txs.is_empty() { 0.0 } else { block_txs.iter().sum::<usize>() as f64 / block_txs.len() as f64 };

        let mut t = Table::new(&["metric", "value"]).left_aligned();
        let mut row = |k: &str, v: String| t.row(vec![k.to_string(), v]);
        row("machine", super::machine_description());
        row("nodes (--api)", format!("{}; {}", self.urls.len(), self.batch_note));
        row("accounts / sender threads", format!("{} / {}", self.n, self.senders));
        row(
            "target",
            format!("{} tx/s × {} s = {} transfers, fee {}", self.args.tps, self.args.duration, self.total, self.fee),
        );
        row("send window / drain (s)", format!("{window:.1} / {:.1}", self.drain));
        row("offered (sent) tx/s", format!("{:.0} ({} sent)", self.sent.sent as f64 / window, self.sent.sent));
        if self.sent.unsent > 0 {
            row("not sent (client behind schedule)", self.sent.unsent.to_string());
        }
        row("accepted tx/s", format!("{:.0} ({accepted} accepted)", accepted as f64 / window));
        let mut codes: Vec<(&String, &u64)> = self.sent.rejected.iter().collect();
        codes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        row("rejected", rejected.to_string());
        for (code, count) in codes {
            row(&format!("rejected: {code}"), count.to_string());
        }
        row("submit round trip p50 / p99 / max (ms)", ms3(&self.sent.latencies_ms));
        row("included during send window tx/s", format!("{:.0} ({in_window} included)", in_window as f64 / window));
        let pct = if accepted > 0 { 100.0 * included as f64 / accepted as f64 } else { 0.0 };
        row("included by end of drain", format!("{included} of {accepted} accepted ({pct:.1}%)"));
        row("included tx/s, first send → last inclusion", format!("{included_tps:.0} over {span:.1} s"));
        row("inclusion latency p50 / p99 / max (ms)", ms3(&latencies));
        row(
            "blocks during send window",
            format!(
                "{} (mean {:.0} txs, max {} txs, one every {:.2} s)",
                window_blocks.len(),
                mean_txs,
                block_txs.iter().max().copied().unwrap_or(0),
                if window_blocks.is_empty() { 0.0 } else { window / window_blocks.len() as f64 }
            ),
        );
        if self.scan.errors > 0 {
            row("poller errors", self.scan.errors.to_string());
        }
        row("CPU cores, send window: machine", fmt_cores(self.cpu.machine));
        row("CPU cores: this load generator", fmt_cores(self.cpu.own));
        for (i, (pid, c)) in self.cpu.pids.iter().enumerate() {
            let rss = |v: &Option<u64>| v.map_or("n/a".into(), |k| format!("{:.0}", k as f64 / 1024.0));
            row(
                &format!("CPU cores / RSS MiB (before → after): pid {pid}"),
                format!("{} / {} → {}", fmt_cores(*c), rss(&self.rss_before[i]), rss(&self.rss_after[i])),
            );
            row(&format!("pid {pid} CPU cores by thread"), self.cpu.thread_summary(i));
        }
        if !self.pids.is_empty() {
            row("CPU cores: everything else on the machine", fmt_cores(self.cpu.others()));
        }
        if !self.metrics.is_empty() {
            row("node metrics below", "from the start of the send window to the end of the drain".into());
        }
        for (host, before, after) in &self.metrics {
            match (before, after) {
                (Some(b), Some(a)) => {
                    for (k, v) in metrics_rows(host, b, a) {
                        row(&k, v);
                    }
                }
                _ => row(&format!("{host}: metrics"), "not readable".into()),
            }
        }
        println!("{}", t.render());
        println!(
            "RESULT offered_tps={:.0} accepted_tps={:.0} rejected={rejected} included={included} \
             included_window_tps={:.0} included_tps={included_tps:.0} latency_p50_ms={:.0} latency_p99_ms={:.0} \
             machine_cores={} others_cores={}",
            self.sent.sent as f64 / window,
            accepted as f64 / window,
            in_window as f64 / window,
            latencies.percentile(50.0),
            latencies.percentile(99.0),
            fmt_cores(self.cpu.machine),
            fmt_cores(self.cpu.others()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_keys_are_deterministic_and_distinct() {
        assert_eq!(bench_keypair(3).address(), bench_keypair(3).address());
        assert_ne!(bench_keypair(3).address(), bench_keypair(4).address());
        assert_ne!(bench_keypair(0).address(), vision_node::chain::genesis::dev_keypair(0).address());
    }

    #[test]
    fn signed_transfers_verify_and_round_trip() {
        let g = Hash([4; 32]);
        let tx = sign_transfer(&bench_keypair(1), bench_keypair(2).address(), 5, 9, 4242, &g);
        assert_eq!(Transaction::decode(&tx.encode()).unwrap(), tx);
        assert_eq!(tx.encode().len(), TRANSFER_TX_LEN);
        assert!(vision_node::verify::verify_tx(&tx, &g).is_ok());
        assert!(vision_node::verify::verify_tx(&tx, &Hash::ZERO).is_err(), "bound to its genesis");
    }
}
