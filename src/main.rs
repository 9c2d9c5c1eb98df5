//! `vision-node`: the command-line entry point. See `vision-node --help`.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use vision_node::chain::genesis::{Allocation, Genesis};
use vision_node::chain::types::Address;
use vision_node::config::{LogFormat, RunArgs, default_data_dir};
use vision_node::node::Node;
use vision_node::state::Store;
use vision_node::verify::Verifier;
use vision_node::wallet::{Client, Expected, Keypair};

/// Default API URL the wallet talks to.
const DEFAULT_API_URL: &str = "http://127.0.0.1:7070";
const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:7071";

#[derive(Parser)]
#[command(name = "vision-node", version, about = "Vision Node: a proof-of-work, account-based blockchain node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (with no flags: a mining devnet node with its API on 127.0.0.1:7070).
    Run(Box<RunArgs>),
    /// Keys and transfers.
    #[command(subcommand)]
    Wallet(WalletCmd),
    /// Database tools.
    #[command(subcommand)]
    Db(DbCmd),
    /// Operator actions on a running node, through its admin API.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Genesis files.
    #[command(subcommand)]
    Genesis(GenesisCmd),
    /// Create a node (p2p identity) key file and print its peer id.
    Keygen {
        /// Where to write it (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the peer id of a node key file.
    PeerId {
        /// The node key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Health check of a running node (container HEALTHCHECK, probes): exit 0 when its API answers
    /// `GET /v1/status` within the timeout, 1 otherwise, with the reason.
    Health {
        /// The node's API.
        #[arg(long, env = "VISION_HEALTH_API", default_value = DEFAULT_API_URL)]
        api: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 2)]
        timeout_secs: u64,
    },
}

#[derive(Subcommand)]
enum WalletCmd {
    /// Create a key file.
    New {
        /// Where to write it (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write one of the published devnet dev account keys to a key file (devnet only: these keys
    /// are public).
    DevKey {
        /// Which dev account (0..=3).
        #[arg(long)]
        index: u8,
        /// Where to write it (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a key file's address.
    Address {
        /// The key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Print an account's balance and nonce.
    Balance {
        /// The account.
        address: Address,
        /// Node API URL.
        #[arg(long, env = "VISION_API", default_value = DEFAULT_API_URL)]
        api: String,
    },
    /// Sign and submit a transfer; prints the transaction id.
    Send {
        /// Sender's key file.
        #[arg(long)]
        key: PathBuf,
        /// Recipient.
        #[arg(long)]
        to: Address,
        /// Base units to send.
        #[arg(long)]
        amount: u128,
        /// Fee in base units [default: the node's current entry fee, if at most --max-fee].
        #[arg(long)]
        fee: Option<u128>,
        /// Highest fee to sign, in base units: a node asking more is refused [default: 10 x the
        /// minimum fee of the wallet's genesis, 10000 on the devnet].
        #[arg(long, value_name = "BASE_UNITS")]
        max_fee: Option<u128>,
        /// Genesis file of the network to send on: the transfer is signed for its chain id and
        /// genesis hash, and a node reporting others is refused [default: the embedded devnet].
        #[arg(long, env = "VISION_GENESIS", value_name = "FILE")]
        genesis: Option<PathBuf>,
        /// Node API URL.
        #[arg(long, env = "VISION_API", default_value = DEFAULT_API_URL)]
        api: String,
        /// Wait until the transfer is included in a block.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 120)]
        wait_timeout: u64,
    },
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Clear the invalid verdict on a block and everything below it, so that it is judged again
    /// when peers deliver it again (for a block marked invalid by mistake).
    Reconsider {
        /// The block's hash.
        hash: vision_node::chain::types::Hash,
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Forks deeper than the reorg window (a partition longer than `--max-reorg-depth`): list
    /// them, or keep our chain against them (docs/runbook.md, "A fork deeper than the reorg window").
    #[command(subcommand)]
    DeepFork(DeepForkCmd),
    /// List the current bans (peer id and when each ends).
    Bans {
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Ban a peer (and disconnect it) for a while.
    Ban {
        /// The peer id.
        peer: String,
        /// Ban length in seconds.
        #[arg(long, default_value_t = 3600)]
        secs: u64,
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Lift a ban.
    Unban {
        /// The peer id.
        peer: String,
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Dial a peer by multiaddr (`/ip4/10.0.0.2/tcp/7000/p2p/12D3KooW...`).
    Dial {
        /// The multiaddr.
        addr: String,
        #[command(flatten)]
        conn: AdminConn,
    },
}

#[derive(Subcommand)]
enum DeepForkCmd {
    /// The deep forks reported now (`deep_forks` of `GET /v1/status`).
    List {
        /// The node's API.
        #[arg(long, env = "VISION_API", default_value = DEFAULT_API_URL)]
        api: String,
    },
    /// Keep our chain: the deep forks (of every peer, or of `--peer`) are no longer reported and
    /// their peers stay disconnected for a day. To follow the other chain instead, restart once with
    /// a `--max-reorg-depth` deeper than the reported depth and dial that side.
    Keep {
        /// Only the deep fork of this peer (a peer id).
        #[arg(long)]
        peer: Option<String>,
        #[command(flatten)]
        conn: AdminConn,
    },
}

/// Where `vision-node admin` finds the admin API and its token: the token is read from the
/// node's data directory (the cookie `admin.cookie` the node creates on start), or from the file
/// given to the node with `--admin-token-file`.
#[derive(clap::Args)]
struct AdminConn {
    /// The node's admin API.
    #[arg(long, env = "VISION_ADMIN_API", default_value = DEFAULT_ADMIN_URL)]
    admin: String,
    /// The node's data directory, holding the admin token (admin.cookie) [default: $HOME/.vision-node/devnet].
    #[arg(long, env = "VISION_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The admin token file, if the node runs with --admin-token-file.
    #[arg(long, env = "VISION_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
}

impl AdminConn {
    /// A client of the admin API carrying the token.
    fn client(&self) -> Result<Client, vision_node::wallet::ClientError> {
        let data_dir = self.data_dir.clone().unwrap_or_else(default_data_dir);
        Client::admin(&self.admin, self.admin_token_file.as_deref(), &data_dir)
    }
}

#[derive(Subcommand)]
enum DbCmd {
    /// Replay the stored chain from genesis and compare every state root and the account table.
    Check {
        /// Data directory (the node must be stopped).
        #[arg(long, env = "VISION_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Genesis file [default: the embedded devnet].
        #[arg(long, env = "VISION_GENESIS")]
        genesis: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum GenesisCmd {
    /// Write a genesis file.
    New {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// Chain id.
        #[arg(long)]
        chain_id: u32,
        /// Funded account, ADDRESS=BASE_UNITS (repeatable).
        #[arg(long = "alloc", value_name = "ADDRESS=AMOUNT")]
        allocations: Vec<String>,
        /// Target block time in milliseconds.
        #[arg(long, default_value_t = 5_000)]
        target_block_time_ms: u64,
        /// Difficulty of the first block.
        #[arg(long, default_value_t = 1 << 20)]
        initial_difficulty: u64,
        /// Block reward in base units.
        #[arg(long, default_value_t = 50_000_000_000)]
        block_reward: u128,
        /// Minimum fee in base units.
        #[arg(long, default_value_t = 1_000)]
        min_fee: u128,
        /// Genesis timestamp in ms [default: now].
        #[arg(long)]
        timestamp_ms: Option<u64>,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

type CmdResult = Result<(), Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Wallet(cmd) => wallet(cmd),
        Command::Db(cmd) => db(cmd),
        Command::Admin(cmd) => admin(cmd),
        Command::Genesis(cmd) => genesis(cmd),
        Command::Keygen { out } => keygen(&out),
        Command::PeerId { key } => vision_node::p2p::load_existing_node_key(&key)
            .map(|k| println!("{}", k.public().to_peer_id()))
            .map_err(Into::into),
        Command::Health { api, timeout_secs } => health(&api, Duration::from_secs(timeout_secs)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> CmdResult {
    let config = args.resolve()?;
    init_logs(config.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("vision-rt").build()?;
    rt.block_on(async move {
        tracing::info!(data_dir = %config.data_dir.display(), "starting vision-node {}", env!("CARGO_PKG_VERSION"));
        let node = Node::builder().config(config.node).start().await?;
        wait_for_signal().await?;
        tracing::info!("shutting down");
        node.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

fn health(api: &str, timeout: Duration) -> CmdResult {
    let s = Client::with_timeout(api, timeout).status()?;
    println!("ok: height {}, peers {}, syncing {}", s.height, s.peers, s.syncing);
    Ok(())
}

fn admin(cmd: AdminCmd) -> CmdResult {
    match cmd {
        AdminCmd::Reconsider { hash, conn } => {
            let r: vision_node::api::ReconsiderJson =
                conn.client()?.post(&format!("/admin/blocks/{hash}/reconsider"), &serde_json::json!({}))?;
            println!(
                "reconsidered {hash}: {} stored blocks and {} remembered descendants forgotten; they are judged again when peers deliver them",
                r.forgotten, r.invalid_descendants_cleared
            );
        }
        AdminCmd::Bans { conn } => {
            let bans: Vec<serde_json::Value> = conn.client()?.get("/admin/bans")?;
            if bans.is_empty() {
                println!("no bans");
            }
            for b in &bans {
                println!("{} until unix ms {}", b["peer_id"].as_str().unwrap_or("?"), b["until_unix_ms"]);
            }
        }
        AdminCmd::Ban { peer, secs, conn } => {
            let _: serde_json::Value = conn
                .client()?
                .post(&format!("/admin/peers/{peer}/ban"), &serde_json::json!({ "duration_secs": secs }))?;
            println!("banned {peer} for {secs} s");
        }
        AdminCmd::Unban { peer, conn } => {
            let _: serde_json::Value = conn.client()?.delete(&format!("/admin/peers/{peer}/ban"))?;
            println!("unbanned {peer}");
        }
        AdminCmd::Dial { addr, conn } => {
            let _: serde_json::Value = conn.client()?.post("/admin/peers", &serde_json::json!({ "addr": addr }))?;
            println!("dialling {addr}");
        }
        AdminCmd::DeepFork(DeepForkCmd::List { api }) => {
            let status: vision_node::api::Status = Client::new(&api).get("/v1/status")?;
            if status.deep_forks.is_empty() {
                println!("no deep fork reported");
            }
            for f in &status.deep_forks {
                println!("{}", deep_fork_line(f));
            }
        }
        AdminCmd::DeepFork(DeepForkCmd::Keep { peer, conn }) => {
            let body = match &peer {
                Some(p) => serde_json::json!({ "peer": p }),
                None => serde_json::json!({}),
            };
            let r: vision_node::api::deep_fork::KeepJson =
                conn.client()?.post("/admin/chain/deep-forks/keep", &body)?;
            if r.kept.is_empty() {
                println!("no deep fork reported; nothing to keep");
            }
            for f in &r.kept {
                println!("keeping our chain against {}", deep_fork_line(f));
            }
        }
    }
    Ok(())
}

/// One deep fork for the operator.
fn deep_fork_line(f: &vision_node::api::deep_fork::DeepForkJson) -> String {
    format!(
        "peer {}: forks at height {}, {} blocks below our tip (window {}); their work {} at height {}, ours {} at height {}",
        f.peer, f.fork_height, f.depth, f.window, f.their_work, f.their_height, f.our_work, f.our_height
    )
}

fn keygen(out: &std::path::Path) -> CmdResult {
    let kp = vision_node::p2p::generate_node_key();
    vision_node::p2p::write_node_key(out, &kp)?;
    println!("{}", vision_node::p2p::peer_id_of(&kp));
    Ok(())
}

fn wallet(cmd: WalletCmd) -> CmdResult {
    match cmd {
        WalletCmd::New { out } => {
            let kp = Keypair::generate()?;
            kp.save(&out)?;
            println!("{}", kp.address());
        }
        WalletCmd::DevKey { index, out } => {
            if index >= vision_node::chain::genesis::DEV_ACCOUNTS {
                return Err(format!("--index must be below {}", vision_node::chain::genesis::DEV_ACCOUNTS).into());
            }
            let kp = vision_node::chain::genesis::dev_keypair(index);
            kp.save(&out)?;
            println!("{}", kp.address());
        }
        WalletCmd::Address { key } => println!("{}", Keypair::load(&key)?.address()),
        WalletCmd::Balance { address, api } => {
            let a = Client::new(&api).account(&address)?;
            println!(
                "address: {}\nbalance: {}\nnonce: {}\npending_nonce: {}",
                a.address, a.balance, a.nonce, a.pending_nonce
            );
        }
        WalletCmd::Send { key, to, amount, fee, max_fee, genesis, api, wait, wait_timeout } => {
            let genesis = match genesis {
                Some(p) => Genesis::load(&p)?,
                None => Genesis::devnet(),
            };
            let mut expected = Expected::of(&genesis);
            if let Some(m) = max_fee {
                expected = expected.with_max_fee(m);
            }
            let key = Keypair::load(&key)?;
            let client = Client::new(&api);
            if client.is_remote_plain_http() {
                eprintln!(
                    "warning: {api} is another host over plain HTTP: anyone on the path can read and change \
                     the node's answers (the chain id, genesis hash and fee are still checked against this \
                     wallet's configuration); prefer https:// or an SSH tunnel"
                );
            }
            let tx = client.send(&key, to, amount, fee, &expected)?;
            let id = tx.id();
            println!("{id}");
            if wait {
                let deadline = Instant::now() + Duration::from_secs(wait_timeout);
                loop {
                    let s = client.tx(&id)?;
                    if s.status == "included" {
                        eprintln!(
                            "included in block {} at height {}",
                            s.block_hash.unwrap_or_default(),
                            s.height.unwrap_or(0)
                        );
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(format!("transaction {id} not included after {wait_timeout} s").into());
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
    Ok(())
}

fn db(cmd: DbCmd) -> CmdResult {
    match cmd {
        DbCmd::Check { data_dir, genesis } => {
            let dir = data_dir.unwrap_or_else(default_data_dir);
            let genesis = match genesis {
                Some(p) => Genesis::load(&p)?,
                None => Genesis::devnet(),
            };
            if !dir.join(vision_node::state::DB_FILE).exists() {
                return Err(format!("no database in {}", dir.display()).into());
            }
            let store = Store::open(&dir, &genesis)?;
            let report = vision_node::chain::check::check(&store, &genesis, &Verifier::default())?;
            println!(
                "ok: height {} tip {} ({} transactions replayed, {} accounts match)",
                report.height, report.tip, report.transactions, report.accounts
            );
        }
    }
    Ok(())
}

fn genesis(cmd: GenesisCmd) -> CmdResult {
    match cmd {
        GenesisCmd::New {
            out,
            chain_id,
            allocations,
            target_block_time_ms,
            initial_difficulty,
            block_reward,
            min_fee,
            timestamp_ms,
        } => {
            let allocations = allocations
                .iter()
                .map(|s| {
                    let (a, b) = s.split_once('=').ok_or_else(|| format!("--alloc {s:?} must be ADDRESS=AMOUNT"))?;
                    Ok(Allocation {
                        address: a.parse().map_err(|e| format!("--alloc {s:?}: {e}"))?,
                        balance: b.parse().map_err(|e| format!("--alloc {s:?}: amount: {e}"))?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let g = Genesis {
                chain_id,
                timestamp_ms: timestamp_ms.unwrap_or_else(vision_node::chain::consensus::now_ms),
                initial_difficulty,
                target_block_time_ms,
                block_reward,
                min_fee,
                allocations,
            };
            if out.exists() {
                return Err(format!("{} already exists; choose another --out", out.display()).into());
            }
            g.save(&out)?;
            println!("{}", g.hash());
        }
    }
    Ok(())
}
