//! The `vision-bench` executable: its subcommands are there and bad flags get a clear error. (Also
//! makes `cargo test --workspace` build the executable, which `tests/it/bench_cli.rs` runs against
//! real nodes.)

use std::process::Command;

#[test]
fn lists_its_subcommands_and_refuses_unknown_ones() {
    let bin = env!("CARGO_BIN_EXE_vision-bench");
    let help = Command::new(bin).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for sub in ["load", "peers", "propagation"] {
        assert!(text.contains(sub), "--help does not list {sub}:\n{text}");
    }
    let bad = Command::new(bin).arg("nonsense").output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nonsense"));
}
