//! What the metrics endpoint answers: the request line parsed into method and path,
//! and the route from it to an [`Answer`] (`/metrics`, `/healthz`, 400/404/405).
//! The connection handling around it is in `http.rs`.

use std::sync::atomic::Ordering;

use crate::shared::Shared;

/// What a request head says, or why it cannot be answered normally.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Method and path (query string removed).
    Request {
        /// The method.
        method: &'a str,
        /// The path.
        path: &'a str,
    },
    /// Not an HTTP/1.x request line.
    Bad,
}

/// Parses the request line of a head.
pub fn parse_request_line(head: &[u8]) -> Parsed<'_> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Parsed::Bad;
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Bad;
    };
    if method.is_empty() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Parsed::Bad;
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Parsed::Request { method, path }
}

/// An answer: status line, content type, body, and an optional `Allow` header.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// Content-Type.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
    /// Methods allowed, for a 405.
    pub allow: Option<&'static str>,
}

const TEXT: &str = "text/plain; charset=utf-8";

pub(super) fn text(status: u16, reason: &'static str, body: &str) -> Answer {
    Answer {
        status,
        reason,
        content_type: TEXT,
        body: body.as_bytes().to_vec(),
        allow: None,
    }
}

/// The answer to a request.
pub fn route(parsed: &Parsed<'_>, shared: &Shared) -> Answer {
    let (method, path) = match parsed {
        Parsed::Request { method, path } => (*method, *path),
        Parsed::Bad => return text(400, "Bad Request", "bad request\n"),
    };
    if !matches!(path, "/metrics" | "/healthz") {
        return text(404, "Not Found", "not found; try /metrics or /healthz\n");
    }
    if method != "GET" {
        return Answer {
            allow: Some("GET"),
            ..text(405, "Method Not Allowed", "method not allowed; use GET\n")
        };
    }
    if path == "/healthz" {
        return if shared.shutdown.load(Ordering::Acquire) {
            text(503, "Service Unavailable", "shutting down\n")
        } else {
            text(200, "OK", "ok\n")
        };
    }
    Answer {
        status: 200,
        reason: "OK",
        content_type: super::exposition::CONTENT_TYPE,
        body: super::render(&shared.registry).into_bytes(),
        allow: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse() {
        assert_eq!(
            parse_request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Parsed::Request {
                method: "GET",
                path: "/metrics"
            }
        );
        assert_eq!(
            parse_request_line(b"GET /healthz?verbose=1 HTTP/1.0\r\n\r\n"),
            Parsed::Request {
                method: "GET",
                path: "/healthz"
            }
        );
        assert_eq!(
            parse_request_line(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Parsed::Request {
                method: "POST",
                path: "/metrics"
            }
        );
        assert_eq!(parse_request_line(b"GET /metrics\r\n\r\n"), Parsed::Bad);
        assert_eq!(
            parse_request_line(b"GET metrics HTTP/1.1\r\n\r\n"),
            Parsed::Bad
        );
        assert_eq!(parse_request_line(b"\xff\xfe\r\n\r\n"), Parsed::Bad);
        assert_eq!(
            parse_request_line(b"GET / HTTP/1.1 extra\r\n\r\n"),
            Parsed::Bad
        );
    }
}
