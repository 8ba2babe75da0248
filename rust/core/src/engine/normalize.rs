//! Value-string normalisation: NFKC, lower case, trimmed, inner white space collapsed.

use unicode_normalization::UnicodeNormalization;

/// White space as Python's `str.split()` sees it: Unicode White_Space plus the four ASCII
/// information separators, so that Python-side normalisation and ours agree.
#[inline]
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Normalises `raw` into `out` (cleared first). An empty result means "no value".
pub fn normalize_into(raw: &str, out: &mut String) {
    out.clear();
    // str::to_lowercase handles the context-dependent final sigma, as Python's str.lower does.
    let folded: String = raw.nfkc().collect::<String>().to_lowercase();
    for word in folded.split(is_space).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
}

pub fn normalize(raw: &str) -> String {
    let mut out = String::new();
    normalize_into(raw, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_width_and_space() {
        assert_eq!(normalize("  Honesty "), "honesty");
        assert_eq!(normalize("Human\t\n  Agency"), "human agency");
        assert_eq!(normalize("ＦＵＬＬ width"), "full width");
        assert_eq!(normalize("\u{1c}a\u{a0}b"), "a b");
        assert_eq!(normalize("   "), "");
    }

    #[test]
    fn keeps_distinct_spellings_apart() {
        assert_ne!(normalize("well-being"), normalize("wellbeing"));
    }

    #[test]
    fn final_sigma_like_python() {
        // Python: "ΟΔΟΣ".lower() == "οδος" with a final sigma
        assert_eq!(normalize("ΟΔΟΣ"), "\u{3bf}\u{3b4}\u{3bf}\u{3c2}");
    }
}
