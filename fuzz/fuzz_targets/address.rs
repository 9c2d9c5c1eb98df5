//! Feeds arbitrary strings to the parsers of user-supplied identifiers: `Address::from_str`
//! (bech32m `vis1…`, taken by the API and the wallet) and `Hash::from_str` (block and transaction
//! ids in API paths). Asserts: no panic; an accepted address prints as the lower-case form of the
//! input and re-parses to the same address (one string per address up to case); an accepted hash
//! prints as the lower-case input without its optional `0x` and re-parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vision_node::chain::types::{Address, Hash};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(a) = s.parse::<Address>() {
        let shown = a.to_string();
        assert_eq!(shown, s.to_ascii_lowercase(), "address {s:?} is not canonical up to case");
        assert_eq!(shown.parse::<Address>(), Ok(a));
    }
    if let Ok(h) = s.parse::<Hash>() {
        let shown = h.to_string();
        assert_eq!(shown, s.strip_prefix("0x").unwrap_or(s).to_ascii_lowercase());
        assert_eq!(shown.parse::<Hash>(), Ok(h));
    }
});
