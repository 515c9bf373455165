//! A word-level tokenizer without a vocabulary file: the instruction is
//! lower-cased and split into words (letters and digits), and each word is
//! hashed (FNV-1a) into one of `VOCAB - 1` ids; the text encoder learns an
//! embedding per id. A word per token keeps instructions short (a dozen
//! tokens rather than fifty bytes), which the trunk's cost grows with.

/// Token ids: padding (0) and the word buckets.
pub const VOCAB: usize = 4096;
/// The padding token.
pub const PAD: u32 = 0;

/// The token of one (lower-case) word.
pub fn word_token(word: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in word.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    1 + hash % (VOCAB as u32 - 1)
}

/// The tokens of `text`, cut or padded to `len`.
pub fn tokenize(text: &str, len: usize) -> Vec<u32> {
    let mut tokens: Vec<u32> = text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(len)
        .map(word_token)
        .collect();
    tokens.resize(len, PAD);
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_not_spacing_or_case_make_the_tokens() {
        assert_eq!(tokenize("Wipe up  the INK!", 6), tokenize("wipe up the ink", 6));
        let t = tokenize("wipe up the ink", 6);
        assert_eq!(&t[4..], &[PAD, PAD]);
        assert!(t[..4].iter().all(|&id| id != PAD && (id as usize) < VOCAB));
        assert_eq!(tokenize("clean the table on the left side please", 3).len(), 3);
    }

    #[test]
    fn the_task_words_get_distinct_tokens() {
        // The words of the twin's instruction templates: a clash would make two
        // spills or places indistinguishable to the policy.
        let words = [
            "wipe", "up", "the", "clean", "water", "coffee", "ink", "spill", "on", "left", "right", "front",
            "back", "near", "far", "middle", "centre", "table", "blue", "black", "brown", "clear", "dark",
            "puddle", "stain", "mop", "please", "of", "purple", "red", "green",
        ];
        let mut ids: Vec<u32> = words.iter().map(|w| word_token(w)).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), words.len());
    }
}
