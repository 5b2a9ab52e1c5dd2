//! JSON string escaping for the OTLP/JSON body, byte for byte as serde_json writes it.
//!
//! Escaping content (prompts and completions, themselves JSON) was the largest single item of
//! a batch's work for a file destination: serde_json looks every byte up in a table. Here a
//! string is scanned eight bytes at a time, and only a word holding a byte that needs an
//! escape is looked at closely; runs without one are copied whole. That halves the time on
//! prose and costs the same on short strings (see docs/benchmarks.md).

/// `"`, `\` and the control characters, the bytes JSON does not allow raw in a string.
const QUOTE: u64 = 0x2222_2222_2222_2222;
const BACKSLASH: u64 = 0x5c5c_5c5c_5c5c_5c5c;
const SPACE: u64 = 0x2020_2020_2020_2020;
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Appends `s` as a quoted JSON string.
pub(crate) fn write(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Bytes from `copied` on are not in `out` yet; none of them needed an escape so far.
    let mut copied = 0;
    let mut at = 0;
    for word in bytes.chunks_exact(8) {
        let mut flagged = needs_escape(word);
        // Each flagged byte is checked against the table: the bit tricks may over-flag a byte
        // above a true match, never miss one.
        while flagged != 0 {
            let i = at + (flagged.trailing_zeros() / 8) as usize;
            flagged &= flagged - 1;
            escape_at(out, bytes, &mut copied, i);
        }
        at += 8;
    }
    for i in at..bytes.len() {
        escape_at(out, bytes, &mut copied, i);
    }
    out.extend_from_slice(bytes.get(copied..).unwrap_or_default());
    out.push(b'"');
}

/// If the byte at `i` needs an escape: copies the run before it, then writes its escape.
fn escape_at(out: &mut Vec<u8>, bytes: &[u8], copied: &mut usize, i: usize) {
    let Some(&b) = bytes.get(i) else { return };
    let Some(escape) = escape_of(b) else { return };
    out.extend_from_slice(bytes.get(*copied..i).unwrap_or_default());
    push_escape(out, b, escape);
    *copied = i + 1;
}

/// A word's mask with the high bit of each byte set where that byte may need an escape;
/// zero means none does.
fn needs_escape(word: &[u8]) -> u64 {
    let Ok(word) = <[u8; 8]>::try_from(word) else {
        return u64::MAX;
    };
    let w = u64::from_le_bytes(word);
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    // Bytes below 0x20, or equal to `"` or `\`.
    (w.wrapping_sub(SPACE) & !w & HIGH) | zero_byte(w ^ QUOTE) | zero_byte(w ^ BACKSLASH)
}

/// What follows the backslash for each byte that needs escaping (`u` for the `\u00XX`
/// form); zero for the bytes that go as they are.
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

fn escape_of(b: u8) -> Option<u8> {
    Some(ESCAPES[usize::from(b)]).filter(|&e| e != 0)
}

fn push_escape(out: &mut Vec<u8>, b: u8, escape: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if escape == b'u' {
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0x0f)],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', escape]);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        super::write(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_byte_that_needs_an_escape_gets_serde_jsons_escape() {
        for b in 0u8..=0x7f {
            let s = format!("abcdefgh{}ijklmnop{}", char::from(b), char::from(b));
            assert_eq!(
                escaped(&s),
                serde_json::to_string(&s).unwrap(),
                "byte {b:#04x}"
            );
        }
    }

    #[test]
    fn runs_of_any_length_around_escapes_are_copied_whole() {
        for len in 0..20 {
            let clean = "é".repeat(len / 2) + &"x".repeat(len);
            for s in [
                format!("{clean}\"{clean}"),
                format!("\n{clean}"),
                format!("{clean}\\"),
                clean.clone(),
            ] {
                assert_eq!(escaped(&s), serde_json::to_string(&s).unwrap());
            }
        }
    }

    proptest! {
        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(s in any::<String>()) {
            prop_assert_eq!(escaped(&s), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn json_inside_json_is_escaped_as_serde_json_escapes_it(
            s in "[\"\\\\{}:,a-z \\n\\t\\x00-\\x1f\\x7fé😀]{0,80}"
        ) {
            prop_assert_eq!(escaped(&s), serde_json::to_string(&s).unwrap());
        }
    }
}
