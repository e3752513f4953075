//! Printing: the configuration as the TOML file `--print-config` writes (which
//! `--config` reads back to the same configuration), and the start-up summary line.

use std::fmt;
use std::path::PathBuf;

use groupcached_protocol::PROTOCOL_VERSION;

use super::settings::{Args, GroupSettings};
use super::Config;
use crate::membership::PeerSource;
use crate::origin::OriginSpec;
use crate::units::{format_duration, format_size};

/// Why a configuration cannot be written as a file.
#[derive(Debug)]
pub enum PrintError {
    /// A group's origin is an embedded [`Origin`](crate::Origin), which has no text form.
    EmbeddedOrigin {
        /// The group.
        group: String,
    },
    /// The cluster secret was given as bytes, not as a file a file could name.
    InlineSecret,
    /// The TOML writer refused the layer (a bug: every field has a TOML form).
    Toml(toml::ser::Error),
}

impl fmt::Display for PrintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrintError::EmbeddedOrigin { group } => write!(
                f,
                "group `{group}` has an embedded (custom) origin, which a file cannot name"
            ),
            PrintError::InlineSecret => f.write_str(
                "the cluster secret was given directly (not from a file), which a file cannot name",
            ),
            PrintError::Toml(e) => write!(f, "cannot write TOML: {e}"),
        }
    }
}

impl std::error::Error for PrintError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PrintError::Toml(e) => Some(e),
            _ => None,
        }
    }
}

impl Config {
    /// The configuration as a layer with every setting spelled out: what
    /// `--print-config` writes, and what [`Config::from_parsed`] turns back into
    /// this configuration.
    pub(crate) fn to_layer(&self) -> Result<Args, PrintError> {
        let mut layer = Args::default();
        layer.print_scalars(self);
        match &self.peers {
            PeerSource::Static(list) => layer.peers = Some(list.clone()),
            PeerSource::File(path) => layer.peers_file = Some(path.clone()),
            PeerSource::Dns { host, port } => layer.peers_dns = Some(format!("{host}:{port}")),
        }
        // The path only: the secret itself is never printed. Spelled out as ""
        // (none) when there is no secret, which loads back as none.
        layer.cluster_secret_file = Some(match &self.cluster_secret {
            None => PathBuf::new(),
            Some(secret) => secret
                .path()
                .map(PathBuf::from)
                .ok_or(PrintError::InlineSecret)?,
        });
        for g in &self.groups {
            if let OriginSpec::Custom(_) = g.origin {
                return Err(PrintError::EmbeddedOrigin {
                    group: g.name.clone(),
                });
            }
            layer.group.push(GroupSettings::print(g));
        }
        Ok(layer)
    }

    /// The configuration as a TOML file that `--config` accepts, with every setting
    /// spelled out (what `--print-config` prints). Loading it back gives the same
    /// configuration. Fails only for what a file cannot name: an embedded origin or
    /// a secret not read from a file.
    pub fn to_toml(&self) -> Result<String, PrintError> {
        let body = toml::to_string(&self.to_layer()?).map_err(PrintError::Toml)?;
        Ok(format!(
            "# groupcached {} effective configuration: flags > GROUPCACHED_* environment >\n\
             # --config file > defaults. Load it with `groupcached --config FILE`.\n{body}",
            env!("CARGO_PKG_VERSION")
        ))
    }

    /// The settings an operator checks first, for the start-up log line.
    pub fn summary(&self) -> String {
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|g| {
                let ttl = g.ttl.map_or("none".to_string(), format_duration);
                format!(
                    "{} (budget {}, origin {}, ttl {}, {} loader threads, queue {})",
                    g.name,
                    format_size(g.cache_bytes),
                    g.origin,
                    ttl,
                    g.loader_threads.unwrap_or(self.loader_threads),
                    g.loader_queue.unwrap_or(self.loader_queue)
                )
            })
            .collect();
        let members = match &self.peers {
            PeerSource::Static(list) if list.is_empty() => "single node".to_string(),
            PeerSource::Static(list) => format!("peers {}", list.join(",")),
            PeerSource::File(p) => format!(
                "peers from file {} (every {})",
                p.display(),
                format_duration(self.peers_refresh)
            ),
            PeerSource::Dns { host, port } => format!(
                "peers from DNS {host}:{port} (every {})",
                format_duration(self.peers_refresh)
            ),
        };
        format!(
            "protocol v{PROTOCOL_VERSION}, {} threads, {} loader threads per group, max {} connections, \
             max frame {}, {members}, peer auth {}, metrics {}, memcache {}, groups: {}",
            self.threads,
            self.loader_threads,
            self.max_connections,
            format_size(self.max_frame as u64),
            if self.cluster_secret.is_some() {
                "on (cluster secret)"
            } else {
                "off"
            },
            self.metrics_listen
                .map_or_else(|| "off".to_string(), |a| a.to_string()),
            self.memcache_listen.map_or_else(
                || "off".to_string(),
                |a| format!(
                    "{a} (group {}{})",
                    self.memcache_group
                        .as_deref()
                        .or(self.groups.first().map(|g| g.name.as_str()))
                        .unwrap_or("?"),
                    if self.memcache_group_prefix {
                        ", group:key addressing"
                    } else {
                        ""
                    }
                )
            ),
            groups.join("; ")
        )
    }
}
