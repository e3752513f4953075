//! `http://host:port/prefix{key}`: values from an HTTP service.

use std::time::Duration;

use super::{LoadContext, Loaded, Origin, OriginError};

/// Loads `GET template-with-key`; 200 is a value, 404/410 is NOT_FOUND, anything else
/// an error. The key is percent-encoded except for unreserved characters and `/`, so
/// path-like keys keep their shape.
pub struct HttpOrigin {
    template: String,
    agent: ureq::Agent,
}

impl HttpOrigin {
    /// An origin for a URL template containing `{key}`; every request is bounded by `timeout`.
    pub fn new(template: String, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(3)
            .build()
            .into();
        HttpOrigin { template, agent }
    }

    /// The URL for `key`.
    pub fn url_for(&self, key: &[u8]) -> String {
        self.template.replace("{key}", &percent_encode(key))
    }
}

/// Percent-encodes every byte except `A-Z a-z 0-9 - . _ ~ /`.
pub fn percent_encode(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len() * 3);
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Origin for HttpOrigin {
    fn load(&self, key: &[u8], ctx: &LoadContext) -> Result<Option<Loaded>, OriginError> {
        let url = self.url_for(key);
        let mut resp = match self.agent.get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::Timeout(_)) => return Err(OriginError::Timeout),
            Err(e) => return Err(OriginError::Failed(format!("GET {url}: {e}"))),
        };
        match resp.status().as_u16() {
            200 => {}
            404 | 410 => return Ok(None),
            s => return Err(OriginError::Failed(format!("GET {url}: HTTP status {s}"))),
        }
        let value = resp
            .body_mut()
            .with_config()
            .limit(ctx.max_size as u64 + 1)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::Timeout(_) => OriginError::Timeout,
                ureq::Error::BodyExceedsLimit(_) => OriginError::TooLarge {
                    size: ctx.max_size as u64 + 1,
                    max: ctx.max_size,
                },
                e => OriginError::Failed(format!("GET {url}: reading body: {e}")),
            })?;
        Ok(Some(Loaded::new(value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_byte_exact() {
        assert_eq!(percent_encode(b"a/b c+d%e"), "a/b%20c%2Bd%25e");
        assert_eq!(percent_encode(&[0xff, b'x']), "%FFx");
        let o = HttpOrigin::new("http://h:1/p/{key}?v=1".into(), Duration::from_secs(1));
        assert_eq!(o.url_for(b"k 1"), "http://h:1/p/k%201?v=1");
    }
}
