//! The golden-vector file format shared by `vectors` and `protocol_vectors`: `key: value` lines,
//! `#` comments, long values continued on indented lines. A [`Vector`] remembers which keys were
//! read so a check can insist that every recorded value is checked.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use vision_node::chain::encoding::DecodeError;
use vision_node::chain::types::{Address, Hash};

/// `protocols/vectors`.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("protocols/vectors")
}

/// One vector file: its fields, and which of them the checks have read.
pub struct Vector {
    /// File name.
    pub name: String,
    fields: BTreeMap<String, String>,
    read: RefCell<BTreeSet<String>>,
}

impl Vector {
    pub fn parse(name: &str, text: &str) -> Vector {
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        let mut last: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                let key = last.as_ref().unwrap_or_else(|| panic!("{name}:{}: continuation with no key", n + 1));
                fields.get_mut(key).unwrap().push_str(line.trim());
                continue;
            }
            let (k, v) = line.split_once(':').unwrap_or_else(|| panic!("{name}:{}: expected `key: value`", n + 1));
            let k = k.trim().to_string();
            assert!(fields.insert(k.clone(), v.trim().to_string()).is_none(), "{name}: duplicate key {k}");
            last = Some(k);
        }
        Vector { name: name.to_string(), fields, read: RefCell::new(BTreeSet::new()) }
    }

    pub fn has(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    pub fn str(&self, key: &str) -> &str {
        self.read.borrow_mut().insert(key.to_string());
        self.fields.get(key).unwrap_or_else(|| panic!("{}: missing key {key}", self.name))
    }

    pub fn hex(&self, key: &str) -> Vec<u8> {
        let s = self.str(key);
        assert!(s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')), "{}: {key} is not lowercase hex", self.name);
        hex::decode(s).unwrap_or_else(|e| panic!("{}: {key}: {e}", self.name))
    }

    pub fn hash(&self, key: &str) -> Hash {
        let b = self.hex(key);
        Hash(b.try_into().unwrap_or_else(|_| panic!("{}: {key} is not 32 bytes", self.name)))
    }

    pub fn num<T: std::str::FromStr>(&self, key: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        self.str(key).parse().unwrap_or_else(|e| panic!("{}: {key} is not a number: {e:?}", self.name))
    }

    pub fn bool(&self, key: &str) -> bool {
        match self.str(key) {
            "true" => true,
            "false" => false,
            other => panic!("{}: {key} is {other:?}, expected true or false", self.name),
        }
    }

    /// Parses a bech32m address and checks that it prints back as the same string.
    pub fn address(&self, key: &str) -> Address {
        let s = self.str(key);
        let a: Address = s.parse().unwrap_or_else(|e| panic!("{}: {key}: {e}", self.name));
        assert_eq!(a.to_string(), s, "{}: {key} does not print back identically", self.name);
        a
    }

    /// Keys `prefix` + 0, 1, 2, ... + `suffix`, until one is missing.
    pub fn indexed(&self, prefix: &str, suffix: &str) -> Vec<String> {
        (0..).map(|i| format!("{prefix}{i}{suffix}")).take_while(|k| self.has(k)).collect()
    }

    pub fn assert_all_read(&self) {
        let read = self.read.borrow();
        let unread: Vec<&String> = self.fields.keys().filter(|k| !read.contains(*k)).collect();
        assert!(unread.is_empty(), "{}: keys no check reads: {unread:?}", self.name);
    }
}

/// The variant name and fields of a decode error, in the vector file's terms.
pub fn decode_error_fields(e: &DecodeError) -> (&'static str, Vec<(&'static str, String)>) {
    match e {
        DecodeError::UnexpectedEnd { offset, needed } => {
            ("UnexpectedEnd", vec![("offset", offset.to_string()), ("needed", needed.to_string())])
        }
        DecodeError::TrailingBytes(n) => ("TrailingBytes", vec![("count", n.to_string())]),
        DecodeError::UnknownVersion { what, version } => {
            ("UnknownVersion", vec![("what", what.to_string()), ("version", version.to_string())])
        }
        DecodeError::UnknownTxKind(tag) => ("UnknownTxKind", vec![("tag", tag.to_string())]),
        DecodeError::TooLarge { what, got, cap } => {
            ("TooLarge", vec![("what", what.to_string()), ("got", got.to_string()), ("cap", cap.to_string())])
        }
        DecodeError::LengthMismatch { what, declared, actual } => (
            "LengthMismatch",
            vec![("what", what.to_string()), ("declared", declared.to_string()), ("actual", actual.to_string())],
        ),
    }
}

/// Fails unless the files `listed` in `protocols/{spec}` and those `on_disk` are the same set.
pub fn assert_same_files(spec: &str, listed: &BTreeSet<String>, on_disk: &BTreeSet<String>) {
    let missing: Vec<_> = listed.difference(on_disk).collect();
    let unlisted: Vec<_> = on_disk.difference(listed).collect();
    assert!(
        missing.is_empty() && unlisted.is_empty(),
        "protocols/{spec} lists files that are missing: {missing:?}; files on disk not listed there: {unlisted:?}"
    );
}

/// Runs `check(vector, type)` on every vector, each in its own `catch_unwind` so one failure does
/// not hide the others, insists that every key of each file was read, and fails listing every
/// failed file. Returns the vector types seen.
pub fn check_all(vectors: &[Vector], check: impl Fn(&Vector, &str)) -> BTreeSet<String> {
    let mut failures = Vec::new();
    let mut kinds = BTreeSet::new();
    for v in vectors {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let kind = v.str("type").to_string();
            check(v, &kind);
            v.assert_all_read();
            kind
        }));
        match result {
            Ok(kind) => {
                kinds.insert(kind);
            }
            Err(_) => failures.push(v.name.clone()),
        }
    }
    assert!(failures.is_empty(), "vectors that failed (messages above): {failures:?}");
    kinds
}
