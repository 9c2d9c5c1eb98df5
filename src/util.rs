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
