//! Small helpers shared by several modules.

/// Serde for `u128` as a decimal string (JSON numbers and TOML integers cannot hold every u128).
/// Deserialisation also accepts a plain integer where the format has one.
pub mod u128_string {
    use serde::{Deserialize, Deserializer, Serializer, de};

    /// Writes the value as a decimal string.
    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Str(String),
        Int(u64),
    }

    /// Reads a decimal string or a non-negative integer.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Str(s) => s
                .trim()
                .replace('_', "")
                .parse::<u128>()
                .map_err(|e| de::Error::custom(format!("{s:?} is not an unsigned integer: {e}"))),
            Repr::Int(i) => Ok(u128::from(i)),
        }
    }
}

/// SplitMix64's output function (Steele, Lea and Flood): a well-mixed 64-bit value from a state.
/// A generator adds the golden-ratio increment `0x9e37_79b9_7f4a_7c15` to its state before each
/// call; a hash of a counter calls it on `seed ^ counter * increment`. For repeatable test,
/// simulation and fault-injection choices, never for cryptography.
pub fn splitmix64(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The increment of a SplitMix64 generator (the 64-bit golden ratio).
pub const SPLITMIX64_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// `CamelCase` to `snake_case`, for label values derived from enum variant names.
pub fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Implements `EncodeLabelValue` for fieldless enums as the snake_case variant name
/// (`NewTip` → `new_tip`), the Prometheus convention.
#[macro_export]
macro_rules! snake_case_label_value {
    ($($t:ty),* $(,)?) => {$(
        impl prometheus_client::encoding::EncodeLabelValue for $t {
            fn encode(
                &self,
                encoder: &mut prometheus_client::encoding::LabelValueEncoder,
            ) -> Result<(), std::fmt::Error> {
                use std::fmt::Write;
                encoder.write_str(&$crate::util::snake_case(&format!("{self:?}")))
            }
        }
    )*};
}
