//! `http://host:port/prefix{key}`: values from an HTTP service.
//!
//! The key rule (also in docs/operations.md, "Origins"): a key reaches the origin
//! only inside the part of the URL the template gives it, never above it.
//!
//! - **Encoding.** Every byte except `A-Z a-z 0-9 - . _ ~ /` is percent-encoded,
//!   `%` itself included, so a key cannot end the path or add to the query
//!   (`?`, `#`, `&`, `=`, `+`, `;` and spaces arrive encoded) and a `%2e` in a key
//!   arrives as the literal text `%252e`, not as a dot.
//! - **Segments.** Split at every `/` and `\`, each piece of the key must be
//!   non-empty and neither `.` nor `..`; otherwise the key is refused with
//!   BAD_REQUEST before any request is made. So no leading, trailing or doubled
//!   `/`, and no dot segment that an origin (or a proxy before it) could resolve
//!   to leave the prefix. `\` counts as a separator because some servers treat
//!   `%5C` as `/`.
//! - **Decoded forms too.** The same segment rule is applied to the key with its
//!   percent-escapes decoded, repeatedly: `%2e%2e`, `%252e%252e` and `..%2f` are
//!   refused as well, for origins that decode more than once.
//! - **Redirects are not followed.** A 3xx answer is an origin error naming the
//!   `Location`; point the template at the final URL instead.
//! - **Where `{key}` may stand** (checked at start): in the path or the query of
//!   the template, never in the scheme, host, port or fragment.

use std::fmt;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use super::{LoadContext, Loaded, Origin, OriginError};

/// What a key's bytes are encoded with: everything but `A-Z a-z 0-9 - . _ ~ /`.
const KEY_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Loads `GET template-with-key`; 200 is a value, 404/410 is NOT_FOUND, anything else
/// (redirects included) an error. Keys are checked and encoded by the rule in this
/// module's documentation, so a key can only name things under the template's prefix.
pub struct HttpOrigin {
    template: String,
    agent: ureq::Agent,
}

impl HttpOrigin {
    /// An origin for a URL template containing `{key}`; a request is bounded by
    /// `timeout` (or less: the time its load has left when it starts).
    pub fn new(template: String, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            // Never follow: a redirect could lead anywhere, and its target would be
            // cached and served as this key's value.
            .max_redirects(0)
            .build()
            .into();
        HttpOrigin { template, agent }
    }

    /// The URL for `key`, or why the key cannot be asked for.
    pub fn url_for(&self, key: &[u8]) -> Result<String, OriginError> {
        check_key(key)?;
        Ok(self.template.replace("{key}", &percent_encode(key)))
    }
}

/// Why an origin URL template was refused; the message quotes the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    template: String,
    problem: TemplateProblem,
}

/// What is wrong with an origin URL template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateProblem {
    /// Not `http://` (https is refused earlier, with its own advice).
    NotHttp,
    /// No `{key}` placeholder.
    NoPlaceholder,
    /// `{key}` in the host or port: a key could choose the server.
    KeyInAuthority,
    /// `{key}` in the fragment, which is never sent.
    KeyInFragment,
    /// No host to connect to.
    NoHost,
    /// The URL does not parse (the parser's message).
    Invalid(String),
}

impl TemplateError {
    fn new(template: &str, problem: TemplateProblem) -> Self {
        TemplateError {
            template: template.to_string(),
            problem,
        }
    }

    /// What is wrong.
    pub fn problem(&self) -> &TemplateProblem {
        &self.problem
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.template;
        match &self.problem {
            TemplateProblem::NotHttp => write!(f, "`{t}` does not start with http://"),
            TemplateProblem::NoPlaceholder => write!(
                f,
                "`{t}` has no `{{key}}` placeholder (e.g. http://origin:8080/items/{{key}})"
            ),
            TemplateProblem::KeyInAuthority => write!(
                f,
                "`{t}`: `{{key}}` must be in the path or query, not in the host or port"
            ),
            TemplateProblem::KeyInFragment => {
                write!(
                    f,
                    "`{t}`: `{{key}}` is in the fragment, which is never sent"
                )
            }
            TemplateProblem::NoHost => write!(f, "`{t}` has no host"),
            TemplateProblem::Invalid(why) => write!(f, "`{t}` is not a valid URL: {why}"),
        }
    }
}

impl std::error::Error for TemplateError {}

/// For callers that collect configuration messages as text.
impl From<TemplateError> for String {
    fn from(e: TemplateError) -> String {
        e.to_string()
    }
}

/// Checks that `template` is an `http://` URL with a host, in which `{key}` stands
/// only in the path or query.
pub fn check_template(template: &str) -> Result<(), TemplateError> {
    let bad = |problem| Err(TemplateError::new(template, problem));
    let Some(rest) = template.strip_prefix("http://") else {
        return bad(TemplateProblem::NotHttp);
    };
    if !template.contains("{key}") {
        return bad(TemplateProblem::NoPlaceholder);
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains("{key}") {
        return bad(TemplateProblem::KeyInAuthority);
    }
    if let Some(hash) = rest.find('#') {
        if rest[hash..].contains("{key}") {
            return bad(TemplateProblem::KeyInFragment);
        }
    }
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return bad(TemplateProblem::NoHost);
    }
    let sample = template.replace("{key}", "k");
    let uri: ureq::http::Uri = match sample.parse() {
        Ok(uri) => uri,
        Err(e) => return bad(TemplateProblem::Invalid(e.to_string())),
    };
    if uri.host().is_none_or(str::is_empty) {
        return bad(TemplateProblem::NoHost);
    }
    Ok(())
}

/// Refuses keys that could reach outside the template's prefix (the segment rule in
/// this module's documentation), on the key as given and on its decoded forms.
pub fn check_key(key: &[u8]) -> Result<(), OriginError> {
    let mut form = key.to_vec();
    // Each round decodes one layer of percent-escapes; four layers is more than any
    // real stack of proxies and servers decodes, and a key that still changes after
    // that is refused rather than guessed about.
    for round in 0..=4 {
        check_segments(&form)?;
        let decoded = percent_decode(&form);
        if decoded == form {
            return Ok(());
        }
        if round == 4 {
            break;
        }
        form = decoded;
    }
    Err(OriginError::InvalidKey(
        "key is percent-encoded more than four layers deep".into(),
    ))
}

fn check_segments(key: &[u8]) -> Result<(), OriginError> {
    if key.is_empty() {
        return Err(OriginError::InvalidKey("empty key".into()));
    }
    for seg in key.split(|&b| b == b'/' || b == b'\\') {
        match seg {
            b"" => {
                return Err(OriginError::InvalidKey(
                    "key has an empty path segment (leading, trailing or doubled `/` or `\\`)"
                        .into(),
                ))
            }
            b"." | b".." => {
                return Err(OriginError::InvalidKey(
                    "key has a `.` or `..` path segment".into(),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Decodes every valid `%XX` escape; anything else is kept as it is.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    percent_encoding::percent_decode(s).collect()
}

/// Percent-encodes every byte except `A-Z a-z 0-9 - . _ ~ /` (upper-case hex).
pub fn percent_encode(key: &[u8]) -> String {
    percent_encoding::percent_encode(key, KEY_ENCODE_SET).to_string()
}

impl Origin for HttpOrigin {
    fn load(&self, key: &[u8], ctx: &LoadContext) -> Result<Option<Loaded>, OriginError> {
        let url = self.url_for(key)?;
        let request = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(ctx.timeout))
            .build();
        let mut resp = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::Timeout(_)) => return Err(OriginError::Timeout),
            Err(e) => return Err(OriginError::Failed(format!("GET {url}: {e}"))),
        };
        match resp.status().as_u16() {
            200 => {}
            404 | 410 => return Ok(None),
            s @ 300..=399 => {
                let to = resp
                    .headers()
                    .get("location")
                    .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned())
                    .unwrap_or_else(|| "nowhere".into());
                return Err(OriginError::Failed(format!(
                    "GET {url}: HTTP status {s}, a redirect to `{to}`, which is not followed \
                     (point the origin template at the final location)"
                )));
            }
            s => return Err(OriginError::Failed(format!("GET {url}: HTTP status {s}"))),
        }
        // For a body over the limit, the size it announced (if any) says by how much.
        let announced = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let value = resp
            .body_mut()
            .with_config()
            .limit(ctx.max_size as u64 + 1)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::Timeout(_) => OriginError::Timeout,
                ureq::Error::BodyExceedsLimit(_) => OriginError::TooLarge {
                    size: announced
                        .filter(|&n| n > ctx.max_size as u64)
                        .unwrap_or(ctx.max_size as u64 + 1),
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

    fn origin(t: &str) -> HttpOrigin {
        HttpOrigin::new(t.into(), Duration::from_secs(1))
    }

    #[test]
    fn keys_are_percent_encoded_byte_exact() {
        assert_eq!(percent_encode(b"a/b c+d%e"), "a/b%20c%2Bd%25e");
        assert_eq!(percent_encode(&[0xff, b'x']), "%FFx");
        assert_eq!(percent_encode(b"-._~/Az09"), "-._~/Az09");
        assert_eq!(percent_encode(b"\0\x7f!*'()"), "%00%7F%21%2A%27%28%29");
        let o = origin("http://h:1/p/{key}?v=1");
        assert_eq!(o.url_for(b"k 1").unwrap(), "http://h:1/p/k%201?v=1");
    }

    #[test]
    fn keys_cannot_touch_the_query_or_fragment() {
        let o = origin("http://h:1/p/{key}?v=1");
        assert_eq!(
            o.url_for(b"x?admin=1&y=2#f").unwrap(),
            "http://h:1/p/x%3Fadmin%3D1%26y%3D2%23f?v=1"
        );
        let q = origin("http://h:1/get?id={key}&v=1");
        assert_eq!(
            q.url_for(b"a&v=2+b;c").unwrap(),
            "http://h:1/get?id=a%26v%3D2%2Bb%3Bc&v=1"
        );
    }

    #[test]
    fn dot_and_empty_segments_are_refused_in_every_form() {
        let o = origin("http://h:1/items/{key}");
        for bad in [
            &b"../internal/secret"[..],
            b"..",
            b".",
            b"a/../b",
            b"a/./b",
            b"a/..",
            b"/etc/passwd",
            b"a//b",
            b"a/",
            b"",
            b"..\\secret",
            b"a\\..\\b",
            b"a\\",
            b"%2e%2e/secret",
            b"%2E%2e",
            b"%252e%252e/x",
            b"..%2fsecret",
            b"..%5Csecret",
            b"a%2f%2fb",
            b"%25252525252e",
        ] {
            assert!(
                matches!(o.url_for(bad), Err(OriginError::InvalidKey(_))),
                "{:?} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
        for good in [
            &b"a"[..],
            b"a/b/c.jpg",
            b"...",
            b".hidden",
            b"a..b",
            b"..a/b..",
            b"100%",
            b"%zz",
            b"~user/x",
        ] {
            assert!(
                o.url_for(good).is_ok(),
                "{:?} was refused",
                String::from_utf8_lossy(good)
            );
        }
        assert_eq!(o.url_for(b"100%").unwrap(), "http://h:1/items/100%25");
    }

    #[test]
    fn templates_put_the_key_in_the_path_or_query_only() {
        for good in [
            "http://h:1/items/{key}",
            "http://h/items/{key}.jpg",
            "http://h:8080/get?k={key}",
            "http://127.0.0.1:9/{key}",
            "http://[::1]:9/x/{key}",
        ] {
            assert_eq!(check_template(good), Ok(()), "{good}");
        }
        for bad in [
            "http://{key}/x",
            "http://h{key}/x",
            "http://h:{key}/x",
            "http://user@{key}/x",
            "http:///{key}",
            "http://:80/{key}",
            "http://h/x#{key}",
            "http://h/x",
            "https://h/{key}",
            "http://h/ {key}",
        ] {
            assert!(check_template(bad).is_err(), "{bad} was accepted");
        }
        for (bad, problem) in [
            ("https://h/{key}", TemplateProblem::NotHttp),
            ("http://h/x", TemplateProblem::NoPlaceholder),
            ("http://h:{key}/x", TemplateProblem::KeyInAuthority),
            ("http://h/x#{key}", TemplateProblem::KeyInFragment),
            ("http://:80/{key}", TemplateProblem::NoHost),
        ] {
            let e = check_template(bad).unwrap_err();
            assert_eq!(e.problem(), &problem, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
