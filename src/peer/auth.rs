//! Proving the cluster secret between members (`--cluster-secret-file`).
//!
//! A connection that claimed membership in HELLO proves it knows the shared secret
//! with a challenge-response that both sides' fresh nonces make replay-proof:
//!
//! 1. the initiator sends CHALLENGE with its nonce `Ni`; the receiver answers with a
//!    fresh nonce `Nr`, kept on the connection for one AUTH;
//! 2. the initiator sends AUTH with `HMAC-SHA256(secret, "groupcached-peer-auth-v1
//!    initiator" 0x00, len(id), id, Ni, Nr)`, `id` being the node id of its HELLO;
//!    the receiver checks it in constant time, forgets `Nr` whatever the outcome, and
//!    on success answers with the same HMAC under the label `... responder`, which
//!    proves to the initiator that it reached a holder of the secret too.
//!
//! docs/protocol.md ("Proving the cluster secret") is the byte-level description,
//! with a worked example that `tests/protocol_doc.rs` checks against this module.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use groupcached_protocol::{NONCE_LEN, PROOF_LEN};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::NonceError;

type HmacSha256 = Hmac<Sha256>;

/// The label that starts the initiator's HMAC input (followed by a 0x00 byte).
pub const INITIATOR_LABEL: &[u8] = b"groupcached-peer-auth-v1 initiator";
/// The label that starts the responder's HMAC input (followed by a 0x00 byte).
pub const RESPONDER_LABEL: &[u8] = b"groupcached-peer-auth-v1 responder";
/// A secret shorter than this is accepted with a warning.
pub const RECOMMENDED_MIN_LEN: usize = 16;
/// A secret file larger than this is refused: it is not a secret but a mistake.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// A nonce as sent in CHALLENGE.
pub type Nonce = [u8; NONCE_LEN];
/// A proof as sent in AUTH.
pub type Proof = [u8; PROOF_LEN];

/// The cluster's shared secret. Its bytes are never printed: `Debug` shows the file
/// it came from only, and there is no `Display`.
#[derive(Clone)]
pub struct ClusterSecret {
    key: Arc<[u8]>,
    path: Option<PathBuf>,
    warnings: Vec<String>,
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSecret")
            .field("path", &self.path)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ClusterSecret {
    /// A secret given directly (for a server embedded as a library). Fails on an
    /// empty secret.
    pub fn from_bytes(key: &[u8]) -> Result<ClusterSecret, SecretError> {
        if key.is_empty() {
            return Err(SecretError::Empty { path: None });
        }
        let mut warnings = Vec::new();
        if key.len() < RECOMMENDED_MIN_LEN {
            warnings.push(format!(
                "the cluster secret is only {} bytes long; use at least {RECOMMENDED_MIN_LEN} \
                 random bytes (e.g. `openssl rand -hex 32`)",
                key.len()
            ));
        }
        Ok(ClusterSecret {
            key: key.into(),
            path: None,
            warnings,
        })
    }

    /// Reads the secret from `path`: the file's bytes without one trailing line end
    /// (`\n` or `\r\n`), so `echo SECRET > file` works. Fails, with a message that
    /// names the file, if it cannot be read, is empty or is larger than 64 KiB. A
    /// file that every user may read, or a short secret, is accepted with a warning
    /// (see [`ClusterSecret::warnings`]).
    pub fn from_file(path: &Path) -> Result<ClusterSecret, SecretError> {
        let shown = path.display();
        let unreadable = |source| SecretError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        if !meta.is_file() {
            return Err(SecretError::NotAFile(path.to_path_buf()));
        }
        if meta.len() > MAX_SECRET_FILE {
            return Err(SecretError::TooLarge {
                path: path.to_path_buf(),
                len: meta.len(),
            });
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_SECRET_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(SecretError::Empty {
                path: Some(path.to_path_buf()),
            });
        }
        let mut secret = ClusterSecret::from_bytes(&bytes)?;
        secret.path = Some(path.to_path_buf());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            if mode & 0o004 != 0 {
                secret.warnings.push(format!(
                    "the cluster secret file {shown} is readable by every user of this machine \
                     (mode {:o}); make it readable by the server's user only (chmod 600)",
                    mode & 0o777
                ));
            }
        }
        Ok(secret)
    }

    /// The file the secret was read from, if any (what `--print-config` shows).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// What an operator should be told about the secret at start (world-readable
    /// file, short secret). Never contains the secret.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn mac(
        &self,
        label: &[u8],
        node_id: &[u8],
        initiator: &Nonce,
        responder: &Nonce,
    ) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        let id = &node_id[..node_id.len().min(u8::MAX as usize)];
        mac.update(label);
        mac.update(&[0]);
        mac.update(&[id.len() as u8]);
        mac.update(id);
        mac.update(initiator);
        mac.update(responder);
        mac
    }

    /// The AUTH request's proof: that the member named `node_id` (its HELLO's node
    /// id) knows the secret, bound to both nonces of this handshake.
    pub fn initiator_proof(&self, node_id: &[u8], initiator: &Nonce, responder: &Nonce) -> Proof {
        self.mac(INITIATOR_LABEL, node_id, initiator, responder)
            .finalize()
            .into_bytes()
            .into()
    }

    /// The AUTH response's proof: that the receiver knows the secret too.
    pub fn responder_proof(&self, node_id: &[u8], initiator: &Nonce, responder: &Nonce) -> Proof {
        self.mac(RESPONDER_LABEL, node_id, initiator, responder)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `proof` is the initiator's proof, compared in constant time.
    pub fn verify_initiator(
        &self,
        node_id: &[u8],
        initiator: &Nonce,
        responder: &Nonce,
        proof: &[u8],
    ) -> bool {
        self.mac(INITIATOR_LABEL, node_id, initiator, responder)
            .verify_slice(proof)
            .is_ok()
    }

    /// Whether `proof` is the responder's proof, compared in constant time.
    pub fn verify_responder(
        &self,
        node_id: &[u8],
        initiator: &Nonce,
        responder: &Nonce,
        proof: &[u8],
    ) -> bool {
        self.mac(RESPONDER_LABEL, node_id, initiator, responder)
            .verify_slice(proof)
            .is_ok()
    }
}

/// Why a cluster secret cannot be used. `Display` names the file and says what to do.
#[derive(Debug)]
pub enum SecretError {
    /// The secret (or the file, `path`, without its line end) is empty.
    Empty {
        /// The file it came from, if any.
        path: Option<PathBuf>,
    },
    /// The file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The path is not a regular file.
    NotAFile(PathBuf),
    /// The file is larger than a secret file may be (64 KiB).
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::Empty { path: None } => f.write_str("the cluster secret is empty"),
            SecretError::Empty { path: Some(p) } => write!(
                f,
                "{} is empty: put the cluster's shared secret in it (the same on every \
                 member, e.g. from `openssl rand -hex 32`)",
                p.display()
            ),
            SecretError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            SecretError::NotAFile(p) => write!(f, "{} is not a regular file", p.display()),
            SecretError::TooLarge { path, len } => write!(
                f,
                "{} is {len} bytes; a cluster secret file holds one secret of at most \
                 {MAX_SECRET_FILE} bytes",
                path.display()
            ),
        }
    }
}

impl std::error::Error for SecretError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SecretError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// For callers that report configuration errors as text (`ConfigError`'s message).
impl From<SecretError> for String {
    fn from(e: SecretError) -> String {
        e.to_string()
    }
}

/// A fresh random nonce from the operating system.
pub fn fresh_nonce() -> Result<Nonce, NonceError> {
    let mut n = [0u8; NONCE_LEN];
    getrandom::fill(&mut n).map_err(NonceError)?;
    Ok(n)
}

/// The receiving side's record of one connection's handshake.
#[derive(Debug, Default)]
pub struct AuthState {
    /// The nonces (initiator's, ours) of the CHALLENGE answered last and not yet
    /// used by an AUTH. Taken by the next AUTH, whatever its outcome, so a proof can
    /// be tried once.
    challenge: Option<Box<(Nonce, Nonce)>>,
    /// The connection proved the secret for the node id of its latest member HELLO.
    pub proven: bool,
}

impl AuthState {
    /// Records a CHALLENGE answered with `ours`; a previous unused one is forgotten.
    pub fn challenged(&mut self, theirs: Nonce, ours: Nonce) {
        self.challenge = Some(Box::new((theirs, ours)));
    }

    /// Takes the pending challenge's nonces (for one AUTH).
    pub fn take_challenge(&mut self) -> Option<(Nonce, Nonce)> {
        self.challenge.take().map(|b| *b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> ClusterSecret {
        ClusterSecret::from_bytes(b"correct horse battery staple").unwrap()
    }

    #[test]
    fn proofs_bind_the_label_the_node_id_and_both_nonces() {
        let s = secret();
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let p = s.initiator_proof(b"10.0.0.1:7000", &a, &b);
        assert!(s.verify_initiator(b"10.0.0.1:7000", &a, &b, &p));
        assert!(!s.verify_initiator(b"10.0.0.3:7000", &a, &b, &p));
        assert!(!s.verify_initiator(b"10.0.0.1:7000", &b, &a, &p));
        assert!(!s.verify_initiator(b"10.0.0.1:7000", &a, &[3u8; 16], &p));
        assert!(!s.verify_responder(b"10.0.0.1:7000", &a, &b, &p));
        assert!(!s.verify_initiator(b"10.0.0.1:7000", &a, &b, &p[..31]));
        let r = s.responder_proof(b"10.0.0.1:7000", &a, &b);
        assert_ne!(p, r);
        assert!(s.verify_responder(b"10.0.0.1:7000", &a, &b, &r));
        let other = ClusterSecret::from_bytes(b"another secret, another cluster").unwrap();
        assert!(!other.verify_initiator(b"10.0.0.1:7000", &a, &b, &p));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", secret());
        assert!(!shown.contains("horse"), "{shown}");
    }

    #[test]
    fn a_challenge_is_used_once() {
        let mut st = AuthState::default();
        assert!(st.take_challenge().is_none());
        st.challenged([1; 16], [2; 16]);
        assert_eq!(st.take_challenge(), Some(([1; 16], [2; 16])));
        assert!(st.take_challenge().is_none());
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(fresh_nonce().unwrap(), fresh_nonce().unwrap());
    }

    #[test]
    fn files_are_checked() {
        let dir = std::env::temp_dir().join(format!("gc-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, b"\n").unwrap();
        let e = ClusterSecret::from_file(&empty).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
        let e = ClusterSecret::from_file(&dir.join("missing")).unwrap_err();
        assert!(matches!(e, SecretError::Read { .. }));
        assert!(e.to_string().contains("cannot read"), "{e}");
        let ok = dir.join("ok");
        std::fs::write(&ok, b"0123456789abcdef0123\r\n").unwrap();
        let s = ClusterSecret::from_file(&ok).unwrap();
        let direct = ClusterSecret::from_bytes(b"0123456789abcdef0123").unwrap();
        let (a, b) = ([5u8; 16], [6u8; 16]);
        assert_eq!(
            s.initiator_proof(b"x", &a, &b),
            direct.initiator_proof(b"x", &a, &b),
            "one trailing line end is not part of the secret"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o644)).unwrap();
            let s = ClusterSecret::from_file(&ok).unwrap();
            assert!(s
                .warnings()
                .iter()
                .any(|w| w.contains("readable by every user")));
            std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert!(ClusterSecret::from_file(&ok).unwrap().warnings().is_empty());
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
