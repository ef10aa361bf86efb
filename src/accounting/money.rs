//! Exact money: amounts are integer pico-dollars (1e-12 USD), parsed from decimal text without
//! floating point, so per-token prices like $0.0375 per million tokens stay exact.

// Amounts are multiplied by token counts providers report: nothing here may wrap.
#![deny(clippy::arithmetic_side_effects)]

pub type Pico = u128;

pub const PICO_PER_USD: Pico = 1_000_000_000_000;

/// Parses a non-negative decimal number of dollars, scaled by `scale` (e.g. "3.5" with scale
/// 1e6 pico → $3.5 per million tokens = 3_500_000 pico per token). At most 12 decimals beyond
/// what the scale absorbs are allowed; anything that cannot be represented exactly is an error.
pub fn parse_usd(text: &str, divisor: Pico) -> Result<Pico, String> {
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return Err(format!("`{text}` is not a plain non-negative decimal number (like 2.50)"));
    }
    if frac.len() > 12 {
        return Err(format!("`{text}` has more than 12 decimals"));
    }
    let mut pico: Pico = 0;
    for c in int.chars().chain(frac.chars()).chain(std::iter::repeat_n('0', 12usize.saturating_sub(frac.len()))) {
        let digit = c.to_digit(10).map_or(0, Pico::from);
        pico = pico.checked_mul(10).and_then(|p| p.checked_add(digit)).ok_or_else(|| format!("`{text}` is too large"))?;
    }
    if !pico.is_multiple_of(divisor) {
        return Err(format!("`{text}` is more precise than one pico-dollar per token"));
    }
    pico.checked_div(divisor).ok_or_else(|| "a price needs a non-zero unit".to_owned())
}

/// Dollars as a decimal string with up to 12 decimals, trailing zeros trimmed ("0.0015").
pub fn format_usd(pico: Pico) -> String {
    let int = pico / PICO_PER_USD;
    let frac = pico % PICO_PER_USD;
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:012}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(parse_usd("3", 1).unwrap(), 3 * PICO_PER_USD);
        assert_eq!(parse_usd("0.0375", 1).unwrap(), 37_500_000_000);
        assert_eq!(parse_usd("2.50", 1).unwrap(), 2_500_000_000_000);
        assert_eq!(parse_usd(".5", 1).unwrap(), 500_000_000_000);
        // per million tokens → per token
        assert_eq!(parse_usd("0.0375", 1_000_000).unwrap(), 37_500);
        assert_eq!(parse_usd("15", 1_000_000).unwrap(), 15_000_000);
    }

    #[test]
    fn rejects_what_cannot_be_exact() {
        for bad in ["", ".", "-1", "1e3", "abc", "1.2.3", "0.0000000000001"] {
            assert!(parse_usd(bad, 1).is_err(), "{bad}");
        }
        assert!(parse_usd("0.0000001", 1_000_000).is_err(), "finer than a pico-dollar per token");
    }

    #[test]
    fn formats_without_float_noise() {
        assert_eq!(format_usd(0), "0");
        assert_eq!(format_usd(1_500_000_000), "0.0015");
        assert_eq!(format_usd(3 * PICO_PER_USD + 1), "3.000000000001");
        assert_eq!(format_usd(parse_usd("123.45", 1).unwrap()), "123.45");
    }
}
