//! Helpers shared by the benches (a folder, so cargo does not take it for a bench target).

/// Criterion's median per-iteration time for `group/bench`, read from its `estimates.json` (found
/// the way criterion finds its home, minus the `cargo metadata` fallback).
pub fn criterion_median(group: &str, bench: &str) -> Option<f64> {
    use std::path::PathBuf;
    let home = std::env::var_os("CRITERION_HOME").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from).join("criterion")
    });
    let text = std::fs::read_to_string(home.join(group).join(bench).join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(v["median"]["point_estimate"].as_f64()? * 1e-9)
}
