//! Key files through the real binary: `wallet new` killed with SIGKILL at many points never leaves
//! an empty or truncated key file under the name asked for, and a key file that group or others can
//! read is refused with the `chmod` to run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vision_node::wallet::Keypair;

use crate::common::{bin, cli, cli_ok};

/// How many `wallet new` processes are killed.
const TRIALS: usize = 200;
/// The kill loop stops here even if not all trials ran (a loaded machine); the test then needs at
/// least `MIN_TRIALS`.
const DEADLINE: Duration = Duration::from_secs(8);
const MIN_TRIALS: usize = 40;

/// splitmix64: a deterministic delay sequence without a dependency.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn wallet_new(out: &Path) -> std::process::Child {
    Command::new(bin())
        .args(["wallet", "new", "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `wallet new --out FILE` is killed (SIGKILL) after a delay drawn uniformly from zero to 1.5 times
/// the time a whole run takes here, 200 times: afterwards each FILE is either absent or a complete
/// key file that loads (mode 0600, its address matching its secret), and one whose process
/// finished holds the address it printed. Temporary files a kill leaves behind have other names.
#[test]
fn wallet_new_killed_at_any_point_leaves_no_partial_key() {
    let dir = tempfile::tempdir().unwrap();
    // How long a whole `wallet new` takes on this machine (the slowest of three, after a warm-up).
    let mut full = Duration::ZERO;
    for i in 0..4 {
        let started = Instant::now();
        let out = wallet_new(&dir.path().join(format!("calibrate{i}.json"))).wait_with_output().unwrap();
        assert!(out.status.success());
        if i > 0 {
            full = full.max(started.elapsed());
        }
    }
    let span_us = (full.as_micros() as u64 * 3 / 2).max(1);

    let mut seed = 0x5EED_0015_u64;
    let started = Instant::now();
    let (mut absent, mut complete, mut finished) = (0, 0, 0);
    let mut trials = 0;
    while trials < TRIALS && started.elapsed() < DEADLINE {
        let path = dir.path().join(format!("k{trials}.json"));
        let delay = Duration::from_micros(next(&mut seed) % span_us);
        let mut child = wallet_new(&path);
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; fails only if the process has already been reaped
        let out = child.wait_with_output().unwrap();
        let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    !out.status.success(),
                    "trial {trials}: wallet new succeeded but {} is missing",
                    path.display()
                );
                absent += 1;
            }
            Err(e) => panic!("trial {trials}: {}: {e}", path.display()),
            Ok(_) => {
                let len = std::fs::metadata(&path).unwrap().len();
                let kp = Keypair::load(&path).unwrap_or_else(|e| {
                    panic!(
                        "trial {trials} (killed after {delay:?}): {} ({len} bytes) is not a whole key file: {e}",
                        path.display()
                    )
                });
                if out.status.success() {
                    assert_eq!(printed, kp.address().to_string(), "trial {trials}: printed address");
                    finished += 1;
                }
                complete += 1;
            }
        }
        trials += 1;
    }
    let elapsed = started.elapsed();
    // Whatever else a kill leaves in the directory is a temporary file of the writer: never named
    // like a key file, and private.
    let mut leftovers = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !name.starts_with('.') {
            continue;
        }
        assert!(name.starts_with('.') && name.contains(".tmp"), "unexpected file {name} left in the key directory");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "temporary file {name} has mode {mode:o}");
        }
        leftovers += 1;
    }
    eprintln!(
        "{trials} kills in {elapsed:?} (delays 0..{span_us} us, a whole run took {full:?}): {absent} absent, \
         {complete} complete ({finished} finished), {leftovers} temporary files left"
    );
    assert!(trials >= MIN_TRIALS, "only {trials} trials within {DEADLINE:?}");
    // The delays cover the whole run: some kills land before the file exists, some after the end.
    assert!(absent > 0 && complete > 0, "{absent} absent, {complete} complete: the delays missed the write");
}

/// A key file that its group can read is refused by every wallet command, naming the file and the
/// `chmod` that fixes it; after the chmod it loads.
#[cfg(unix)]
#[test]
fn group_readable_key_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("me.json");
    let p = path.to_str().unwrap();
    let address = cli_ok(&["wallet", "new", "--out", p]);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    for mode in [0o640, 0o604, 0o644] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = cli(&["wallet", "address", "--key", p]);
        assert!(!out.status.success(), "mode {mode:o} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("chmod 600 {p}")), "mode {mode:o}: {err}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(cli_ok(&["wallet", "address", "--key", p]), address);

    // The node key file too (`peer-id` reads it as `run --node-key` does).
    let node_key = dir.path().join("node.key");
    let nk = node_key.to_str().unwrap();
    let peer = cli_ok(&["keygen", "--out", nk]);
    std::fs::set_permissions(&node_key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = cli(&["peer-id", "--key", nk]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("chmod 600 {nk}")), "{err}");
    std::fs::set_permissions(&node_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(cli_ok(&["peer-id", "--key", nk]), peer);
}
