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

/// A WordPiece vocabulary (`vocab.txt`, one token per line), as BERT-style
/// encoders use: lower-cased words split at punctuation, each word the
/// longest pieces in the vocabulary (continuations written `##piece`), an
/// unknown word `[UNK]`, the whole between `[CLS]` and `[SEP]`.
#[derive(Debug, Clone)]
pub struct WordPiece {
    ids: std::collections::HashMap<String, u32>,
    unk: u32,
    cls: u32,
    sep: u32,
}

impl WordPiece {
    /// Reads `vocab.txt`; `[PAD]` must be id 0 (the policy masks id 0).
    pub fn load(path: &std::path::Path) -> Result<WordPiece, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let ids: std::collections::HashMap<String, u32> = text
            .lines()
            .enumerate()
            .map(|(i, t)| (t.trim_end().to_owned(), i as u32))
            .collect();
        let id = |t: &str| {
            ids.get(t)
                .copied()
                .ok_or_else(|| format!("{}: no {t} token", path.display()))
        };
        if id("[PAD]")? != PAD {
            return Err(format!("{}: [PAD] is not token 0", path.display()));
        }
        Ok(WordPiece {
            unk: id("[UNK]")?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            ids,
        })
    }

    /// The ids of `text`, cut or padded to `len`.
    pub fn encode(&self, text: &str, len: usize) -> Vec<u32> {
        let mut out = vec![self.cls];
        let lower = text.to_lowercase();
        let words = lower.split_whitespace().flat_map(|w| {
            // Punctuation is a word of its own.
            let mut parts = Vec::new();
            let mut start = 0;
            for (i, c) in w.char_indices() {
                if c.is_ascii_punctuation() {
                    if start < i {
                        parts.push(&w[start..i]);
                    }
                    parts.push(&w[i..i + c.len_utf8()]);
                    start = i + c.len_utf8();
                }
            }
            if start < w.len() {
                parts.push(&w[start..]);
            }
            parts
        });
        for word in words {
            let mut pieces = Vec::new();
            let mut start = 0;
            while start < word.len() {
                let piece = (start + 1..=word.len())
                    .rev()
                    .filter(|&end| word.is_char_boundary(end))
                    .find_map(|end| {
                        let candidate = if start == 0 {
                            word[..end].to_owned()
                        } else {
                            format!("##{}", &word[start..end])
                        };
                        self.ids.get(&candidate).map(|&id| (id, end))
                    });
                match piece {
                    Some((id, end)) => {
                        pieces.push(id);
                        start = end;
                    }
                    None => {
                        pieces = vec![self.unk];
                        break;
                    }
                }
            }
            out.extend(pieces);
        }
        out.truncate(len.saturating_sub(1));
        out.push(self.sep);
        out.resize(len, PAD);
        out
    }
}

/// How a policy turns an instruction into token ids.
#[derive(Debug, Clone)]
pub enum Tokenizer {
    /// Hashed words ([`tokenize`]).
    Words,
    /// A pretrained encoder's WordPiece vocabulary.
    WordPiece(WordPiece),
}

impl Tokenizer {
    /// The tokenizer of a run: hashed words, or the `vocab.txt` kept in
    /// the run folder when the policy has a pretrained text encoder.
    pub fn for_run(run: &std::path::Path, text: &crate::bert::Text) -> Result<Tokenizer, String> {
        match text {
            crate::bert::Text::Scratch => Ok(Tokenizer::Words),
            crate::bert::Text::Bert { .. } => {
                Ok(Tokenizer::WordPiece(WordPiece::load(&run.join("vocab.txt"))?))
            }
        }
    }

    /// The ids of `text`, cut or padded to `len`.
    pub fn encode(&self, text: &str, len: usize) -> Vec<u32> {
        match self {
            Tokenizer::Words => tokenize(text, len),
            Tokenizer::WordPiece(w) => w.encode(text, len),
        }
    }
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
    fn wordpiece_splits_words_into_the_longest_known_pieces() {
        let dir = std::env::temp_dir().join(format!("sponge-vocab-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("vocab.txt");
        // ids:          0      1      2      3      4     5      6      7    8      9
        std::fs::write(
            &path,
            "[PAD]\n[UNK]\n[CLS]\n[SEP]\nwipe\nthe\ncoffee\nink\n##y\n!\n",
        )
        .expect("vocab");
        let w = WordPiece::load(&path).expect("vocab");
        assert_eq!(
            w.encode("Wipe the inky coffee!", 10),
            vec![2, 4, 5, 7, 8, 6, 9, 3, 0, 0]
        );
        assert_eq!(
            w.encode("wipe the mop", 6),
            vec![2, 4, 5, 1, 3, 0],
            "unknown word"
        );
        assert_eq!(
            w.encode("wipe the coffee", 4),
            vec![2, 4, 5, 3],
            "cut, [SEP] kept"
        );
        std::fs::write(&path, "[UNK]\n[PAD]\n[CLS]\n[SEP]\n").expect("vocab");
        assert!(WordPiece::load(&path).expect_err("pad not 0").contains("[PAD]"));
        let _ = std::fs::remove_dir_all(&dir);
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
