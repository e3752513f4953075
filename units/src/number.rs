//! The part both grammars share: a decimal number with an optional fraction, then a
//! unit, scaled to an integer count of the smallest unit without floating point.

use crate::error::{ParseError, ParseErrorKind, Quantity};

/// Digits of a fraction that are looked at: with at most 10^14 smallest units per
/// unit (nanoseconds in a day), later digits are worth less than one smallest unit.
const MAX_FRACTION_DIGITS: usize = 24;

/// A number split from its unit: `whole` and `fraction` are ASCII digits, `unit` is
/// the trimmed rest (possibly empty).
pub(crate) struct Number<'a> {
    whole: &'a str,
    fraction: &'a str,
    pub(crate) unit: &'a str,
}

/// Splits `text` (already trimmed) into number and unit.
pub(crate) fn split<'a>(
    quantity: Quantity,
    input: &str,
    text: &'a str,
) -> Result<Number<'a>, ParseError> {
    let whole_len = text.bytes().take_while(u8::is_ascii_digit).count();
    let (whole, rest) = text.split_at(whole_len);
    if whole.is_empty() {
        return Err(ParseError::new(quantity, input, ParseErrorKind::NotANumber));
    }
    let (fraction, unit) = match rest.strip_prefix('.') {
        Some(after) => {
            let len = after.bytes().take_while(u8::is_ascii_digit).count();
            if len == 0 {
                return Err(ParseError::new(
                    quantity,
                    input,
                    ParseErrorKind::NoFractionDigits,
                ));
            }
            after.split_at(len)
        }
        None => ("", rest),
    };
    Ok(Number {
        whole,
        fraction,
        unit: unit.trim_start(),
    })
}

impl Number<'_> {
    /// The number times `per_unit`, rounded down; `None` when it does not fit.
    pub(crate) fn scale(&self, per_unit: u128) -> Option<u128> {
        let whole: u128 = self.whole.parse().ok()?;
        let mut total = whole.checked_mul(per_unit)?;
        let digits = &self.fraction[..self.fraction.len().min(MAX_FRACTION_DIGITS)];
        if !digits.is_empty() {
            // digits < 10^24 and per_unit < 2^41, so the product fits in a u128.
            let numerator: u128 = digits.parse().ok()?;
            let denominator = 10u128.pow(digits.len() as u32);
            total = total.checked_add(numerator * per_unit / denominator)?;
        }
        Some(total)
    }
}
