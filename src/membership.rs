//! Where the member list comes from: `--peers`, a `--peers-file` or `--peers-dns`,
//! and how a list is read and parsed. Reading may block (file or DNS I/O), so it is
//! done off the event loops; the thread that watches the source and hands the cores
//! a new ring is `server::membership`, above the cores in the module layers.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Where members come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSource {
    /// A fixed list (`--peers`); empty for a single node.
    Static(Vec<String>),
    /// One `host:port` per line (`#` comments and blank lines ignored).
    File(PathBuf),
    /// Every address `host` resolves to, with `port`.
    Dns {
        /// The name (e.g. a Kubernetes headless service).
        host: String,
        /// The port members listen on.
        port: u16,
    },
}

impl PeerSource {
    /// Reads the current member list (blocking: file or DNS I/O).
    pub fn read(&self) -> Result<Vec<String>, SourceError> {
        match self {
            PeerSource::Static(list) => Ok(list.clone()),
            PeerSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SourceError::File {
                    path: path.clone(),
                    source,
                })?;
                Ok(parse_member_lines(&text))
            }
            PeerSource::Dns { host, port } => {
                let mut addrs: Vec<SocketAddr> = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|source| SourceError::Dns {
                        host: host.clone(),
                        source,
                    })?
                    .collect();
                addrs.sort();
                addrs.dedup();
                Ok(addrs.iter().map(|a| a.to_string()).collect())
            }
        }
    }
}

/// The member list could not be read.
#[derive(Debug)]
pub enum SourceError {
    /// The `--peers-file` cannot be read.
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The `--peers-dns` name does not resolve.
    Dns {
        /// The name.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::File { path, source } => {
                write!(f, "cannot read peers file {}: {source}", path.display())
            }
            SourceError::Dns { host, source } => write!(f, "cannot resolve {host}: {source}"),
        }
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SourceError::File { source, .. } | SourceError::Dns { source, .. } => Some(source),
        }
    }
}

/// Members listed one per line; `#` starts a comment.
pub fn parse_member_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_lines_skip_comments_and_blanks() {
        let text = "# cluster\n10.0.0.1:7000\n\n  10.0.0.2:7000  # second\n";
        assert_eq!(
            parse_member_lines(text),
            vec!["10.0.0.1:7000", "10.0.0.2:7000"]
        );
    }

    #[test]
    fn dns_source_lists_every_address_with_the_port() {
        let src = PeerSource::Dns {
            host: "localhost".into(),
            port: 7000,
        };
        let members = src.read().unwrap();
        assert!(members.iter().all(|m| m.ends_with(":7000")), "{members:?}");
        assert!(!members.is_empty());
    }
}
