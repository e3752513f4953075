//! What went wrong reading a duration or a size, as a type callers can match on and
//! a message an operator can act on.

use std::fmt;

/// Which kind of value was being read: it decides the wording and the units listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// A duration (`250ms`, `1.5s`).
    Duration,
    /// A byte size (`64MiB`).
    Size,
}

/// Why a text is not a duration or a size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// No digits where the number should start (`soon`, `-1s`, `.5s`, empty).
    NotANumber,
    /// A decimal point with no digits after it (`1.s`).
    NoFractionDigits,
    /// A duration without a unit (`30`): refused rather than guessed at.
    MissingUnit,
    /// Text after the number that is not a unit of this quantity.
    UnknownUnit(String),
    /// The value does not fit (a duration over `u64::MAX` seconds, a size over
    /// `u64::MAX` bytes).
    TooLarge,
}

/// A duration or size that could not be read; its message quotes the text and says
/// what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    quantity: Quantity,
    input: String,
    kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn new(quantity: Quantity, input: &str, kind: ParseErrorKind) -> Self {
        ParseError {
            quantity,
            input: input.to_string(),
            kind,
        }
    }

    /// Why the text was refused.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// Whether a duration or a size was being read.
    pub fn quantity(&self) -> Quantity {
        self.quantity
    }

    /// The text as given.
    pub fn input(&self) -> &str {
        &self.input
    }
}

const DURATION_UNITS: &str = "ns, us, ms, s, m, h or d";
const SIZE_UNITS: &str = "B, KiB, MiB, GiB, TiB, KB, MB, GB or TB";

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.input;
        match (self.quantity, &self.kind) {
            (Quantity::Duration, ParseErrorKind::NotANumber) => write!(
                f,
                "`{s}` is not a duration (expected a number then a unit, like 250ms, 1.5s, 10s, 5m, 1h or 1d)"
            ),
            (Quantity::Size, ParseErrorKind::NotANumber) => write!(
                f,
                "`{s}` is not a size (expected a number and an optional unit, like 1048576, 64MiB or 1.5GB)"
            ),
            (q, ParseErrorKind::NoFractionDigits) => write!(
                f,
                "{} `{s}` has no digits after its decimal point (write e.g. {})",
                noun(q),
                match q {
                    Quantity::Duration => "1.5s",
                    Quantity::Size => "1.5GB",
                }
            ),
            (q, ParseErrorKind::MissingUnit) => {
                write!(f, "{} `{s}` needs a unit ({})", noun(q), units(q))
            }
            (q, ParseErrorKind::UnknownUnit(unit)) => write!(
                f,
                "unknown {} unit `{unit}` in `{s}` (use {})",
                noun(q),
                units(q)
            ),
            (q, ParseErrorKind::TooLarge) => write!(f, "{} `{s}` is too large", noun(q)),
        }
    }
}

fn noun(q: Quantity) -> &'static str {
    match q {
        Quantity::Duration => "duration",
        Quantity::Size => "size",
    }
}

fn units(q: Quantity) -> &'static str {
    match q {
        Quantity::Duration => DURATION_UNITS,
        Quantity::Size => SIZE_UNITS,
    }
}

impl std::error::Error for ParseError {}

/// For callers that collect messages as text (the server's configuration errors).
impl From<ParseError> for String {
    fn from(e: ParseError) -> String {
        e.to_string()
    }
}
