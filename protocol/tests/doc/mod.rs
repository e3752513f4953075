//! Reading the example blocks of docs/protocol.md. Shared by `protocol/tests/vectors.rs`
//! (checks them against the encoder, decoder and ring) and the server crate's
//! `tests/protocol_doc.rs` (sends them to a real server), so both read the document
//! the same way.
#![allow(dead_code)]

/// A fenced block: its info string, the nearest non-blank line before it, its line
/// number and its lines.
pub struct Block<'a> {
    pub info: &'a str,
    pub title: &'a str,
    pub line: usize,
    pub body: Vec<&'a str>,
}

/// Every fenced block of `doc` that has an info string, in document order.
pub fn fenced(doc: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut prev = "";
    let mut lines = doc.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        if let Some(info) = line.trim_end().strip_prefix("```") {
            let mut body = Vec::new();
            loop {
                let (_, l) = lines
                    .next()
                    .unwrap_or_else(|| panic!("unterminated {info} block at line {}", n + 1));
                if l.trim_end() == "```" {
                    break;
                }
                body.push(l);
            }
            if !info.is_empty() {
                out.push(Block {
                    info,
                    title: prev,
                    line: n + 1,
                    body,
                });
            }
        } else if !line.trim().is_empty() {
            prev = line.trim();
        }
    }
    out
}

/// The blocks with info string `info`.
pub fn blocks<'a>(doc: &'a str, info: &str) -> Vec<Block<'a>> {
    fenced(doc).into_iter().filter(|b| b.info == info).collect()
}

/// The bytes of a `hex-frame` or `hex-bytes` block: hex pairs, `#` comments ignored.
pub fn frame_bytes(block: &Block) -> Vec<u8> {
    let mut out = Vec::new();
    for line in &block.body {
        let hex = line.split('#').next().unwrap();
        for pair in hex.split_whitespace() {
            assert_eq!(pair.len(), 2, "line {}: {pair:?}", block.line);
            out.push(
                u8::from_str_radix(pair, 16)
                    .unwrap_or_else(|e| panic!("line {}: {pair:?}: {e}", block.line)),
            );
        }
    }
    out
}

/// The `<name>` of a `Frame: <name>` line.
pub fn block_name<'a>(block: &Block<'a>) -> &'a str {
    block
        .title
        .strip_prefix("Frame: ")
        .unwrap_or_else(|| panic!("line {}: no `Frame: <name>` line before", block.line))
}

/// What a `Bytes: <description> (<error>, connection kept|closed)` line promises.
pub struct BadFrame<'a> {
    pub description: &'a str,
    /// The `DecodeError` variant, e.g. `BadGroupLength`.
    pub error: &'a str,
    /// Whether the node closes the connection after answering.
    pub closes: bool,
}

pub fn bad_frame<'a>(block: &Block<'a>) -> BadFrame<'a> {
    let at = block.line;
    let rest = block
        .title
        .strip_prefix("Bytes: ")
        .unwrap_or_else(|| panic!("line {at}: no `Bytes: <description>` line before"));
    let (description, outcome) = rest
        .strip_suffix(')')
        .and_then(|r| r.rsplit_once(" ("))
        .unwrap_or_else(|| panic!("line {at}: no `(<error>, connection ...)` at the end"));
    let (error, then) = outcome
        .split_once(", ")
        .unwrap_or_else(|| panic!("line {at}: {outcome:?}"));
    let closes = match then {
        "connection closed" => true,
        "connection kept" => false,
        other => {
            panic!("line {at}: {other:?} is neither `connection kept` nor `connection closed`")
        }
    };
    BadFrame {
        description,
        error,
        closes,
    }
}

/// Every `hex-bytes` block with the `hex-frame` block that follows it (its answer).
pub fn bad_frames_with_answers<'a, 'd>(
    all: &'a [Block<'d>],
) -> Vec<(&'a Block<'d>, &'a Block<'d>)> {
    all.iter()
        .enumerate()
        .filter(|(_, b)| b.info == "hex-bytes")
        .map(|(i, b)| {
            let answer = all
                .get(i + 1)
                .filter(|a| a.info == "hex-frame")
                .unwrap_or_else(|| panic!("line {}: no hex-frame answer follows", b.line));
            (b, answer)
        })
        .collect()
}
