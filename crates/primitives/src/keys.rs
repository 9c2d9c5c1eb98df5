//! ed25519 key pairs and key files.
//!
//! A key file is JSON `{"address": "vis1...", "secret_key": "<64 hex>"}`. Key files (and the node
//! keys of `vision-p2p`, through [`write_secret_file`] and [`read_secret_file`]) are written
//! crash-safely: to a temporary file of mode 0600 in the same directory, fsync'd, linked under
//! their name only if that name is free (`link(2)` fails on an existing name, atomically), the
//! temporary name removed and the directory fsync'd, so a crash or SIGKILL at any point leaves
//! either no key file or a whole one. They are refused on load when their group or others have
//! any permission on them. Secret bytes, and the text that holds them, are wiped when dropped
//! (`zeroize`; `ed25519_dalek::SigningKey` wipes itself).

use std::io::{Read, Write};
use std::path::Path;

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;
pub use zeroize::Zeroizing;

use crate::types::{Address, Hash, Transaction};

/// Key files larger than this are refused unread (a key file is under 200 bytes).
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// An ed25519 key pair.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair({})", self.address())
    }
}

/// Why a key file cannot be used.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Could not read or write the file.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a key file.
    #[error("key file {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Group or others may read (or write) the file.
    #[error(
        "key file {path} is accessible to group or others (mode {mode:03o}); run `chmod 600 {path}` (and treat \
         the key as exposed if anyone else could read it)"
    )]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Refusing to overwrite.
    #[error("{0} already exists; choose another --out or delete it first")]
    Exists(String),
    /// The OS gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

#[derive(Deserialize)]
struct KeyFile {
    address: Address,
    secret_key: Zeroizing<String>,
}

#[derive(Serialize)]
struct KeyFileOut<'a> {
    address: Address,
    secret_key: &'a str,
}

impl Keypair {
    /// The key pair whose secret key is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Keypair { signing: SigningKey::from_bytes(seed) }
    }

    /// A fresh key pair from OS randomness.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut *seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(&seed))
    }

    /// The account address (public key).
    pub fn address(&self) -> Address {
        Address(self.signing.verifying_key().to_bytes())
    }

    /// The 32-byte secret key (a copy the caller should wipe; [`Zeroizing`] does).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }

    /// Fills in the transaction's signature, for the network whose genesis hash is `genesis_hash`.
    pub fn sign_tx(&self, tx: &mut Transaction, genesis_hash: &Hash) {
        tx.signature = self.sign(&tx.signing_bytes(genesis_hash));
    }

    /// Writes a key file (mode 0600, crash-safe: see the module docs); refuses to overwrite.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let secret = Zeroizing::new(self.secret_bytes());
        let mut hex_secret = Zeroizing::new([0u8; 64]);
        hex::encode_to_slice(&secret[..], &mut hex_secret[..]).expect("64 hex digits for 32 bytes");
        let hex_secret = std::str::from_utf8(&*hex_secret).expect("hex is ASCII");
        // Room for the whole file up front, so that no reallocation leaves a copy of the secret behind.
        let mut body = Zeroizing::new(Vec::with_capacity(512));
        serde_json::to_writer_pretty(&mut *body, &KeyFileOut { address: self.address(), secret_key: hex_secret })
            .map_err(|e| KeyError::Invalid { path: path.display().to_string(), message: e.to_string() })?;
        body.push(b'\n');
        write_secret_file(path, &body)
    }

    /// Reads a key file (refused when group or others have access to it) and checks that its
    /// address matches its secret key.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let p = path.display().to_string();
        let text = read_secret_file(path)?;
        let kf: KeyFile =
            serde_json::from_str(&text).map_err(|e| KeyError::Invalid { path: p.clone(), message: e.to_string() })?;
        let hex_secret = kf.secret_key.trim();
        if hex_secret.len() != 64 {
            return Err(KeyError::Invalid {
                path: p,
                message: format!("secret_key must be 32 bytes (64 hex digits), got {} characters", hex_secret.len()),
            });
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_secret, &mut *seed)
            .map_err(|e| KeyError::Invalid { path: p.clone(), message: format!("secret_key is not hex: {e}") })?;
        let kp = Keypair::from_seed(&seed);
        if kp.address() != kf.address {
            return Err(KeyError::Invalid { path: p, message: "address does not belong to secret_key".into() });
        }
        Ok(kp)
    }
}

/// Reads a file holding a secret: refused when it is not a regular file, when group or others
/// have any permission on it (mode & 0o077, checked on the opened file), or when larger than
/// [`MAX_KEY_FILE_BYTES`]. The text is wiped when dropped.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    read_checked(path, false).map(|(text, _)| text)
}

/// Reads a secret that may have been provided by someone else, such as a node key an orchestrator
/// mounts read-only into a container (a root-owned bind mount or Kubernetes secret, readable by
/// the container's group): like [`read_secret_file`], except that a file owned by another user
/// that group or others may read (but not write) is accepted, and its mode returned so that the
/// caller can warn. The node cannot `chmod` such a file, and refusing it would only stop the node.
/// A loose file of our own is still refused: its owner can fix it.
pub fn read_provided_secret_file(path: &Path) -> Result<(Zeroizing<String>, Option<u32>), KeyError> {
    read_checked(path, true)
}

/// The effective user id of this process (the owner of `/proc/self`), where it can be read.
#[cfg(unix)]
fn own_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

fn read_checked(path: &Path, allow_foreign_readable: bool) -> Result<(Zeroizing<String>, Option<u32>), KeyError> {
    let p = || path.display().to_string();
    let io = |source| KeyError::Io { path: p(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(KeyError::Invalid { path: p(), message: "not a regular file".into() });
    }
    let mut loose = None;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = meta.permissions().mode() & 0o777;
        let foreign = own_uid().is_some_and(|me| me != meta.uid());
        if mode & 0o077 != 0 {
            if !(allow_foreign_readable && foreign && mode & 0o022 == 0) {
                return Err(KeyError::Permissions { path: p(), mode });
            }
            loose = Some(mode);
        }
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(KeyError::Invalid { path: p(), message: format!("larger than {MAX_KEY_FILE_BYTES} bytes") });
    }
    // Sized up front: a reallocation would leave a copy of the secret in freed memory.
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    file.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyError::Invalid { path: p(), message: format!("larger than {MAX_KEY_FILE_BYTES} bytes") });
    }
    if std::str::from_utf8(&bytes).is_err() {
        return Err(KeyError::Invalid { path: p(), message: "not UTF-8 text".into() });
    }
    let text = String::from_utf8(std::mem::take(&mut *bytes)).expect("checked UTF-8");
    Ok((Zeroizing::new(text), loose))
}

/// Creates `path` holding `contents`, crash-safely, with mode 0600; [`KeyError::Exists`] if the
/// name is taken. The contents go to a temporary file `.NAME.tmp.PID.RANDOM` (mode 0600, created
/// new) in the same directory, which is fsync'd, then hard-linked to `path` (the link fails if
/// `path` exists, atomically: no check-then-rename race), unlinked, and the directory fsync'd.
/// A crash leaves no file under `path` or a whole one; it may leave the temporary file, which
/// holds the whole secret or a part of it and can be deleted.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let p = || path.display().to_string();
    let io = |source| KeyError::Io { path: p(), source };
    let name = path.file_name().ok_or_else(|| KeyError::Invalid { path: p(), message: "not a file name".into() })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Early, for a clear error before any writing; the link below is the check that counts.
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(KeyError::Exists(p()));
    }
    let (tmp, mut file) = create_temp(dir, name).map_err(io)?;
    let published = (|| {
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            // File systems without hard links (FAT, some network and FUSE ones): check, then
            // rename; only there can a writer racing on the same name slip in between.
            Err(e) if matches!(e.kind(), std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::Unsupported) => {
                if std::fs::symlink_metadata(path).is_ok() {
                    return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
                }
                std::fs::rename(&tmp, path)
            }
            Err(e) => Err(e),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    published.map_err(|e| if e.kind() == std::io::ErrorKind::AlreadyExists { KeyError::Exists(p()) } else { io(e) })?;
    sync_dir(dir).map_err(io)
}

/// A new file of mode 0600 next to `name` in `dir`, under a name no one else uses.
fn create_temp(dir: &Path, name: &std::ffi::OsStr) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let mut attempts = 0;
    loop {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp.{}.{}", std::process::id(), hex::encode(nonce)));
        let tmp = dir.join(tmp_name);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 8 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Makes the directory's entries (a new link, a removed name) durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// A transfer of `amount` from `from` to `to`, signed by `from` for the network of `chain_id` and
/// `genesis_hash`.
pub fn signed_transfer(
    from: &Keypair,
    to: Address,
    amount: u128,
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
        kind: crate::types::TxKind::Transfer { to, amount },
        signature: [0; 64],
    };
    from.sign_tx(&mut tx, genesis_hash);
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[cfg(unix)]
    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn key_file_round_trip_and_no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let kp = Keypair::generate().unwrap();
        kp.save(&path).unwrap();
        let loaded = Keypair::load(&path).unwrap();
        assert_eq!(loaded.address(), kp.address());
        assert_eq!(loaded.secret_bytes(), kp.secret_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // No temporary file is left behind.
        assert_eq!(names(dir.path()), ["k.json"]);
        // The file is the documented JSON.
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["address"], kp.address().to_string());
        assert_eq!(v["secret_key"], hex::encode(kp.secret_bytes()));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let kp = Keypair::generate().unwrap();
        kp.save(&path).unwrap();
        let before = std::fs::read(&path).unwrap();
        let other = Keypair::generate().unwrap();
        let err = other.save(&path).unwrap_err();
        assert!(matches!(err, KeyError::Exists(_)), "{err}");
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(names(dir.path()), ["k.json"]);
        // Not even a file that is not a key file, nor a dangling symlink.
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "x").unwrap();
        assert!(matches!(kp.save(&junk), Err(KeyError::Exists(_))));
        assert_eq!(std::fs::read(&junk).unwrap(), b"x");
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
            assert!(matches!(kp.save(&link), Err(KeyError::Exists(_))));
            assert!(!dir.path().join("nowhere").exists());
        }
        assert_eq!(names(dir.path()), ["junk", "k.json", "link"][..if cfg!(unix) { 3 } else { 2 }]);
    }

    /// The check that counts is the link, not the early look: many writers racing for one name,
    /// exactly one wins and the file is whole.
    #[test]
    fn racing_writers_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let keys: Vec<Keypair> = (0..8u8).map(|i| Keypair::from_seed(&[i + 1; 32])).collect();
        let wins: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = keys.iter().map(|k| s.spawn(|| k.save(&path).is_ok())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
        let winner = wins.iter().position(|w| *w).unwrap();
        assert_eq!(Keypair::load(&path).unwrap().address(), keys[winner].address());
        assert_eq!(names(dir.path()), ["k.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn group_or_world_accessible_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let kp = Keypair::generate().unwrap();
        kp.save(&path).unwrap();
        for mode in [0o640, 0o604, 0o644, 0o660, 0o620, 0o610, 0o601, 0o700 | 0o040] {
            chmod(&path, mode);
            let err = Keypair::load(&path).unwrap_err();
            assert!(matches!(err, KeyError::Permissions { mode: m, .. } if m == mode), "{mode:o}: {err}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("chmod 600 {}", path.display())), "{msg}");
            assert!(msg.contains(&format!("{mode:03o}")), "{msg}");
        }
        for mode in [0o600, 0o400, 0o700] {
            chmod(&path, mode);
            assert_eq!(Keypair::load(&path).unwrap().address(), kp.address(), "{mode:o}");
        }
    }

    #[test]
    fn tampered_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let kp = Keypair::from_seed(&[1; 32]);
        let other = Keypair::from_seed(&[2; 32]);
        let text = format!(r#"{{"address":"{}","secret_key":"{}"}}"#, other.address(), hex::encode(kp.secret_bytes()));
        write_secret_file(&path, text.as_bytes()).unwrap();
        let err = Keypair::load(&path).unwrap_err();
        assert!(matches!(err, KeyError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("does not belong"), "{err}");
    }

    #[test]
    fn truncated_or_empty_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let kp = Keypair::from_seed(&[3; 32]);
        let whole = format!(r#"{{"address":"{}","secret_key":"{}"}}"#, kp.address(), hex::encode(kp.secret_bytes()));
        for cut in [0, 1, 20, whole.len() - 10, whole.len() - 1] {
            let path = dir.path().join(format!("k{cut}.json"));
            write_secret_file(&path, &whole.as_bytes()[..cut]).unwrap();
            assert!(matches!(Keypair::load(&path), Err(KeyError::Invalid { .. })), "cut at {cut}");
        }
        let short = format!(r#"{{"address":"{}","secret_key":"{}"}}"#, kp.address(), hex::encode([3u8; 31]));
        let path = dir.path().join("short.json");
        write_secret_file(&path, short.as_bytes()).unwrap();
        let err = Keypair::load(&path).unwrap_err();
        assert!(err.to_string().contains("must be 32 bytes"), "{err}");
        let path = dir.path().join("whole.json");
        write_secret_file(&path, whole.as_bytes()).unwrap();
        assert_eq!(Keypair::load(&path).unwrap().address(), kp.address());
    }

    #[test]
    fn missing_directory_or_file_is_an_io_error() {
        let path = Path::new("target-keys-test-does-not-exist-dir/k.json");
        assert!(matches!(write_secret_file(path, b"x"), Err(KeyError::Io { .. })));
        assert!(matches!(read_secret_file(Path::new("/nonexistent/k.json")), Err(KeyError::Io { .. })));
    }

    /// A mounted secret owned by someone else (here uid 4242) may be readable by others for a
    /// node key, never writable; a wallet key (strict) and a loose file of our own are refused.
    /// Needs root to hand the file to another user (CI runs as root); elsewhere it checks only
    /// what it can.
    #[cfg(unix)]
    #[test]
    fn provided_secrets_owned_by_another_user_may_be_readable_not_writable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-key");
        std::fs::write(&path, "secret").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // Our own loose file: refused either way.
        assert!(matches!(read_provided_secret_file(&path), Err(KeyError::Permissions { mode: 0o644, .. })));
        if own_uid() != Some(0) || std::os::unix::fs::chown(&path, Some(4242), Some(4242)).is_err() {
            return;
        }
        let (text, loose) = read_provided_secret_file(&path).unwrap();
        assert_eq!((text.as_str(), loose), ("secret", Some(0o644)));
        assert!(matches!(read_secret_file(&path), Err(KeyError::Permissions { .. })), "wallet keys stay strict");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(read_provided_secret_file(&path), Err(KeyError::Permissions { mode: 0o666, .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(read_provided_secret_file(&path).unwrap().1, None);
    }
}
